# Shared helpers: config validation (fills schema defaults, fails fast with the key, the
# value and what is allowed), shard lists, and per-rule params that make reruns depend on
# content (code hash of the stage package + the config values it uses), never on mtimes.
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

import stance
from stance import config as stance_config
from stance import provenance, shards
from stance.train import launch

if not Path(stance.__file__).resolve().is_relative_to(Path(workflow.basedir).resolve()):
    raise WorkflowError(
        f"the stance package imported here ({stance.__file__}) is not this checkout's "
        f"({workflow.basedir}); run scripts/setup.sh in this checkout and activate its .venv"
    )


envvars:
    "PATH",


# Jobs call the `stance` console script installed beside this Python (.venv/bin), also
# when the environment was not activated (`.venv/bin/snakemake ...`).
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)

_resolved = stance_config.validate(config, source="the Snakemake config")
config.clear()
config.update(_resolved)

SPLITS = [s for s in stance_config.SPLITS if config["data"]["splits"][s]["clips"] > 0]


wildcard_constraints:
    split="|".join(stance_config.SPLITS),
    shard=r"\d{%d}" % shards.SHARD_DIGITS,


def settings(section, only=None, without=()):
    """Config values a job reads, as compact JSON: passed to the CLI and watched by
    Snakemake. `only`/`without` keep a job's params to what changes its output: values it
    does not read, and operational values (passed as threads/resources, which Snakemake
    does not watch), never rerun it."""
    values = {
        k: v
        for k, v in config[section].items()
        if (only is None or k in only) and k not in without
    }
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def variant_settings(wildcards):
    """The `train` section with only this job's variant: adding or editing another variant
    leaves this training job (and its run hash) alone."""
    section = dict(config["train"])
    section["variants"] = {wildcards.variant: section["variants"][wildcards.variant]}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def sampling_settings():
    """How the variants are trained and sampled, for the tables' notes."""
    keys = {
        "train": ("cue_dropout", "aux_keyframe", "image_noise"),
        "generate": ("steps", "guidance_scale", "cue_guidance"),
    }
    values = {s: {k: config[s][k] for k in names} for s, names in keys.items()}
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def code(*modules):
    """Content hash of the code a rule runs (its package and the stance modules it imports)."""
    return provenance.code_hash(*modules)


def shard_seeds(wildcards):
    clips = shards.shard_clips(config, wildcards.split, wildcards.shard)
    return ",".join(str(c.seed) for c in clips)


def render_shard_dirs(wildcards=None):
    return shard_dirs("render")


TINY_DEPTH_MODEL = "results/models/tiny-depth-anything-v2"


def depth_model_input(wildcards=None):
    """The tiny model is built by the DAG; a hub id or a user's folder is not a DAG file."""
    return [TINY_DEPTH_MODEL] if config["models"]["depth"] == TINY_DEPTH_MODEL else []


def shard_dirs(stage):
    return [
        f"results/{stage}/{split}/{shard}"
        for split in SPLITS
        for shard in shards.shards(config, split)
    ]


TINY_VIDEO_MODEL = "results/models/tiny-cogvideox-i2v"
VARIANTS = sorted(config["train"]["variants"])


def video_model_input(wildcards=None):
    return [TINY_VIDEO_MODEL] if config["models"]["video"] == TINY_VIDEO_MODEL else []


def split_shard_dirs(stage, splits):
    return [
        f"results/{stage}/{split}/{shard}"
        for split in splits
        for shard in shards.shards(config, split)
        if split in SPLITS
    ]


def generated_dirs(wildcards=None):
    return [
        f"results/generate/{variant}/{split}/{shard}"
        for variant in VARIANTS
        for split in config["generate"]["splits"]
        if split in SPLITS
        for shard in shards.shards(config, split)
    ]


EVAL_SPLITS = [s for s in config["generate"]["splits"] if s in SPLITS]
METHODS = (
    VARIANTS + config["evaluate"]["baselines"] + config["evaluate"]["external_methods"]
)


def evaluated(wildcards=None):
    return [
        f"results/evaluate/{method}/{split}/{shard}.parquet"
        for method in METHODS
        for split in EVAL_SPLITS
        for shard in shards.shards(config, split)
    ]


def method_inputs(wildcards):
    """Generated videos of a trained variant; an external method's folder; nothing else."""
    method = wildcards.method
    if method in VARIANTS:
        return {
            "generated": f"results/generate/{method}/{wildcards.split}/{wildcards.shard}"
        }
    if method in config["evaluate"]["external_methods"]:
        return {"generated": f"{config['evaluate']['external_dir']}/{method}"}
    return {}


def method_args(wildcards, input):
    if wildcards.method in VARIANTS:
        aux = config["train"]["variants"][wildcards.method]["aux"]
        return f"--generated {input.generated} --aux {aux}"
    return ""


def feature_network_args():
    """Feature networks of the Fréchet distances: I3D (FVD), VideoMAE-v2 (cd-FVD)."""
    models = config["models"]
    args = [f"--fvd-model {models['fvd']}"] if models["fvd"] else []
    if models["fvd_videomae"]:
        args.append(f"--cd-fvd-model {models['fvd_videomae']}")
    return " ".join(args)


def train_launcher(wildcards=None):
    return launch.command_prefix(config["train"])
