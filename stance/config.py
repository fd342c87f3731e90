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
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stance.errors import UserError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
SPLITS = ("train", "val", "test")


class ConfigError(UserError, ValueError):
    """A configuration value is missing, malformed or inconsistent."""


@cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


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


def _semantic_errors(cfg: Mapping[str, Any]) -> list[str]:
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


def validate(cfg: Mapping[str, Any] | None, source: str = "config") -> dict:
    """Return a validated copy of ``cfg`` with every default filled in.

    Raises ConfigError listing every problem, each naming key, value and what is allowed.
    """
    resolved = copy.deepcopy(dict(cfg or {}))
    errors = sorted(_Validator(schema()).iter_errors(resolved), key=lambda e: list(e.path))
    messages = [_describe(e) for e in errors]
    if not messages:
        messages = _semantic_errors(resolved)
    if messages:
        raise ConfigError(f"invalid {source}:\n" + "\n".join(messages))
    return resolved


def section_from_json(section: str, text: str) -> dict:
    """One validated config section from a JSON object (how rules pass settings to the CLI)."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--settings is not valid JSON ({exc}); pass the `{section}` config "
            "section as a JSON object"
        ) from exc
    return validate({section: values}, source=f"--settings ({section})")[section]


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
