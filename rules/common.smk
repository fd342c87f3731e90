# Shared helpers: config validation (fills schema defaults, fails fast with the key, the
# value and what is allowed), shard lists, and per-rule params that make reruns depend on
# content (code hash of the stage package + the config values it uses), never on mtimes.
import json
import os

from stance import config as stance_config
from stance import provenance, shards

_resolved = stance_config.validate(config, source="the Snakemake config")
config.clear()
config.update(_resolved)

SPLITS = [s for s in stance_config.SPLITS if config["data"]["splits"][s]["clips"] > 0]


wildcard_constraints:
    split="|".join(stance_config.SPLITS),
    shard=r"\d{%d}" % shards.SHARD_DIGITS,


def settings(section):
    """A config section as compact JSON: passed to the CLI and watched by Snakemake."""
    return json.dumps(config[section], sort_keys=True, separators=(",", ":"))


def code(*modules):
    """Content hash of the code a rule runs (its package and the stance modules it imports)."""
    return provenance.code_hash(*modules)


def shard_seeds(wildcards):
    clips = shards.shard_clips(config, wildcards.split, wildcards.shard)
    return ",".join(str(c.seed) for c in clips)


def render_shard_dirs(wildcards=None):
    return [
        f"results/render/{split}/{shard}"
        for split in SPLITS
        for shard in shards.shards(config, split)
    ]
