# Shared helpers, in this order -- config validation, constants, path helpers, params
# helpers (what a job reads, as content, never mtimes), input functions.
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

import stance
from stance import config as stance_config
from stance import settings as stance_settings
from stance import physics_iq_folder, provenance, shards
from stance.train import launch
from stance.train import pretraining

# -- validation ---------------------------------------------------------------------------
if not Path(stance.__file__).resolve().is_relative_to(Path(workflow.basedir).resolve()):
    raise WorkflowError(
        f"the stance package imported here ({stance.__file__}) is not this checkout's "
        f"({workflow.basedir}); run scripts/setup.sh in this checkout and activate its .venv"
    )

# config_settings.config is --config alone (overwrite_config also holds the files, merged)
stance_config.variants_as_named(
    config, workflow.overwrite_configfiles, workflow.config_settings.config
)
_resolved = stance_config.validate(config, source="the Snakemake config")
config.clear()
config.update(_resolved)
SETTINGS = stance_settings.build(stance_settings.Settings, config)  # typed, read-only
# An incomplete benchmark download stops the DAG before any job runs.
# The benchmark folder of the configured track (given it or its parent), checked whole.
PHYSICS_IQ = None  # None: no benchmark jobs
if config["evaluate"]["physics_iq_benchmark"]:
    try:
        _track = config["evaluate"]["physics_iq_track"]
        _root = physics_iq_folder.root_of(
            config["evaluate"]["physics_iq_benchmark"], _track
        )
        physics_iq_folder.track_of(_root, _track)
        physics_iq_folder.scan(
            _root,
            config["render"]["fps"],
            config["evaluate"]["physics_iq_descriptions"],
        )
        PHYSICS_IQ = str(_root)
    except physics_iq_folder.BenchmarkError as exc:
        raise WorkflowError(str(exc)) from None
elif config["evaluate"]["physics_iq_descriptions"]:
    raise WorkflowError(
        "evaluate.physics_iq_descriptions is set but evaluate.physics_iq_benchmark is not:"
        " name the downloaded benchmark folder too, or set both to null"
    )


envvars:
    "PATH",


# Jobs call the `stance` console script installed beside this Python (.venv/bin), also
# when the environment was not activated (`.venv/bin/snakemake ...`).
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)

# -- constants ----------------------------------------------------------------------------
SPLITS = [s for s in stance_config.SPLITS if config["data"]["splits"][s]["clips"] > 0]
EVAL_SPLITS = [s for s in config["generate"]["splits"] if s in SPLITS]
VARIANTS = sorted(config["train"]["variants"])
METHODS = (
    VARIANTS + config["evaluate"]["baselines"] + config["evaluate"]["external_methods"]
)
VALIDATING = config["train"]["validate_every"] > 0 and "val" in SPLITS
PHYSICS_IQ_RUNS = [
    f"{k:02d}" for k in range(1, config["evaluate"]["physics_iq_seeds"] + 1)
]
# run folders named as the reference names them: <model>-<op|bpp>-run_<NN> ("names": no
# descriptions CSV, the prompts are the scenario names in words)
PHYSICS_IQ_PROMPTS = (
    config["evaluate"]["physics_iq_prompts"]
    if config["evaluate"]["physics_iq_descriptions"]
    else "names"
)
PHYSICS_IQ_RUN = "{variant}-%s-run_{run}" % PHYSICS_IQ_PROMPTS
TINY_DEPTH_MODEL = stance_config.TINY_MODELS["depth"]
TINY_VIDEO_MODEL = stance_config.TINY_MODELS["video"]
BUILT_VIDEO_MODELS = stance_config.BUILT_MODELS["video"]
BUILT_FROM_NOTHING = [
    s
    for s in stance_config.BUILT_VIDEO_SIZES
    if s not in stance_config.FITTED_VIDEO_SIZES
]


