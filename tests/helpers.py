"""Helpers shared by test modules (fixtures live in conftest.py): the repository, the
`stance` CLI, a workflow copy for DAG tests, tiny feature networks for FVD tests, a
sampling pipeline over a tiny model folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `stance` console script of this environment (Blender runs in a subprocess)."""
    result = subprocess.run([str(BIN / "stance"), *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"stance {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


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
    "train": {"steps": 2, "pretrain_steps": 2, "checkpoint_every": 2},
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
        """Run snakemake on the default target; option lists go last so nargs options end."""
        result = subprocess.run(
            [
                str(BIN / "snakemake"),
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


class TinyVideoNet(torch.nn.Module):
    """A random 3-D conv net with I3D's input and output contract (N,3,16,224,224)->(N,F)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, kernel_size=(2, 16, 16), stride=(2, 16, 16))

    def forward(self, x):
        assert x.shape[1:] == (3, 16, 224, 224)
        assert x.min() >= -1.0 and x.max() <= 1.0
        return self.conv(x).mean(dim=(2, 3, 4))


TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "patch_size": 4,
    "num_frames": 4,
    "image_size": 16,
    "num_labels": 5,
}


def original_state_dict(seed=0):
    """Random weights under the original VideoMAE-v2 key names and shapes."""
    g = torch.Generator().manual_seed(seed)
    d, hidden, p = TINY["hidden_size"], TINY["intermediate_size"], TINY["patch_size"]

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    state = {"patch_embed.proj.weight": rand(d, 3, 2, p, p), "patch_embed.proj.bias": rand(d)}
    for i in range(TINY["num_hidden_layers"]):
        b = f"blocks.{i}."
        state |= {
            b + "norm1.weight": 1 + rand(d),
            b + "norm1.bias": rand(d),
            b + "attn.qkv.weight": rand(3 * d, d),
            b + "attn.q_bias": rand(d),
            b + "attn.v_bias": rand(d),
            b + "attn.proj.weight": rand(d, d),
            b + "attn.proj.bias": rand(d),
            b + "norm2.weight": 1 + rand(d),
            b + "norm2.bias": rand(d),
            b + "mlp.fc1.weight": rand(hidden, d),
            b + "mlp.fc1.bias": rand(hidden),
            b + "mlp.fc2.weight": rand(d, hidden),
            b + "mlp.fc2.bias": rand(d),
        }
    state |= {"fc_norm.weight": 1 + rand(d), "fc_norm.bias": rand(d)}
    state |= {"head.weight": rand(TINY["num_labels"], d), "head.bias": rand(TINY["num_labels"])}
    return {"module": state}


def clip_arrays(rgb, segmentation) -> dict:
    """Render-store arrays of a synthetic clip: its RGB and segmentation, unit depth and
    zero flow (what metrics that read neither depth nor flow need)."""
    import numpy as np

    t, h, w = segmentation.shape
    return {
        "rgb": rgb,
        "depth": np.ones((t, h, w), np.float32),
        "segmentation": segmentation,
        "forward_flow": np.zeros((t, h, w, 2), np.float32),
        "backward_flow": np.zeros((t, h, w, 2), np.float32),
    }


def write_cue_store(path, size=32, cue=None):
    """A real cue store with one instance (rows 8-15) whose cue is all ones by default."""
    import numpy as np

    from stance.cues import store as cue_store

    labels = np.zeros((size, size), np.uint16)
    labels[8:16] = 1
    if cue is None:
        cue = cue_store.paint(labels, np.array([[1.0, 1.0, 1.0, 1.0]], np.float32))
    table = {c: np.ones(1, np.float32) for c in cue_store.INSTANCE_COLUMNS}
    return cue_store.write(
        path,
        cue_store.CueClip(
            cue=cue,
            keyframe=np.zeros((size, size, 3), np.uint8),
            labels=labels,
            instances=table,
            attrs={"clip_id": path.stem, "source": "test"},
            keyframe_disparity=np.linspace(0, 1, size * size, dtype=np.float32).reshape(size, size),
        ),
    )


# a random keyframe for the sampling tests (32 x 32 px, the tiny model's frame size)
KEY = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def make_pipe(model_dir, **options):
    """The STANCE sampling pipeline over a tiny model folder (`tiny.make_tiny`)."""
    from stance.generate.pipeline import StanceImageToVideoPipeline
    from stance.train import components, weights

    frozen = components.load_frozen(str(model_dir), False)
    options = {"motion_tokens": 4, **options}
    transformer = weights.stance_transformer(str(model_dir), options, False).eval()
    pipe = StanceImageToVideoPipeline(transformer=transformer, **frozen)
    pipe.set_progress_bar_config(disable=True)
    return pipe


PIQ_FRAMES = 5


def clip_rows(method: str, clips: int, quality: float, seed: int = 0) -> list[dict]:
    """One row per clip: IoUs around `quality` (higher = better) and a fixed twin."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(clips):
        base = np.clip(quality + 0.15 * rng.standard_normal(), 0.05, 0.95)
        rows.append(
            {
                "method": method,
                "clip_id": f"test-{k:04d}",
                "small_object_split": k % 2 == 1,
                "st": list(np.clip(base + 0.05 * rng.standard_normal(PIQ_FRAMES), 0, 1)),
                "s": float(base),
                "ws": float(base * 0.9),
                "mse": list(0.01 + 0.002 * rng.random(PIQ_FRAMES)),
                "pv_st": list(0.7 + 0.1 * rng.random(PIQ_FRAMES)),
                "pv_s": float(0.8 + 0.1 * rng.random()),
                "pv_ws": float(0.7 + 0.1 * rng.random()),
                "pv_mse": list(0.005 + 0.001 * rng.random(PIQ_FRAMES)),
            }
        )
    return rows


def shifted(rows: list[dict], method: str, by: float) -> list[dict]:
    """The same clips with every IoU raised by `by` (same twins): better on every clip."""
    return [
        r
        | {
            "method": method,
            "st": [x + by for x in r["st"]],
            "s": r["s"] + by,
            "ws": r["ws"] + by,
        }
        for r in rows
    ]
