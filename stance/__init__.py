"""STANCE pipeline: one import namespace for all stages.

Subpackages map to the top-level stage folders of the repository:
``stance.render`` -> render/, ``stance.cues`` -> cues/, ``stance.train`` -> train/,
``stance.evaluate`` -> evaluate/. Core modules (config, shards, provenance, CLI) live here.
"""

__version__ = "0.1.0"
