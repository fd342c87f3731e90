"""The DAG on a temp copy of the repository: content-based invalidation, fail-fast config.

Each test copies the repository (tracked and untracked, not ignored files) and runs the
copy's own code through a PYTHONPATH shim, so edits in the copy change its code hashes.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import BIN, TINY_DAG, VARIANTS, Workflow

pytestmark = pytest.mark.dag
# the jobs from the variant's training on, for the tiny DAG's one variant (its evaluation
# only: the baselines' rows do not depend on training)
AFTER_TRAINING = {
    "train_variant": 1,
    "generate_shard": 1,
    "evaluate_shard": 1,
    "evaluate_tables": 1,
    "report_videos": 1,
    "report_results": 1,
    "all": 1,
}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    wf = Workflow(tmp_path_factory.mktemp("dag"))
    wf.snakemake()
    assert (wf.repo / "results/report/dataset.md").exists()
    return wf


def test_touching_every_file_reruns_nothing(workflow):
    for path in workflow.repo.rglob("*"):
        if path.is_file() and ".snakemake" not in path.parts and "results" not in path.parts:
            path.touch()
    assert workflow.pending() == {}


@contextlib.contextmanager
def edited(path: Path):
    """`path` with a comment appended (its content, so its code hash, changes) while in use."""
    original = path.read_text()
    path.write_text(original + "\n# edited by test_dag\n")
    try:
        yield
    finally:
        path.write_text(original)


def test_editing_the_report_reruns_only_the_report(workflow):
    path = workflow.repo / "report" / "dataset.py"
    with edited(path):
        assert workflow.pending() == {"report_dataset": 1, "all": 1}
    assert workflow.pending() == {}


def test_editing_render_code_reruns_render_and_everything_after(workflow):
    path = workflow.repo / "render" / "worker.py"
    with edited(path):
        assert workflow.pending() == {
            "render_shard": 2,
            "render_manifest": 1,
            "depth_shard": 2,
            "cue_shard": 2,
            "cue_dz_report": 1,
            "report_dataset": 1,
            "report_cues": 1,
            "encode_shard": 1,
            "pretrain_backbone": 1,
            **AFTER_TRAINING,
            "evaluate_shard": 3,  # the variant and both baselines
        }


def test_editing_dz_code_reruns_only_cues_and_their_dependents(workflow):
    path = workflow.repo / "cues" / "dz.py"
    with edited(path):
        assert workflow.pending() == {
            "cue_shard": 2,
            "cue_dz_report": 1,
            "report_cues": 1,
            # training reads the cue stores (the VAE cache holds no cues); baselines do not
            **AFTER_TRAINING,
        }
    assert workflow.pending() == {}


def test_editing_the_stance_model_retrains_but_keeps_the_encoded_latents(workflow):
    path = workflow.repo / "train" / "model.py"
    with edited(path):
        assert workflow.pending() == {"pretrain_backbone": 1, **AFTER_TRAINING}


def test_editing_the_tables_code_reruns_only_the_gather(workflow):
    path = workflow.repo / "evaluate" / "tables.py"
    with edited(path):
        assert workflow.pending() == {"evaluate_tables": 1, "report_results": 1, "all": 1}


VALIDATING = {
    "data": {"splits": {"val": {"clips": 1, "seed_offset": 1000000}}},
    "train": {"validate_every": 2, "validate_sampling_steps": 2},
}


def test_editing_the_tracker_rescores_a_validating_run_without_retraining(tmp_path_factory):
    """The validation probe samples and tracks with the evaluation's code, but it leaves the
    weights alone, so only the trainer's code keys the training jobs: in a run that
    validates, editing evaluate/motion.py re-scores the test clips and retrains nothing."""
    run = Workflow(tmp_path_factory.mktemp("validating"))
    (run.repo / "validating.yaml").write_text(yaml.safe_dump(VALIDATING))
    run.snakemake(configfiles=("validating.yaml",))
    variant = next(iter(VARIANTS))
    assert (run.repo / f"results/train/{variant}/validation.csv").exists()
    with edited(run.repo / "evaluate" / "motion.py"):
        pending = run.pending(**VALIDATING)
    rescoring = {"evaluate_shard", "evaluate_tables", "report_videos", "report_results", "all"}
    assert set(pending) == rescoring
    assert run.pending(**VALIDATING) == {}


def test_changing_a_cue_value_reruns_cues_only(workflow):
    (workflow.repo / "cue.yaml").write_text(yaml.safe_dump({"cues": {"reference_frame": 2}}))
    result = workflow.snakemake("-n", "--quiet", "rules", configfiles=("cue.yaml",))
    text = result.stdout + result.stderr
    assert "cue_shard" in text and "render_shard" not in text and "depth_shard" not in text
    assert "encode_shard" not in text  # the VAE cache holds no cues


def test_a_training_value_reruns_training_not_encoding(workflow):
    assert workflow.pending(train={"learning_rate": 5e-4}) == {
        "pretrain_backbone": 1,
        **AFTER_TRAINING,
    }


def test_the_variants_rate_alone_keeps_the_pretrained_backbone(workflow):
    """The backbone pretrained at the tiny config's 1e-3, now named by
    pretrain_learning_rate beside another rate for the variants, is the same job."""
    pending = workflow.pending(train={"learning_rate": 5e-4, "pretrain_learning_rate": 1e-3})
    assert "pretrain_backbone" not in pending and pending["train_variant"] == 1
    assert workflow.pending(train={"pretrain_learning_rate": 1e-3}) == {}
    pending = workflow.pending(train={"pretrain_learning_rate": 5e-4})
    assert pending["pretrain_backbone"] == 1 and pending["train_variant"] == 1


def test_a_new_variant_trains_only_itself(workflow):
    extra = {"aux": "none", "cue_mode": "none"}  # a config file names all its variants
    pending = workflow.pending(train={"variants": {**VARIANTS, "backbone": extra}})
    assert pending["train_variant"] == 1 and pending["generate_shard"] == 1
    assert "encode_shard" not in pending and "cue_shard" not in pending
    assert "pretrain_backbone" not in pending  # the shared backbone is reused


def test_a_replicate_trains_only_itself_and_rows_carry_the_training_seed(workflow):
    ((name, variant),) = VARIANTS.items()
    rows = pd.concat(
        map(pd.read_parquet, (workflow.repo / "results/evaluate" / name).rglob("*.parquet"))
    )
    assert (rows["train_seed"] == 0).all()  # train.seed, passed on by generation
    assert rows["evaluation_code"].str.fullmatch("[0-9a-f]{16}").all()  # the rule's hash
    replicate = {f"{name}_seed1": {**variant, "seed": 1}}
    pending = workflow.pending(train={"variants": {**VARIANTS, **replicate}})
    assert pending["train_variant"] == 1 and pending["generate_shard"] == 1
    assert "pretrain_backbone" not in pending and "encode_shard" not in pending
    unset = {name: {**variant, "seed": None}}  # the same as no seed: nothing to do
    assert "train_variant" not in workflow.pending(train={"variants": unset})


def test_a_config_files_variants_are_its_complete_list(workflow):
    """A --configfile naming fewer variants than config.yaml trains only those (Snakemake
    alone would merge them into the embedded ones)."""
    named = {
        "train": {"variants": {"backbone": {"aux": "none", "cue_mode": "none"}}},
        "evaluate": {"stance_variant": "backbone"},
    }
    (workflow.repo / "named.yaml").write_text(yaml.safe_dump(named))
    out = workflow.snakemake("-n", "--forceall", "--quiet", "rules", configfiles=("named.yaml",))
    assert re.search(r"^train_variant\s+1\s*$", out.stdout + out.stderr, re.MULTILINE)


def test_the_last_config_file_naming_variants_names_them_all(workflow):
    """Of two --configfile files, the later one's variants are the list, not a merge."""
    both = {"aux": "none", "cue_mode": "none"}
    first = {"train": {"variants": {"backbone": both, "other": both}}}
    second = {"train": {"variants": {"backbone": both}}, "evaluate": {"stance_variant": "backbone"}}
    for name, document in (("first.yaml", first), ("second.yaml", second)):
        (workflow.repo / name).write_text(yaml.safe_dump(document))
    out = workflow.snakemake(
        "-n", "--forceall", "--quiet", "rules", configfiles=("first.yaml", "second.yaml")
    )
    assert re.search(r"^train_variant\s+1\s*$", out.stdout + out.stderr, re.MULTILINE)


