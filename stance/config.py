"""Load, validate and resolve the pipeline configuration.

The JSON schema (config.schema.yaml beside this file) is the single source of truth for
keys, types, ranges and defaults. Validation fills defaults, then checks the few rules a
schema cannot express (min <= max pairs, disjoint split seed ranges). Errors name the key,
the bad value and what is allowed, all at once, so a user fixes a config in one go.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stance import settings
from stance.errors import UserError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
SPLITS = ("train", "val", "test")
# What makes a train.variants entry a variant: saved in the model's config, read back by
# generation, carried to the evaluation rows and the ablation table.
VARIANT_KEYS = ("aux", "cue_mode", "motion_tokens")
# The generate keys that decide how a clip is sampled, besides its seed: what a job that
# samples with the section's values must be passed, and what the tables' notes state.
SAMPLING_KEYS = (
    "steps",
    "guidance_scale",
    "cue_guidance",
    "cue_guidance_above",
    "use_dynamic_cfg",
    "project_output_span",
)


def variant_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A train.variants entry as params and run hashes see it: an unset seed (train.seed
    applies) is left out, so it moves no job and no run."""
    return {k: v for k, v in entry.items() if not (k == "seed" and v is None)}


class ConfigError(UserError, ValueError):
    """A configuration value is missing, malformed or inconsistent."""


@cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def variants_as_named(
    cfg: dict, configfiles: Sequence[str | Path], overrides: Mapping[str, Any] | None = None
) -> dict:
    """`cfg` with train.variants exactly as the last of `configfiles` names them, or as
    `overrides` (Snakemake's --config, applied after the files) name them.

    Snakemake merges a --configfile into config.yaml key by key, so a file naming three
    variants would still train the embedded config's five; a config file's variants are
    its complete list instead (the other keys merge as Snakemake merges them)."""
    documents = [yaml.safe_load(Path(path).read_text()) or {} for path in configfiles]
    for document in [*documents, overrides or {}]:
        train = document.get("train") if isinstance(document, dict) else None
        if isinstance(train, dict) and isinstance(train.get("variants"), dict):
            cfg.setdefault("train", {})["variants"] = copy.deepcopy(train["variants"])
    return cfg


@cache
def _properties(section: str) -> dict[str, Any]:
    """The schema's properties of one config section (parsed once per process)."""
    return schema()["properties"][section]["properties"]


@cache
def operational(section: str) -> tuple[str, ...]:
    """The keys of `section` marked `x-operational` in the schema: how a job runs (threads,
    batch size, device, memory profile, checkpoint cadence), never what it computes. Rules
    pass them as resources, which Snakemake does not watch, and leave them out of the
    --settings JSON (and of run hashes)."""
    return tuple(key for key, node in _properties(section).items() if node.get("x-operational"))


@cache
def choices(section: str, key: str) -> tuple[str, ...]:
    """The values the schema allows for `section.key` (one place for every list of them:
    CLI choices, checks, benches)."""
    return tuple(_properties(section)[key]["enum"])


