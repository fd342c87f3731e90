"""Depth stage: Depth-Anything-V2 monocular depth for every frame of every clip of a shard
(store format: `stance.depth.store`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from stance import provenance, stores
from stance.depth import store as depth_store
from stance.depth.model import estimator
from stance.render import store as clip_store
from stance.settings import Depth, as_dict

log = logging.getLogger(__name__)


def run_shard(
    render_dir: Path,
    out_dir: Path,
    settings: Depth,
    model_source: str,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    """Predict depth for every clip store of a rendered shard (twins are not needed)."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    stores.remove_partials(out_dir)
    depth = estimator(model_source, settings, allow_download)
    device, dtype = depth.device, depth.dtype
    clips = clip_store.clip_paths(render_dir)
    start, frames_done = time.perf_counter(), 0
    for path in tqdm(clips, desc=f"depth {render_dir.name}", unit="clip"):
        clip = clip_store.read_clip(path, names=("rgb",))
        disparity = depth(clip.arrays["rgb"])
        frames_done += len(disparity)
        attrs = {
            "clip_id": clip.attrs["clip_id"],
            "model": model_source,
            "input_size": settings.input_size,
            "preprocessing": depth.processor.to_dict(),
            "device": device,
            "dtype": dtype,
            "code_hash": code_hash,
            "render_code_hash": clip.attrs["code_hash"],
        }
        depth_store.write_depth(out_dir / path.name, disparity, attrs)
    seconds = time.perf_counter() - start
    rate = frames_done / max(seconds, 1e-9)
    log.info(
        "depth: %d frames in %.1f s (%.1f frames/s) on %s/%s",
        frames_done,
        seconds,
        rate,
        device,
        dtype,
    )
    provenance.write_resolved_config(
        out_dir,
        "depth",
        {
            "depth": as_dict(settings),
            "model": model_source,
            "device": device,
            "dtype": dtype,
            "code_hash": code_hash,
            "clips": [p.name for p in clips],
            "seconds": seconds,
        },
    )