def training_jobs(workflow, variants: dict) -> dict[str, dict[str, int]]:
    """Training job ("pretrain_backbone" or the variant) -> its threads and priority in a
    dry run of `--cores 2`."""
    (workflow.repo / "threads.yaml").write_text(yaml.safe_dump({"train": {"variants": variants}}))
    out = workflow.snakemake("-n", "--forcerun", "pretrain_backbone", configfiles=("threads.yaml",))
    jobs = {}
    for job in re.split(r"^rule ", out.stdout + out.stderr, flags=re.MULTILINE)[1:]:
        rule = job.split(":", 1)[0]
        if rule in ("pretrain_backbone", "train_variant"):
            variant = re.search(r"^\s+wildcards: variant=(\w+)$", job, re.MULTILINE)
            jobs[variant.group(1) if variant else rule] = {
                item: int(found.group(1)) if found else default
                for item, default in (("threads", 1), ("priority", 0))
                for found in [re.search(rf"^\s+{item}: (\d+)$", job, re.MULTILINE)]
            }
    return jobs


def test_several_variants_train_two_at_a_time_the_longest_first(workflow):
    """Pretraining takes every core; with several variants each takes half, so two
    fine-tune at once on 2 cores, those with an auxiliary stream (twice the step) first,
    and every fine-tuning job ahead of generation shards (priority 0); a lone variant
    takes every core."""
    other = {"aux": "none", "cue_mode": "none"}
    assert training_jobs(workflow, {**VARIANTS, "backbone": other}) == {
        "pretrain_backbone": {"threads": 2, "priority": 0},
        "rgb_depth": {"threads": 1, "priority": 2},
        "backbone": {"threads": 1, "priority": 1},
    }
    assert training_jobs(workflow, VARIANTS)["rgb_depth"]["threads"] == 2


