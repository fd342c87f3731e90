"""STANCE pipeline: one import namespace for all stages.

Subpackages map to the top-level stage folders of the repository:
``stance.render`` -> render/, ``stance.cues`` -> cues/, ``stance.train`` -> train/,
``stance.evaluate`` -> evaluate/. Core modules (config, shards, provenance, CLI) live here.
"""

__version__ = "0.1.0"

# In a source checkout the stage folders are siblings of this package's folder. Searching
# the checkout root too makes `stance.render` etc. resolve from the SAME checkout as this
# file, whichever checkout's `stance` was imported first (code hashes must describe the
# code that runs). Installed wheels hold the subpackages inside stance/ and skip this.
from pathlib import Path as _Path

_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and str(_checkout) not in __path__:
    __path__.append(str(_checkout))
