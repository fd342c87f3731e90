"""The tiny DAG through `snakemake --profile slurm` on a real single-node Slurm.

Brings up slurm-wlm + munge on 127.0.0.1 with fake GPU gres devices (tests/slurm/),
runs the DAG through the repository's Slurm profile (test overrides: no account, squeue
as the status command), asserts that the jobs went through sbatch and that the results
equal a local run, and stops the daemons it started. Skips, saying why, when not root
or when the packages cannot be installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import BIN, REPO, Workflow

pytestmark = pytest.mark.slurm
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


def _have_slurm() -> bool:
    return all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch"))


def _running() -> bool:
    result = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=20)
    return result.returncode == 0 and bool(result.stdout.strip())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local Slurm needs root (munged, slurmctld and slurmd run as root here)")
    if not _have_slurm():
        install = subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "slurm-wlm munge",
            shell=True,
            capture_output=True,
            text=True,
        )
        if install.returncode != 0 or not _have_slurm():
            reason = f"slurm-wlm/munge could not be installed: {install.stderr[-300:]}"
            if os.environ.get("CI", "").lower() == "true":  # CI installs it: a real failure
                pytest.fail(reason)
            pytest.skip(reason)
    if _running():
        yield None  # somebody else's cluster: use it, do not stop it
        return
    state = tmp_path_factory.mktemp("slurm-state")
    started = subprocess.run(
        ["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], timeout=60)
        pytest.fail(f"Slurm did not start: {started.stderr}\n{_logs(state)}")
    yield state
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], timeout=60)


def _logs(state: Path) -> str:
    return "\n".join(p.read_text()[-1000:] for p in state.glob("*.log"))


def on_slurm_profile(workflow: Workflow, *args: str, timeout: int) -> str:
    """`snakemake --profile slurm ARGS` in the workflow copy, with the test overrides (no
    account, squeue as the status command); returns the log, asserts success."""
    result = subprocess.run(
        [
            str(BIN / "snakemake"),
            *args,
            "--profile",
            "slurm",
            "--slurm-no-account",
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--verbose",
        ],
        cwd=workflow.repo,
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = result.stdout + result.stderr
    with (workflow.repo / "slurm-run.log").open("a") as handle:
        handle.write(log)
    assert result.returncode == 0, log[-4000:]
    return log


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    local = Workflow(tmp_path_factory.mktemp("local"))
    local.snakemake()
    on_slurm = Workflow(tmp_path_factory.mktemp("slurm"))
    log = on_slurm_profile(on_slurm, "--slurm-keep-successful-logs", timeout=1800)
    return local, on_slurm, log


def test_jobs_went_through_sbatch(runs):
    _, on_slurm, log = runs
    calls = re.findall(r"sbatch call: (sbatch .*?) --wrap", log)
    rules = {re.search(r"--comment (\S+)", c).group(1) for c in calls}
    assert any(r.startswith("rule_train_variant") for r in rules)
    assert any("render" in r for r in rules) and any(r.startswith("rule_cue_shard") for r in rules)
    assert list((on_slurm.repo / "logs" / "slurm").rglob("*.log"))
    train = next(c for c in calls if "rule_train_variant" in c)
    print("sbatch flags of the training job:", train)
    for flag in ("-p gpu", "--gpus=h100:8", "--nodes=1", "--cpus-per-task=64", "--exclusive"):
        assert flag in train
    assert "--ntasks-per-gpu" not in train  # one task with all 8 GPUs


def test_results_equal_a_local_run(runs):
    local, on_slurm, _ = runs
    from stance.cues import store as cue_store
    from stance.render import store

    for clip in (local.repo / "results/render/test/00000").glob("*.zarr"):
        a = store.read_clip(clip)
        b = store.read_clip(on_slurm.repo / "results/render/test/00000" / clip.name)
        for name in store.FRAME_ARRAYS:
            assert np.array_equal(a.arrays[name], b.arrays[name]), (clip.name, name)
    for cue in (local.repo / "results/cues/test/00000").glob("*.zarr"):
        a = cue_store.read(cue)
        b = cue_store.read(on_slurm.repo / "results/cues/test/00000" / cue.name)
        assert np.array_equal(a.cue, b.cue)
    tables = [pd.read_csv(w.repo / "results/evaluate/table1.csv") for w in (local, on_slurm)]
    pd.testing.assert_frame_equal(*tables)


def test_training_stops_at_the_time_limit_and_resumes(runs):
    """A training job on a 1-minute Slurm limit checkpoints and exits before Slurm kills
    it; Snakemake's retry (a longer limit on attempt 2) resumes from that checkpoint."""
    import yaml

    _, on_slurm, _ = runs
    config_file = on_slurm.repo / "config.yaml"
    cfg = yaml.safe_load(config_file.read_text())
    cfg["train"].update(steps=300, checkpoint_every=100, keep_checkpoints=10)
    # 59 s before a 60 s limit has passed when the trainer starts: attempt 1 stops after
    # its first step whatever the machine's speed; attempt 2 (10 min) runs to the end.
    cfg["train"]["stop_before_limit_s"] = 59
    config_file.write_text(yaml.safe_dump(cfg))
    variant = next(iter(cfg["train"]["variants"]))
    log = on_slurm_profile(
        on_slurm,
        f"results/train/{variant}",
        "--set-resources",
        "train_variant:slurm_partition='gpu'",
        "train_variant:runtime=1 if attempt == 1 else 10",
        timeout=900,
    )
    assert "-t 1 " in log and "-t 10 " in log, "attempt 1 on 1 min, the retry on 10 min"
    histories = (on_slurm.repo / "results/train/runs" / variant).glob("*/history.jsonl")
    run_dir = max(histories, key=lambda p: p.stat().st_mtime).parent  # the 300-step run
    events = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    attempts = [e for e in events if e["slurm_job"] is not None]
    kinds = [(e["event"], e.get("reason")) for e in attempts]
    assert kinds == [("start", None), ("stop", "time limit"), ("start", None), ("finish", None)]
    stopped_at = attempts[1]["step"]
    assert 0 < stopped_at < 300 and attempts[2]["step"] == stopped_at  # resumed, not restarted
    assert attempts[0]["slurm_job"] != attempts[2]["slurm_job"]
    assert (run_dir / "checkpoints" / f"step-{stopped_at:07d}" / "COMPLETE").exists()
    steps = [int(r.split(",")[0]) for r in (run_dir / "losses.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 301))
    assert (on_slurm.repo / "results/train" / variant / "transformer/config.json").exists()
