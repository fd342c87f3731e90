"""Config schema: defaults are filled, bad values fail with key, value and what is allowed."""

import pytest
import yaml
from helpers import REPO, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from stance import config


def test_empty_config_gets_every_default():
    cfg = config.validate({})
    assert cfg["render"]["resolution"] == 32
    assert cfg["render"]["twins"]["position_jitter_m"] == 0.001
    assert cfg["data"]["splits"]["test"] == {"clips": 4, "seed_offset": 2000000}


@pytest.mark.parametrize(
    "path",
    ["config.yaml", *sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("configs/*.yaml"))],
)
def test_shipped_configs_are_valid(path):
    cfg = config.load(REPO / path)
    assert cfg["run_name"]


def test_the_schema_allows_exactly_the_models_cue_modes_and_aux_kinds():
    from stance.train import model

    train = config.schema()["properties"]["train"]["properties"]
    variant = train["variants"]["additionalProperties"]["properties"]
    assert variant["cue_mode"]["enum"] == list(model.CUE_MODES)
    assert variant["aux"]["enum"] == list(model.AUX_KINDS)


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


def test_a_pretraining_rate_needs_pretraining():
    with pytest.raises(config.ConfigError, match=r"pretrain_learning_rate.*pretrain_steps"):
        config.validate({"train": {"pretrain_steps": 0, "pretrain_learning_rate": 5e-4}})
    config.validate({"train": {"pretrain_steps": 10, "pretrain_learning_rate": 5e-4}})


def test_pretraining_cpu_processes_need_a_cpu_and_an_equal_share():
    with pytest.raises(config.ConfigError, match=r"pretrain_cpu_processes: 3.*divisor"):
        config.validate({"train": {"pretrain_cpu_processes": 3, "micro_batch": 16}})
    with pytest.raises(config.ConfigError, match=r"pretrain_cpu_processes: 2.*GPUs"):
        config.validate({"train": {"pretrain_cpu_processes": 2, "micro_batch": 16, "num_gpus": 1}})
    with pytest.raises(config.ConfigError, match=r"pretrain_cpu_processes: 2.*several nodes"):
        config.validate({"train": {"pretrain_cpu_processes": 2, "micro_batch": 16, "num_nodes": 2}})
    config.validate({"train": {"pretrain_cpu_processes": 2, "micro_batch": 16}})


def test_cue_guidance_above_needs_a_cue_guidance():
    with pytest.raises(config.ConfigError, match="cue_guidance_above"):
        config.validate({"generate": {"cue_guidance_above": 0.6}})
    config.validate({"generate": {"cue_guidance": 3.0, "cue_guidance_above": 0.6}})


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


def test_a_config_whose_root_is_not_a_mapping_is_a_clear_error(write_config):
    path = write_config(["render", "data"])
    with pytest.raises(config.ConfigError, match="top level is a list; expected a mapping"):
        config.load(path)
    result = run_cli("config", "check", str(path), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "value",
    ["$(touch /tmp/x)", "org/name; rm -rf ~", "a/b/c", "", "../../no-such-folder", "org/ name"],
)
def test_model_values_must_be_hub_ids_or_existing_folders(value):
    with pytest.raises(config.ConfigError, match=r"models.video: .* neither a hub id"):
        config.validate({"models": {"video": value}} if value else {"models": {"video": "x y"}})


def test_model_values_accept_hub_ids_folders_and_the_dag_built_tiny_models(tmp_path):
    for value in ("THUDM/CogVideoX1.5-5B-I2V", str(tmp_path), config.TINY_MODELS["video"]):
        assert config.validate({"models": {"video": value}})["models"]["video"] == value


def test_the_reported_variant_must_be_a_trained_one():
    with pytest.raises(config.ConfigError, match=r"evaluate.stance_variant: \"twin\" names no"):
        config.validate({"evaluate": {"stance_variant": "twin"}})
    # one section handed to a job is not checked against the others
    assert config.section_from_json("evaluate", '{"stance_variant": "twin"}')


def test_variants_cannot_take_the_names_of_the_train_stages_own_folders():
    variants = {"cache": {"aux": "none", "cue_mode": "none"}}
    with pytest.raises(config.ConfigError, match=r"train.variants.cache: the name is taken"):
        config.validate({"train": {"variants": variants}, "evaluate": {"stance_variant": "cache"}})


def test_the_benchmark_track_needs_scale_free_dz(tmp_path):
    cfg = {"cues": {"dz": {"units": "absolute"}}, "evaluate": {"physics_iq_benchmark": "b"}}
    with pytest.raises(config.ConfigError, match=r"cues.dz.units: absolute .* expected relative"):
        config.validate(cfg)
    cfg["cues"]["dz"]["units"] = "relative"
    assert config.validate(cfg)["cues"]["dz"]["units"] == "relative"
    assert config.defaults().cues.dz.units == "relative"