def test_a_new_generated_split_leaves_existing_generations_alone(workflow):
    pending = workflow.pending(generate={"splits": ["test", "train"]})
    assert pending["generate_shard"] == 1  # the train shard only: the test shard is kept


def test_fine_tuning_values_leave_the_pretrained_backbone_alone(workflow):
    """The fine-tuning length and cue settings rerun the variants only; the pretraining
    length reruns the backbone and every variant fine-tuned from it."""
    for change in ({"steps": 3}, {"cue_dropout": 0.2}, {"aux_keyframe": "rgb"}):
        pending = workflow.pending(train=change)
        assert pending["train_variant"] == 1 and "pretrain_backbone" not in pending, change
    pending = workflow.pending(train={"pretrain_steps": 3})
    assert pending["pretrain_backbone"] == 1 and pending["train_variant"] == 1
    assert "encode_shard" not in pending


def test_operational_values_rerun_nothing(workflow):
    assert workflow.pending(render={"threads": 2}) == {}
    assert workflow.pending(depth={"batch_size": 3}) == {}
    assert workflow.pending(generate={"memory_profile": "offload"}) == {}


def test_the_reported_variant_reruns_only_the_tables(workflow):
    tables = {"evaluate_tables": 1, "report_results": 1, "all": 1}
    assert workflow.pending(evaluate={"bootstrap": 50}) == tables
    backbone = {**VARIANTS, "backbone": {"aux": "none", "cue_mode": "none"}}
    added = workflow.pending(train={"variants": backbone})
    shown = workflow.pending(train={"variants": backbone}, evaluate={"stance_variant": "backbone"})
    assert shown == added  # naming the shown variant adds no job beyond the tables


def test_changing_a_render_value_reruns_render(workflow):
    (workflow.repo / "spp.yaml").write_text(
        yaml.safe_dump({"render": {**TINY_DAG["render"], "samples_per_pixel": 2}})
    )
    result = workflow.snakemake("-n", "--quiet", "rules", configfiles=("spp.yaml",))
    assert "render_shard" in result.stdout + result.stderr


def test_bad_config_fails_fast_with_a_clear_message(workflow):
    (workflow.repo / "bad.yaml").write_text(yaml.safe_dump({"render": {"fps": 7}}))
    result = workflow.snakemake("-n", configfiles=("bad.yaml",), check=False)
    assert result.returncode != 0
    assert "render.fps: 7 is not allowed; expected one of" in result.stdout + result.stderr
    assert (workflow.repo / "results/report/dataset.md").exists()  # nothing lost


def test_paper_config_dry_run_builds_the_full_dag(workflow):
    result = workflow.snakemake("-n", "--quiet", "rules", configfiles=("configs/paper.yaml",))
    text = result.stdout + result.stderr
    jobs = int(re.search(r"^total\s+(\d+)", text, re.MULTILINE).group(1))
    assert 1000 <= jobs <= 5000