wildcard_constraints:
    split="|".join(stance_config.SPLITS),
    variant="|".join(VARIANTS),
    shard=r"\d{%d}" % shards.SHARD_DIGITS,
    run=r"\d{2}",


# -- path helpers -------------------------------------------------------------------------
def shard_dirs(stage, splits=None, folder=None):
    """Every shard folder of a stage (results/<stage>[/<folder>]/<split>/<shard>; folder:
    a variant, or train's cache) over the configured splits, or over `splits` where they
    are configured."""
    prefix = os.path.join("results", stage, folder or "")
    return [
        os.path.join(prefix, split, shard)
        for split in SPLITS
        if splits is None or split in splits
        for shard in shards.shards(SETTINGS.data, split)
    ]


def generated_dirs(wildcards=None):
    return [d for v in VARIANTS for d in shard_dirs("generate", EVAL_SPLITS, folder=v)]


def physics_iq_runs(wildcards=None):
    """Every scored benchmark run (none without evaluate.physics_iq_benchmark)."""
    if not PHYSICS_IQ:
        return []
    return [
        "results/evaluate/physics_iq/{variant}/{name}.parquet".format(
            variant=variant, name=PHYSICS_IQ_RUN.format(variant=variant, run=run)
        )
        for variant in VARIANTS
        for run in PHYSICS_IQ_RUNS
    ]


def evaluated(wildcards=None):
    return [
        f"results/evaluate/{method}/{split}/{shard}.parquet"
        for method in METHODS
        for split in EVAL_SPLITS
        for shard in shards.shards(SETTINGS.data, split)
    ]


# -- params helpers -----------------------------------------------------------------------
def settings(section, only=None, without=()):
    """Config values a job reads, as compact JSON: passed to the CLI and watched by
    Snakemake. `only`/`without` keep a job's params to what changes its output (values it
    does not read never rerun it; the job cannot read what is left out). The schema's
    operational keys are always left out: rules pass them as threads/resources, which
    Snakemake does not watch."""
    skipped = (*stance_config.operational(section), *without)
    values = {
        k: v
        for k, v in config[section].items()
        if (only is None or k in only) and k not in skipped
    }
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def variant_settings(wildcards):
    """The `train` section with only this job's variant and without its operational
    values: adding or editing another variant, or the checkpoint cadence, leaves this
    training job (and its run hash) alone; so does the backbone's own learning rate
    when the backbone it gives is the same."""
    skipped = (*launch.BABYSITTING, *pretraining.PRETRAINING_ONLY)
    section = {k: v for k, v in config["train"].items() if k not in skipped}
    entry = section["variants"][wildcards.variant]
    section["variants"] = {wildcards.variant: stance_config.variant_entry(entry)}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def pretrain_settings():
    """The `train` section as pretraining reads it: without what it ignores (the variants,
    their cue and aux settings, the fine-tuning length) and without operational values;
    its learning rate is train.pretrain_learning_rate when that is set."""
    section = pretraining.passed_settings(config["train"], launch.BABYSITTING)
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def sampling_settings():
    """How the variants are trained and sampled, for the tables' notes."""
    keys = {
        "train": (
            "cue_dropout",
            "aux_keyframe",
            "image_noise",
            "timestep_sampling",
            "motion_weighting",
        ),
        "generate": stance_config.SAMPLING_KEYS,
    }
    values = {s: {k: config[s][k] for k in names} for s, names in keys.items()}
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def code(*modules):
    """Content hash of the code a rule runs (its package and the stance modules it imports)."""
    return provenance.code_hash(*modules)


def shard_seeds(wildcards):
    clips = shards.shard_clips(SETTINGS.data, wildcards.split, wildcards.shard)
    return ",".join(str(c.seed) for c in clips)


def feature_network_args():
    """Feature networks of the Fréchet distances (I3D: FVD; VideoMAE-v2: cd-FVD), as
    argument words; an unset one is left out of the tables."""
    models = config["models"]
    flags = {"--fvd-model": models["fvd"], "--cd-fvd-model": models["fvd_videomae"]}
    return [word for flag, path in flags.items() if path for word in (flag, path)]


