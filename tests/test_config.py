"""Config schema: defaults are filled, bad values fail with key, value and what is allowed."""

import pytest
from conftest import REPO, run_cli

from stance import config


def test_empty_config_gets_every_default():
    cfg = config.validate({})
    assert cfg["render"]["resolution"] == 32
    assert cfg["render"]["twins"]["position_jitter_m"] == 0.001
    assert cfg["data"]["splits"]["test"] == {"clips": 4, "seed_offset": 2000000}


@pytest.mark.parametrize("path", ["config.yaml", "configs/paper.yaml"])
def test_shipped_configs_are_valid(path):
    cfg = config.load(REPO / path)
    assert cfg["run_name"]


def test_paper_config_has_the_paper_settings():
    cfg = config.load(REPO / "configs/paper.yaml")
    total = sum(s["clips"] for s in cfg["data"]["splits"].values())
    assert total == 200_000
    assert (cfg["render"]["resolution"], cfg["render"]["frames"], cfg["render"]["fps"]) == (
        512,
        49,
        16,
    )


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"render": {"resolution": 40}}, ["render.resolution", "40", "multiple of 16"]),
        ({"render": {"fps": 7}}, ["render.fps", "7", "one of"]),
        ({"render": {"frames": "nine"}}, ["render.frames", '"nine"', "type integer"]),
        ({"render": {"resolutoin": 32}}, ["render", "resolutoin", "allowed"]),
        ({"data": {"clips_per_shard": 0}}, ["data.clips_per_shard", "0", ">= 1"]),
        ({"data": {"splits": {"val": {"clips": 2}}}}, ["data.splits.val", "seed_offset"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(patch, expected):
    with pytest.raises(config.ConfigError) as err:
        config.validate(patch)
    message = str(err.value)
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_all_errors_are_reported_at_once():
    with pytest.raises(config.ConfigError) as err:
        config.validate({"render": {"resolution": 40, "fps": 7}})
    assert "render.resolution" in str(err.value) and "render.fps" in str(err.value)


def test_min_above_max_is_rejected():
    with pytest.raises(config.ConfigError, match=r"min_objects.*larger than"):
        config.validate({"render": {"collisions": {"min_objects": 6, "max_objects": 3}}})


def test_overlapping_split_seeds_are_rejected():
    splits = {
        "train": {"clips": 10, "seed_offset": 0},
        "val": {"clips": 2, "seed_offset": 5},
        "test": {"clips": 2, "seed_offset": 100},
    }
    with pytest.raises(config.ConfigError, match="overlaps the seeds of split train"):
        config.validate({"data": {"splits": splits}})


def test_family_mix_needs_a_positive_weight():
    with pytest.raises(config.ConfigError, match="family_mix"):
        config.validate({"render": {"family_mix": {"collisions": 0, "composite": 0}}})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("render: [unclosed")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)


def test_cli_reports_config_errors_without_traceback(write_config):
    path = write_config({"render": {"resolution": 40}})
    result = run_cli("config", "check", str(path), check=False)
    assert result.returncode == 2
    assert "render.resolution: 40" in result.stderr
    assert "Traceback" not in result.stderr


def test_paper_config_names_the_paper_models_and_budget():
    cfg = config.load(REPO / "configs/paper.yaml")
    assert cfg["models"]["depth"] == "depth-anything/Depth-Anything-V2-Large-hf"
    assert cfg["models"]["video"] == "THUDM/CogVideoX1.5-5B-I2V"
    assert cfg["models"]["fvd"].endswith("i3d_torchscript.pt")
    assert (cfg["train"]["steps"], cfg["train"]["num_gpus"]) == (50000, 8)