# any YAML document: a resolved config or a ConfigError, never another exception
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=15,
)
_sections = st.sampled_from(
    ["render", "data", "depth", "cues", "models", "train", "generate", "evaluate"]
)
_keys = st.sampled_from(
    [
        "fps",
        "resolution",
        "frames",
        "splits",
        "variants",
        "stance_variant",
        "video",
        "depth",
        "clips",
        "mass",
        "steps",
        "scale",
        "threads",
        "batch_size",
        "aux",
        "cue_mode",
    ]
)
_documents = _values | st.dictionaries(
    _sections, st.dictionaries(_keys, _values, max_size=4) | _values, max_size=4
)


@settings(max_examples=200, deadline=None)
@given(_documents)
def test_any_config_document_validates_or_is_a_config_error(document):
    try:
        resolved = config.validate(document)
    except config.ConfigError:
        return
    assert set(resolved) >= {"render", "data", "train", "evaluate"}


def test_physics_iq_size_is_the_reference_rule_or_a_fraction():
    assert config.validate({})["evaluate"]["scale"] == "reference"
    assert config.validate({})["evaluate"]["lossy_masks"] is True
    assert config.validate({"evaluate": {"scale": 0.5}})["evaluate"]["scale"] == 0.5
    for bad in ("quarter", 0, 1.5):
        with pytest.raises(config.ConfigError, match=r"evaluate\.scale"):
            config.validate({"evaluate": {"scale": bad}})


# Parameters that share a config key's name but not its meaning.
NOT_CONFIG_VALUES = {
    "frames": "a frame selection, not render.frames",
    "dtype": "a torch dtype, not depth.dtype",
    "scale": "whether to apply the VAE scaling factor, not evaluate.scale",
    "external_dir": "a folder path (None: no external method), not evaluate.external_dir",
    "max_text_seq_length": "the model config's T5 length (226 in CogVideoX), not the cache's",
    "aux_keyframe": "the auxiliary keyframe array, not train.aux_keyframe",
}


def _config_leaves(values, leaves=None):
    leaves = {} if leaves is None else leaves
    for key, value in values.items():
        if isinstance(value, dict) and key != "variants":
            _config_leaves(value, leaves)
        else:
            leaves.setdefault(key, []).append(value)
    return leaves


def test_code_defaults_of_config_values_agree_with_the_schema():
    """One default per value: a function parameter named after a config key either has no
    default or the schema's (callers pass the config; the default is for tests and API)."""
    import ast

    from helpers import REPO

    leaves = _config_leaves(config.validate({}))
    stale, seen = [], 0
    for package in ("render", "depth", "cues", "train", "generate", "evaluate", "report", "stance"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                a = node.args
                pairs = [*zip(a.args[len(a.args) - len(a.defaults) :], a.defaults, strict=True)]
                pairs += [
                    (k, d)
                    for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
                    if d is not None
                ]
                for arg, default in pairs:
                    if arg.arg not in leaves or arg.arg in NOT_CONFIG_VALUES:
                        continue
                    seen += 1
                    value = ast.literal_eval(default)
                    if value not in leaves[arg.arg]:
                        stale.append(f"{path.name}:{node.lineno} {arg.arg}={value!r}")
    assert seen >= 10  # the scan finds the parameters it is meant to check
    assert not stale, f"defaults that disagree with config.schema.yaml: {stale}"


def test_a_config_files_variants_replace_the_embedded_ones(tmp_path):
    """Snakemake merges --configfile over config.yaml key by key; train.variants is taken
    whole from the last file that names it, other keys are left to the merge."""
    first, second, silent = (tmp_path / f"{n}.yaml" for n in ("first", "second", "silent"))
    first.write_text(yaml.safe_dump({"train": {"variants": {"a": {"aux": "none"}}}}))
    second.write_text(yaml.safe_dump({"train": {"variants": {"b": {"aux": "seg"}}}}))
    silent.write_text(yaml.safe_dump({"train": {"steps": 3}}))
    merged = {"train": {"steps": 9, "variants": {"x": {}, "b": {"aux": "none"}}}}
    out = config.variants_as_named(merged, [first, second, silent])
    assert out["train"] == {"steps": 9, "variants": {"b": {"aux": "seg"}}}
    assert config.variants_as_named({"train": {"variants": {"x": {}}}}, [])["train"] == {
        "variants": {"x": {}}
    }
    # Snakemake's --config comes after the files, and so do its variants
    overrides = {"train": {"variants": {"c": {}}}}
    assert config.variants_as_named(merged, [first], overrides)["train"]["variants"] == {"c": {}}
