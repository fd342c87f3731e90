"""`stance bench cues`: figures for the cue stage.

The cue benchmark writes a synthetic clip (default 49x512x512, 10 moving instances) as a
real clip store + depth store, then times the cue kernel (compute from arrays in memory)
and the whole per-clip job (read the stores, compute, write the cue store + picture).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np


def synthetic_clip(frames: int, size: int, instances: int, seed: int = 0):
    """Disks sliding over a tilted floor, each with its own velocity and depth speed."""
    from stance.render import store as clip_store

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    floor = np.linspace(4.0, 12.0, size, dtype=np.float32)[:, None] * np.ones(size, np.float32)
    seg = np.zeros((frames, size, size), np.uint16)
    flow = np.zeros((frames, size, size, 2), np.float32)
    depth_gt = np.repeat(floor[None], frames, axis=0)
    centres = rng.uniform(0.2 * size, 0.8 * size, (instances, 2))
    velocity = rng.uniform(-1.5, 1.5, (instances, 2)) * size / 256
    radius = rng.uniform(0.03, 0.06, instances) * size
    base_depth, dz = rng.uniform(3.0, 8.0, instances), rng.uniform(-0.02, 0.02, instances)
    for t in range(frames):
        for i in range(instances):
            cx, cy = centres[i] + velocity[i] * t
            disk = (xx - cx) ** 2 + (yy - cy) ** 2 < radius[i] ** 2
            seg[t][disk] = i + 1
            flow[t][disk] = velocity[i]
            depth_gt[t][disk] = base_depth[i] + dz[i] * t
    rgb = (seg[..., None] * 23 % 255).astype(np.uint8).repeat(3, axis=-1)
    arrays = {
        "rgb": rgb,
        "depth": depth_gt,
        "segmentation": seg,
        "forward_flow": flow,
        "backward_flow": -flow,
    }
    positions = np.zeros((instances, frames, 3), np.float32)
    tracks = {
        name: np.zeros((instances, frames, *tail), dtype)
        for name, (dtype, tail) in clip_store.TRACKS.items()
    }
    tracks["positions"] = positions
    attrs = {
        "clip_id": "bench-00000000",
        "code_hash": "bench",
        "render": {"frames": frames, "resolution": size},
        "camera": {"position": [0.0, 0.0, 0.0]},
        "instances": [{"mass": float(m)} for m in rng.uniform(0.2, 3.0, instances)],
    }
    return arrays, tracks, attrs


HELP = "cue kernel and whole per-clip cue job time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--instances", type=int, default=10)


def run(args: argparse.Namespace) -> None:
    from stance import config
    from stance.bench import best_of
    from stance.cues import compute, kernel, runner
    from stance.depth import store as depth_store
    from stance.render import store as clip_store

    settings = config.defaults().cues
    arrays, tracks, attrs = synthetic_clip(args.frames, args.size, args.instances)
    folder = Path(tempfile.mkdtemp(prefix="stance-bench-cues-"))
    try:
        render_path = clip_store.write_clip(folder / "render" / "bench.zarr", arrays, tracks, attrs)
        disparity = runner.flickering_disparity(arrays["depth"], np.random.default_rng(0))
        depth_store.write_depth(
            folder / "depth" / "bench.zarr",
            disparity.astype(np.float32),
            {"clip_id": "bench", "model": "synthetic", "code_hash": "bench"},
        )
        clip = clip_store.read_clip(render_path)
        pair = list(compute.reference_frames(args.frames, settings.reference_frame))
        depth_pair, disparity_pair = arrays["depth"][pair], disparity[pair].astype(np.float32)
        kernel.mean_flow(arrays["segmentation"][:1], arrays["forward_flow"][:1], args.instances + 1)
        compute.from_render(clip, depth_pair, disparity_pair, settings, {})
        full_flow = best_of(
            lambda: kernel.mean_flow(
                arrays["segmentation"], arrays["forward_flow"], args.instances + 1
            )
        )
        cue_kernel = best_of(
            lambda: compute.from_render(clip, depth_pair, disparity_pair, settings, {})
        )
        out = folder / "cues"

        def whole_job():
            shutil.rmtree(out, ignore_errors=True)
            runner.run_shard(folder / "render", folder / "depth", out, settings, "bench")

        job = best_of(whole_job)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"cue bench: {args.frames}x{args.size}x{args.size}, {args.instances} instances, "
        f"reference frames 0->{min(settings.reference_frame, args.frames - 1)}"
    )
    print(f"  per-instance flow over all {args.frames} frames (numba): {full_flow * 1e3:7.1f} ms")
    print(f"  cue kernel (flow, dz with alignment, mass, paint):  {cue_kernel * 1e3:7.1f} ms")
    print(f"  whole per-clip job (read, compute, write + PNG):   {job * 1e3:7.1f} ms")
