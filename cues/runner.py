"""Cue jobs: one rendered shard (+ its depth shard) -> one cue shard, and the dz report."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from stance import provenance, stores
from stance.cues import compute, dz, store, visualize
from stance.depth import store as depth_store
from stance.render import store as clip_store
from stance.settings import Cues, as_dict

log = logging.getLogger(__name__)


def cue_clip(render_path: Path, depth_path: Path, settings: Cues, code_hash: str) -> store.CueClip:
    """Read only what the cue needs (frames 0..k; depth and rgb at 0 and k), compute it."""
    num_frames = clip_store.open_attrs(render_path)["render"]["frames"]
    first, last = compute.reference_frames(num_frames, settings.reference_frame)
    pair = [first, last]
    window = slice(first, last + 1)
    clip = clip_store.read_clip(
        render_path,
        frames={
            "segmentation": window,
            "forward_flow": window,
            "rgb": slice(first, first + 1),
            "depth": pair,
        },
    )
    depth_pair = clip.arrays.pop("depth")
    disparity, depth_attrs = depth_store.read_depth(depth_path, frames=pair)
    if disparity.shape != depth_pair.shape:
        raise stores.StoreError(
            f"{depth_path} holds frames of {disparity.shape[1:]} but {render_path} has "
            f"{depth_pair.shape[1:]}: regenerate the depth shard"
        )
    sources = {
        "render_store": str(render_path),
        "code_hash": code_hash,
        "render_code_hash": clip.attrs["code_hash"],
        "depth_code_hash": depth_attrs["code_hash"],
        "depth_model": depth_attrs["model"],
    }
    return compute.from_render(clip, depth_pair, disparity, settings, sources)


def run_shard(
    render_dir: Path, depth_dir: Path, out_dir: Path, settings: Cues, code_hash: str
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stores.remove_partials(out_dir)
    start = time.perf_counter()
    paths = clip_store.clip_paths(render_dir)
    for path in tqdm(paths, desc=f"cues {render_dir.name}", unit="clip"):
        cue = cue_clip(path, depth_dir / path.name, settings, code_hash)
        store.write(out_dir / path.name, cue)
        Image.fromarray(visualize.render_cue(cue)).save(out_dir / f"{path.stem}.cue.png")
    provenance.write_resolved_config(
        out_dir,
        "cues",
        {
            "cues": as_dict(settings),
            "code_hash": code_hash,
            "clips": [p.name for p in paths],
            "seconds": time.perf_counter() - start,
        },
    )


def flickering_disparity(
    gt_depth: np.ndarray, rng: np.random.Generator, flicker: float = 0.08, noise: float = 0.01
) -> np.ndarray:
    """Ground-truth disparity under a per-frame affine flicker and pixel noise, the error
    model of monocular depth (an oracle predictor up to scale and shift)."""
    disparity = np.where(gt_depth < dz.SKY_DEPTH, 1.0 / np.maximum(gt_depth, 1e-6), 0.0)
    t = len(disparity)
    scale = 1.0 + rng.uniform(-flicker, flicker, (t, 1, 1))
    shift = rng.uniform(-flicker, flicker, (t, 1, 1)) * disparity.mean()
    return (scale * disparity + shift) * (1 + rng.normal(0, noise, disparity.shape))


def dz_report(
    render_dirs: Sequence[Path],
    cue_dirs: Sequence[Path],
    settings: Cues,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation and sign accuracy of dz estimators against rendered-depth dz.

    Sources: the configured depth model's predictions (what the cue stores hold) and an
    oracle (ground-truth disparity with per-frame flicker and noise); methods: the
    configured robust estimator and the literal formula.
    """
    rng = np.random.default_rng(seed)
    columns = {key: [] for key in ("truth", "model", "model_literal", "oracle", "oracle_literal")}
    for render_dir, cue_dir in zip(render_dirs, cue_dirs, strict=True):
        for path in clip_store.clip_paths(render_dir):
            cue = store.read(cue_dir / path.name)
            clip = clip_store.read_clip(path, names=("segmentation", "depth"))
            frames = list(cue.attrs["frames"])
            seg, gt_depth = clip.arrays["segmentation"][frames], clip.arrays["depth"][frames]
            steps = frames[1] - frames[0]
            num_ids = len(cue.instances["u"]) + 1
            oracle = flickering_disparity(gt_depth, rng)
            params = settings.dz
            literal = dataclasses.replace(params, method="literal")
            columns["truth"].append(cue.instances["dz_gt"])
            columns["model"].append(cue.instances["dz"])
            columns["model_literal"].append(cue.instances["dz_literal"])
            columns["oracle"].append(dz.estimate(oracle, seg, num_ids, steps, params, gt_depth)[1:])
            columns["oracle_literal"].append(dz.estimate(oracle, seg, num_ids, steps, literal)[1:])
    values = {k: np.concatenate(v) if v else np.array([]) for k, v in columns.items()}
    rows = []
    for source, key in [("depth model", "model"), ("oracle + flicker", "oracle")]:
        for method, column in [(settings.dz.method, key), ("literal", f"{key}_literal")]:
            rows.append(
                {
                    "depth source": source,
                    "method": method,
                    **dz.agreement(values[column], values["truth"]),
                }
            )
    return pd.DataFrame(rows)


def write_dz_report(
    render_dirs: Sequence[Path], cue_dirs: Sequence[Path], settings: Cues, out: Path
) -> pd.DataFrame:
    """The dz estimator table as CSV at `out` and as Markdown beside it (.md)."""
    table = dz_report(render_dirs, cue_dirs, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    out.with_suffix(".md").write_text(
        "# dz estimators against rendered depth\n\n"
        + table.to_markdown(index=False, floatfmt=".3f")
        + "\n"
    )
    return table