def _fill_defaults(validator_class):
    """A validator that writes schema defaults into the instance before checking it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from validate_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft7Validator)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _allowed(error: jsonschema.ValidationError) -> str:
    """Say in words what the failing schema keyword allows."""
    kind, rule = error.validator, error.validator_value
    described = {
        "type": lambda: f"a value of type {rule}",
        "enum": lambda: f"one of {rule}",
        "minimum": lambda: f"a number >= {rule}",
        "maximum": lambda: f"a number <= {rule}",
        "exclusiveMinimum": lambda: f"a number > {rule}",
        "exclusiveMaximum": lambda: f"a number < {rule}",
        "multipleOf": lambda: f"a multiple of {rule}",
        "pattern": lambda: f"a string matching {rule}",
        "required": lambda: f"the keys {rule} to be present",
        "additionalProperties": lambda: f"only the keys {sorted(error.schema['properties'])}",
    }.get(kind, lambda: f"a value satisfying {kind}={rule!r}")()
    description = error.schema.get("description")
    return f"{described}" + (f" ({' '.join(description.split())})" if description else "")


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return (
            f"- {_key(error.absolute_path)}: unknown key(s) {unknown}; allowed: {_allowed(error)}"
        )
    if error.validator == "required":
        return f"- {_key(error.absolute_path)}: {error.message}; expected {_allowed(error)}"
    value = json.dumps(error.instance) if not isinstance(error.instance, dict) else "{...}"
    return f"- {_key(error.absolute_path)}: {value} is not allowed; expected {_allowed(error)}"


def _semantic_errors(cfg: Mapping[str, Any], whole: bool) -> list[str]:
    errors = []
    render = cfg["render"]
    for section, low, high in [
        ("collisions", "min_objects", "max_objects"),
        ("composite", "min_static", "max_static"),
        ("composite", "min_dynamic", "max_dynamic"),
    ]:
        lo, hi = render[section][low], render[section][high]
        if lo > hi:
            errors.append(
                f"- render.{section}.{low}: {lo} is larger than render.{section}.{high} = {hi};"
                f" expected {low} <= {high}"
            )
    if sum(render["family_mix"].values()) <= 0:
        errors.append(
            f"- render.family_mix: {json.dumps(render['family_mix'])} has no positive weight;"
            " expected at least one family with weight > 0"
        )
    if cfg["evaluate"]["physics_iq_benchmark"] and cfg["cues"]["dz"]["units"] == "absolute":
        errors.append(
            "- cues.dz.units: absolute (metres per frame) cannot be measured on the "
            "benchmark's real videos; expected relative with evaluate.physics_iq_benchmark"
        )
    generate = cfg["generate"]
    if generate["cue_guidance_above"] > 0 and generate["cue_guidance"] is None:
        errors.append(
            f"- generate.cue_guidance_above: {generate['cue_guidance_above']} limits a cue "
            "guidance that is not set (cue_guidance: null); expected cue_guidance set to a "
            "scale, or cue_guidance_above 0"
        )
    train = cfg["train"]
    if train["pretrain_learning_rate"] is not None and not train["pretrain_steps"]:
        errors.append(
            f"- train.pretrain_learning_rate: {train['pretrain_learning_rate']} is the rate of"
            " a shared backbone that is not pretrained (pretrain_steps: 0); expected"
            " pretrain_steps > 0, or pretrain_learning_rate null"
        )
    errors += _cpu_process_errors(train)
    variants, shown = cfg["train"]["variants"], cfg["evaluate"]["stance_variant"]
    for name in sorted(set(variants) & set(TRAIN_FOLDERS)):
        errors.append(
            f"- train.variants.{name}: the name is taken by results/train/{name}/"
            f" ({TRAIN_FOLDERS[name]}); expected another name"
        )
    if whole and variants and shown not in variants:
        errors.append(
            f"- evaluate.stance_variant: {json.dumps(shown)} names no variant; expected one of"
            f" train.variants: {sorted(variants)}"
        )
    for key in ("depth", "video"):
        value = cfg["models"][key]
        if not _is_model_source(value, key):
            errors.append(
                f"- models.{key}: {json.dumps(value)} is neither a hub id (org/name, letters,"
                " digits, '-', '_', '.') nor an existing local folder; expected e.g."
                f" {json.dumps(MODEL_EXAMPLES[key])} or the path of a downloaded copy"
            )
    if 240 % render["fps"]:
        errors.append(f"- render.fps: {render['fps']} does not divide the 240 Hz physics rate")
    ranges = sorted(
        (split["seed_offset"], split["seed_offset"] + split["clips"], name)
        for name, split in cfg["data"]["splits"].items()
    )
    for (_, end_a, name_a), (start_b, _, name_b) in itertools.pairwise(ranges):
        if start_b < end_a:
            errors.append(
                f"- data.splits.{name_b}.seed_offset: {start_b} overlaps the seeds of split"
                f" {name_a} (which end at {end_a - 1}); expected disjoint seed ranges"
            )
    return errors


# results/train/ holds a folder per variant beside these, so no variant takes their names.
TRAIN_FOLDERS = {
    "cache": "the training cache",
    "runs": "the run state",
    "pretrained": "the shared pretrained backbone",
}
# The video stacks the DAG builds itself (rules/models.smk, `stance models make-tiny`, from
# stance.train.tiny): "tiny" for the embedded config; "small" (configs/small.yaml) trained
# from scratch with the invertible codec as its VAE; "smallpca" (configs/small_pca.yaml)
# the codec projected on 16 directions fitted on the train clips; "smallwide"
# (configs/small_wide.yaml); "smallfine" (configs/small_fine.yaml). Any other model is a
# hub id or a folder.
BUILT_VIDEO_SIZES = ("tiny", "small", "smallpca", "smallwide", "smallfine")
FITTED_VIDEO_SIZES = ("smallpca",)  # built from the train renders, the others from nothing


def built_video_model(size: str) -> str:
    return f"results/models/{size}-cogvideox-i2v"


TINY_MODELS = {
    "depth": "results/models/tiny-depth-anything-v2",
    "video": built_video_model("tiny"),
}
BUILT_MODELS = {
    "depth": {TINY_MODELS["depth"]: "tiny"},
    "video": {built_video_model(size): size for size in BUILT_VIDEO_SIZES},
}
# the config each built stack is trained with (the demo reads it beside a trained variant)
BUILT_VIDEO_CONFIGS = {
    built_video_model("small"): "configs/small.yaml",
    built_video_model("smallpca"): "configs/small_pca.yaml",
    built_video_model("smallwide"): "configs/small_wide.yaml",
    built_video_model("smallfine"): "configs/small_fine.yaml",
}
MODEL_EXAMPLES = {
    "depth": "depth-anything/Depth-Anything-V2-Large-hf",
    "video": "THUDM/CogVideoX1.5-5B-I2V",
}
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def _is_model_source(value: str, key: str) -> bool:
    """A model value must be data, never code: a hub id, an existing folder, or the tiny
    model the DAG builds (values also reach shell commands, quoted)."""
    return value in BUILT_MODELS[key] or bool(HUB_ID.fullmatch(value)) or Path(value).is_dir()


def validate(cfg: Mapping[str, Any] | None, source: str = "config", whole: bool = True) -> dict:
    """Return a validated copy of ``cfg`` with every default filled in. `whole=False`
    (one section passed to a job) skips the checks between sections.

    Raises ConfigError listing every problem, each naming key, value and what is allowed.
    """
    if cfg is not None and not isinstance(cfg, Mapping):
        raise ConfigError(
            f"invalid {source}: the top level is a {type(cfg).__name__}; expected a mapping"
            " of sections (render:, data:, cues:, train:, ...), as in config.yaml"
        )
    resolved = copy.deepcopy(dict(cfg or {}))
    errors = sorted(_Validator(schema()).iter_errors(resolved), key=lambda e: list(e.path))
    messages = [_describe(e) for e in errors]
    if not messages:
        messages = _semantic_errors(resolved, whole)
    if messages:
        raise ConfigError(f"invalid {source}:\n" + "\n".join(messages))
    return resolved


def section_from_json(section: str, text: str, overrides: Mapping[str, Any] | None = None):
    """One validated config section, typed (`stance.settings`), from a JSON object (how
    rules pass settings to the CLI), with `overrides` (operational values the rule passes
    as flags; None = not given). Only the keys given can be read: a job that reads a key
    its rule did not pass fails (UnpassedSetting) instead of using the schema default."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--settings is not valid JSON ({exc}); pass the `{section}` config "
            "section as a JSON object"
        ) from exc
    if isinstance(values, dict):
        values |= {k: v for k, v in (overrides or {}).items() if v is not None}
    typed = section_settings(section, values, source=f"--settings ({section})")
    # the schema fills the keys left out (for validation); reading one of them raises,
    # except for operational keys (how a job runs: a job run by hand may leave them out)
    given = {*(values if isinstance(values, dict) else ()), *operational(section)}
    return settings.restrict(typed, section, given)


