"""Typed settings: one frozen dataclass per config section, in step with the schema."""

import dataclasses
import json
import types
import typing

import pytest
from helpers import REPO

from stance import config, settings

SCHEMA_TYPES = {"integer": int, "number": float, "boolean": bool, "string": str, "null": None}


def _resolve(node: dict) -> dict:
    ref = node.get("$ref")
    return config.schema()["definitions"][ref.rsplit("/", 1)[1]] if ref else node


def _hint_types(hint) -> set:
    """The schema types a field's annotation admits."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set().union(*(_hint_types(arg) for arg in typing.get_args(hint)))
    if hint is type(None):
        return {"null"}
    if dataclasses.is_dataclass(hint) or typing.get_origin(hint) is dict:
        return {"object"}
    if typing.get_origin(hint) is tuple:
        return {"array"}
    return {name for name, kind in SCHEMA_TYPES.items() if kind is hint}


def _check(cls, node: dict, where: str, problems: list[str]) -> None:
    node = _resolve(node)
    properties = node["properties"]
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if set(names) != set(properties):
        problems.append(f"{where}: fields {sorted(names)} vs schema keys {sorted(properties)}")
        return
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING or field.default_factory is not (
            dataclasses.MISSING
        ):
            problems.append(f"{where}.{field.name}: a default outside the schema")
        prop, hint = _resolve(properties[field.name]), hints[field.name]
        declared = prop.get("type")
        declared = {declared} if isinstance(declared, str) else set(declared or [])
        if declared and declared != _hint_types(hint):
            problems.append(f"{where}.{field.name}: schema {declared} vs {hint}")
        if dataclasses.is_dataclass(hint):
            _check(hint, prop, f"{where}.{field.name}", problems)
        elif typing.get_origin(hint) is dict:
            item = typing.get_args(hint)[1]
            values = prop.get("additionalProperties") or next(iter(prop["properties"].values()))
            if dataclasses.is_dataclass(item):
                _check(item, values, f"{where}.{field.name}.*", problems)


def test_every_schema_key_has_a_field_of_its_type_and_no_default():
    problems: list[str] = []
    _check(settings.Settings, config.schema(), "config", problems)
    assert not problems, problems


@pytest.mark.parametrize(
    "path", ["config.yaml", "configs/paper.yaml", "configs/small_wide.yaml", "configs/memory.yaml"]
)
def test_typed_settings_carry_exactly_the_validated_values(path):
    resolved = config.load(REPO / path)
    typed = config.load_settings(REPO / path)
    assert settings.as_dict(typed) == resolved
    assert json.loads(json.dumps(settings.as_dict(typed))) == resolved


def test_sections_from_rules_are_typed_read_only_and_complete():
    cues = config.section_from_json("cues", json.dumps({"dz": {"method": "literal"}}))
    assert isinstance(cues, settings.Cues) and isinstance(cues.dz, settings.Dz)
    assert cues.dz.method == "literal" and cues.dz.erode_px == 1  # the schema's default
    with pytest.raises(dataclasses.FrozenInstanceError):
        cues.reference_frame = 3
    train = config.section_settings("train", {"max_grad_norm": 2, "betas": [0.8, 0.9]})
    assert train.max_grad_norm == 2.0 and isinstance(train.max_grad_norm, float)
    assert train.betas == (0.8, 0.9)
    assert train.variants["rgb_depth"] == settings.Variant("depth", "dense_rope", 16, None)
    with pytest.raises(AttributeError):
        train.learning_rat  # noqa: B018 -- a typo fails instead of reading another value


def test_bad_section_values_are_config_errors_before_any_typing():
    with pytest.raises(config.ConfigError, match=r"cues\.dz\.method"):
        config.section_settings("cues", {"dz": {"method": "mean"}})


def test_a_class_and_schema_mismatch_names_both_files():
    with pytest.raises(TypeError, match=r"settings\.py and stance/config\.schema\.yaml disagree"):
        settings.build(settings.Mass, {"normalization": "log"})


def test_a_job_reads_only_the_keys_its_rule_passed():
    """A key left out of --settings raises on reading (naming the key and the fix) instead
    of silently giving the schema default; the keys given read, copy, pickle and replace."""
    import pickle

    given = {"steps": 5, "variants": {"v": {"aux": "none", "cue_mode": "none"}}}
    train = config.section_from_json("train", json.dumps(given))
    assert train.steps == 5 and train.variants["v"].motion_tokens == 16  # nested: filled
    with pytest.raises(settings.UnpassedSetting, match=r"train\.learning_rate .*rules/"):
        _ = train.learning_rate
    defaults = config.defaults().train
    assert settings.as_dict(train) == {
        "steps": 5,
        "variants": {"v": {"aux": "none", "cue_mode": "none", "motion_tokens": 16, "seed": None}},
        **{k: getattr(defaults, k) for k in config.operational("train")},
    }
    assert "withheld" in repr(train) and "learning_rate" in repr(train)
    copied = pickle.loads(pickle.dumps(train))  # DataLoader workers get a pickled copy
    assert copied == train
    with pytest.raises(settings.UnpassedSetting):
        _ = copied.seed
    changed = settings.replace(train, learning_rate=0.5, steps=7)
    assert (changed.learning_rate, changed.steps) == (0.5, 7)
    with pytest.raises(settings.UnpassedSetting):
        _ = changed.seed
    # operational keys (how a job runs): a flag sets one, and a job run by hand without
    # the flag reads the schema default (None means not given)
    flagged = config.section_from_json("train", json.dumps(given), {"checkpoint_every": 9})
    assert flagged.checkpoint_every == 9
    unflagged = config.section_from_json("train", json.dumps(given), {"checkpoint_every": None})
    assert unflagged.checkpoint_every == config.defaults().train.checkpoint_every
    # identities (run hashes) see every field, whatever the rule passed
    assert settings.as_dict(train, every_field=True) == settings.as_dict(
        config.section_settings("train", given)
    )


def test_a_whole_section_is_not_restricted():
    whole = config.defaults().depth
    passed = config.section_from_json("depth", json.dumps(settings.as_dict(whole)))
    assert type(passed) is type(whole) and passed == whole