def test_operational_training_and_depth_values_rerun_nothing(workflow):
    assert workflow.pending(depth={"device": "cpu"}) == {}
    babysitting = {"checkpoint_every": 1, "keep_checkpoints": 3, "stop_before_limit_s": 60}
    assert workflow.pending(train={**TINY_DAG["train"], **babysitting}) == {}


def test_config_strings_reach_jobs_as_data_never_as_code(tmp_path_factory):
    """A real depth job whose model folder name holds shell metacharacters and spaces, in a
    workflow copy whose own path has a space: the job runs, nothing is executed."""
    root = tmp_path_factory.mktemp("dag with spaces")
    wf = Workflow(root)
    marker = root / "PWNED"
    model = f"models/tiny depth $(touch {marker}) `touch {marker}` ; touch {marker} 'x\""
    result = subprocess.run(
        [str(BIN / "stance"), "models", "make-tiny", "depth", "--out", model],
        cwd=wf.repo,
        env=wf.env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    overrides = {
        "models": {"depth": model},
        "evaluate": {"external_dir": f"ext $(touch {marker})"},
        "train": {**TINY_DAG["train"], "accelerate_config": f"a $(touch {marker}).yaml"},
    }
    (wf.repo / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    wf.snakemake("results/depth/test/00000", configfiles=("overrides.yaml",))
    assert not marker.exists() and not (wf.repo / "PWNED").exists()
    record = (wf.repo / "results/depth/test/00000/depth.resolved.json").read_text()
    assert "tiny depth $(touch" in record  # the folder was read under its literal name


def test_a_model_value_that_is_neither_hub_id_nor_folder_stops_the_dag(workflow):
    (workflow.repo / "bad.yaml").write_text(yaml.safe_dump({"models": {"depth": "$(touch x)"}}))
    result = workflow.snakemake("-n", configfiles=("bad.yaml",), check=False)
    assert result.returncode != 0
    assert "models.depth" in result.stdout + result.stderr
    assert "neither a hub id" in result.stdout + result.stderr


def test_the_physics_iq_benchmark_track_runs_only_when_configured(workflow, tmp_path):
    """With evaluate.physics_iq_benchmark set (a tiny synthetic folder in the Verified
    layout at 30FPS, resampled to render.fps = 12: conditioning parts from the full videos;
    its masks, shipped at 30FPS, are computed at 12 as the reference does): cues of every
    view once, one generation job per variant and seed, one scoring job per variant (all
    its seeds), one table; without it, none."""
    import physics_iq_synthetic as synthetic

    from stance import physics_iq_folder as folder

    bench, descriptions = synthetic.write_benchmark(tmp_path, fps=30, track="verified")
    overrides = {
        "evaluate": {
            "physics_iq_benchmark": str(bench),
            "physics_iq_descriptions": str(descriptions),
            "physics_iq_seeds": 2,
            "physics_iq_prompts": "bpp",
        }
    }
    assert workflow.pending(**overrides) == {
        "physics_iq_cues": 1,
        "physics_iq_generate": 2,
        "physics_iq_score": 1,
        "physics_iq_tables": 1,
        "all": 1,
    }
    workflow.snakemake(configfiles=("overrides.yaml",))
    views = folder.scan(bench, 12)
    for run in ("01", "02"):
        out = workflow.repo / "results/generate/rgb_depth/physics_iq" / f"rgb_depth-bpp-run_{run}"
        assert sorted(p.stem for p in out.glob("*.mp4")) == [v.name for v in views]
        assert len(folder.read_rgb(out / f"{views[0].name}.mp4")) == 12 * 5
    table = (workflow.repo / "results/evaluate/physics_iq_benchmark.md").read_text()
    assert "Track: verified" in table and "bpp" in table
    assert "rgb_depth" in table and "Solid Mechanics" in table and "±" in table
    assert workflow.pending() == {}  # without the folder: no benchmark jobs


def test_an_incomplete_benchmark_folder_stops_the_dag_before_any_job(workflow, tmp_path):
    import physics_iq_synthetic as synthetic

    bench, _ = synthetic.write_benchmark(tmp_path, fps=30)
    next((bench / "switch-frames").glob("0001_*.jpg")).unlink()
    (workflow.repo / "piq_bad.yaml").write_text(
        yaml.safe_dump({"evaluate": {"physics_iq_benchmark": str(bench)}})
    )
    result = workflow.snakemake("-n", configfiles=("piq_bad.yaml",), check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "switch-frames" in text and "complete the benchmark download" in text
