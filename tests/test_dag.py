"""The DAG on a temp copy of the repository: content-based invalidation, fail-fast config.

Each test copies the repository (tracked and untracked, not ignored files) and runs the
copy's own code through a PYTHONPATH shim, so edits in the copy change its code hashes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO

pytestmark = pytest.mark.dag
# Merged over config.yaml into the copy's config.yaml (train.variants replaced, not merged).
TINY_DAG = {
    "data": {
        "clips_per_shard": 1,
        "splits": {
            "train": {"clips": 1, "seed_offset": 0},
            "val": {"clips": 0, "seed_offset": 1000000},
            "test": {"clips": 1, "seed_offset": 2000000},
        },
    },
    "render": {"resolution": 32, "frames": 5, "samples_per_pixel": 1},
    "train": {"steps": 2, "checkpoint_every": 2},
}
VARIANTS = {"rgb_depth": {"aux": "depth", "cue_mode": "dense_rope", "motion_tokens": 4}}


def tiny_config() -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for section, values in TINY_DAG.items():
        cfg.setdefault(section, {}).update(values)
    cfg["train"]["variants"] = VARIANTS
    return cfg


def copy_repo(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def shim(repo: Path, dest: Path) -> Path:
    """A `stance` namespace on PYTHONPATH that points at the copy's folders."""
    import tomllib

    package_dirs = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    pkg = dest / "stance"
    pkg.mkdir(parents=True)
    for item in (repo / "stance").iterdir():
        (pkg / item.name).symlink_to(item)
    for name, folder in package_dirs.items():
        if name != "stance":
            (pkg / name.split(".", 1)[1]).symlink_to(repo / folder)
    return dest


class Workflow:
    def __init__(self, root: Path):
        self.repo = copy_repo(root / "repo")
        self.env = {
            **os.environ,
            "PYTHONPATH": str(shim(self.repo, root / "shim")),
            "PATH": f"{BIN}:{os.environ['PATH']}",
        }
        (self.repo / "config.yaml").write_text(yaml.safe_dump(tiny_config()))

    def snakemake(
        self, *args: str, configfiles=(), check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run snakemake on target `all`; option lists go last so nargs options end."""
        result = subprocess.run(
            [
                str(BIN / "snakemake"),
                "all",
                *args,
                "--cores",
                "2",
                *(["--configfile", *configfiles] if configfiles else []),
            ],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(result.stdout[-3000:] + result.stderr[-3000:])
        return result

    def pending(self, **overrides) -> dict[str, int]:
        """Rule -> number of jobs a dry run would execute (with config overrides)."""
        configfiles = ()
        if overrides:
            (self.repo / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            configfiles = ("overrides.yaml",)
        out = self.snakemake("-n", "--quiet", "rules", configfiles=configfiles)
        text = out.stdout + out.stderr
        if "Nothing to be done" in text:
            return {}
        return {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.MULTILINE)
            if m.group(1) != "total"
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


def _edit(path: Path):
    original = path.read_text()
    path.write_text(original + "\n# edited by test_dag\n")
    return original


def test_editing_the_report_reruns_only_the_report(workflow):
    path = workflow.repo / "evaluate" / "dataset_report.py"
    original = _edit(path)
    try:
        assert workflow.pending() == {"report_dataset": 1, "all": 1}
    finally:
        path.write_text(original)
    assert workflow.pending() == {}


def test_editing_render_code_reruns_render_and_everything_after(workflow):
    path = workflow.repo / "render" / "worker.py"
    original = _edit(path)
    try:
        assert workflow.pending() == {
            "render_shard": 2,
            "render_manifest": 1,
            "depth_shard": 2,
            "cue_shard": 2,
            "cue_dz_report": 1,
            "report_dataset": 1,
            "report_cues": 1,
            "encode_shard": 1,
            "train_variant": 1,
            "generate_shard": 1,
            "evaluate_shard": 3,  # the variant and both baselines
            "evaluate_tables": 1,
            "evaluate_videos": 1,
            "all": 1,
        }
    finally:
        path.write_text(original)


def test_editing_dz_code_reruns_only_cues_and_their_dependents(workflow):
    path = workflow.repo / "cues" / "dz.py"
    original = _edit(path)
    try:
        assert workflow.pending() == {
            "cue_shard": 2,
            "cue_dz_report": 1,
            "report_cues": 1,
            "train_variant": 1,  # reads the cue stores; the VAE cache holds no cues
            "generate_shard": 1,
            "evaluate_shard": 1,  # baselines do not read cues
            "evaluate_tables": 1,
            "evaluate_videos": 1,
            "all": 1,
        }
    finally:
        path.write_text(original)
    assert workflow.pending() == {}


def test_editing_the_tables_code_reruns_only_the_gather(workflow):
    path = workflow.repo / "evaluate" / "tables.py"
    original = _edit(path)
    try:
        assert workflow.pending() == {"evaluate_tables": 1, "all": 1}
    finally:
        path.write_text(original)


def test_changing_a_cue_value_reruns_cues_only(workflow):
    (workflow.repo / "cue.yaml").write_text(yaml.safe_dump({"cues": {"reference_frame": 2}}))
    result = workflow.snakemake("-n", "--quiet", "rules", configfiles=("cue.yaml",))
    text = result.stdout + result.stderr
    assert "cue_shard" in text and "render_shard" not in text and "depth_shard" not in text


def test_a_training_value_reruns_training_not_encoding(workflow):
    assert workflow.pending(train={"learning_rate": 5e-4}) == {
        "train_variant": 1,
        "generate_shard": 1,
        "evaluate_shard": 1,
        "evaluate_tables": 1,
        "evaluate_videos": 1,
        "all": 1,
    }


def test_a_new_variant_trains_only_itself(workflow):
    extra = {"aux": "none", "cue_mode": "none"}
    pending = workflow.pending(train={"variants": {"backbone": extra}})
    assert pending["train_variant"] == 1 and pending["generate_shard"] == 1
    assert "encode_shard" not in pending and "cue_shard" not in pending


def test_operational_values_rerun_nothing(workflow):
    assert workflow.pending(render={"threads": 2}) == {}
    assert workflow.pending(depth={"batch_size": 3}) == {}


def test_the_reported_variant_reruns_only_the_tables(workflow):
    assert workflow.pending(evaluate={"stance_variant": "twin"}) == {
        "evaluate_tables": 1,
        "all": 1,
    }


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