def physics_iq_descriptions_arg(wildcards=None):
    path = config["evaluate"]["physics_iq_descriptions"]
    return ["--descriptions", path] if path else []


def training_threads():
    """Every core of a local run: Snakemake sets OMP_NUM_THREADS to a job's threads (1
    unless told), and a training step on one thread takes ~2x as long; training jobs then
    run one after another. On a cluster the profile's set-threads decides."""
    try:
        cores = workflow.cores
    except (
        WorkflowError
    ):  # no --cores: a cluster executor, whose profile sets the threads
        return 1
    return max(1, min(cores or 1, os.cpu_count() or 1))


def variant_training_threads():
    """Half of `training_threads()` when several variants train, so two train at once:
    on 2 cores, two training jobs on one thread each make 1.3x the steps per second of
    one job on both (docs/benchmarks.md); a lone job's spare core samples test clips.
    `--set-threads train_variant=N` overrides it."""
    threads = training_threads()
    return max(1, threads // 2) if len(VARIANTS) > 1 else threads


def variant_priority(wildcards):
    """Fine-tuning comes before any generation shard (priority 0), so no variant's
    training waits behind another's sampling; variants with an auxiliary stream start
    first: their step takes twice as long, and two long jobs side by side finish sooner
    than one left to run alone."""
    return 1 + int(config["train"]["variants"][wildcards.variant]["aux"] != "none")


def train_launcher(wildcards=None):
    return launch.command_prefix(SETTINGS.train)


def pretrain_launcher(wildcards=None):
    return launch.pretrain_command_prefix(SETTINGS.train)


# -- input functions ----------------------------------------------------------------------
def depth_model_input(wildcards=None):
    """The tiny model is built by the DAG; a hub id or a user's folder is not a DAG file."""
    return [TINY_DEPTH_MODEL] if config["models"]["depth"] == TINY_DEPTH_MODEL else []


def video_model_input(wildcards=None):
    """The tiny or small stack is built by the DAG (rules/models.smk)."""
    video = config["models"]["video"]
    return [video] if video in BUILT_VIDEO_MODELS else []


def validation_dirs(stage):
    """The validation clips' render or cue shards, when training measures cue control."""
    return shard_dirs(stage, ["val"]) if VALIDATING else []


def pretrained_input(wildcards=None):
    """The shared pretrained backbone the variants start from, when there is one."""
    return ["results/train/pretrained"] if config["train"]["pretrain_steps"] else []


def physics_iq_inputs(wildcards=None):
    """The user's benchmark folder (and descriptions CSV) as inputs: a new download reruns
    the benchmark jobs."""
    if not PHYSICS_IQ:
        raise WorkflowError(
            "benchmark jobs need evaluate.physics_iq_benchmark: the downloaded folder"
        )
    inputs = {"benchmark": PHYSICS_IQ}
    if config["evaluate"]["physics_iq_descriptions"]:
        inputs["descriptions"] = config["evaluate"]["physics_iq_descriptions"]
    return inputs


def results_page_inputs(wildcards):
    """The cue variant shown on the results page (evaluate.stance_variant) and the first
    variant without cues, if any: their generated test shards."""
    variants = config["train"]["variants"]
    chosen = {"cued": config["evaluate"]["stance_variant"]}
    uncued = [name for name in VARIANTS if variants[name]["cue_mode"] == "none"]
    if uncued:
        chosen["uncued"] = uncued[0]
    return {
        key: shard_dirs("generate", EVAL_SPLITS, variant)
        for key, variant in chosen.items()
    }


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


def generated_arg(wildcards, input):
    """`--generated DIR` for a trained variant (its record names the variant)."""
    return ["--generated", input.generated] if wildcards.method in VARIANTS else []