def _cpu_process_errors(train: dict) -> list[str]:
    """What makes train.pretrain_cpu_processes impossible to honour."""
    processes = train["pretrain_cpu_processes"]
    if processes == 1:
        return []
    if train["num_gpus"] > 0 or train["num_nodes"] > 1:
        return [
            f"- train.pretrain_cpu_processes: {processes} splits a job on one CPU node, but"
            f" training runs on GPUs or several nodes (num_gpus {train['num_gpus']}, num_nodes"
            f" {train['num_nodes']}); expected pretrain_cpu_processes 1 there"
        ]
    if train["micro_batch"] % processes:
        return [
            f"- train.pretrain_cpu_processes: {processes} processes cannot share"
            f" micro_batch {train['micro_batch']} equally; expected a divisor of micro_batch"
        ]
    return []


def section_settings(section: str, values: Any = None, source: str = "config"):
    """One config section, typed (`stance.settings`): `values` validated, defaults filled."""
    resolved = validate({section: {} if values is None else values}, source, whole=False)
    return settings.section(section, resolved[section])


def check(path: str | Path, quiet: bool = False) -> dict:
    """`stance config check`: validate, print the resolved config and the job counts."""
    from stance import shards

    cfg = load(path)
    if not quiet:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
    data = settings.section("data", cfg["data"])
    per_split = {split: shards.num_shards(data, split) for split in data.splits}
    print(f"# {path}: valid; shards per split: {per_split}")
    return cfg


def defaults() -> settings.Settings:
    """Every section at its schema defaults, typed."""
    return settings.build(settings.Settings, validate({}))


def load_settings(path: str | Path) -> settings.Settings:
    """A YAML config file, validated, as typed settings."""
    return settings.build(settings.Settings, load(path))


def load(path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return validate(raw, source=str(path))
