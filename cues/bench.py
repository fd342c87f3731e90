"""`stance bench cues` and `stance bench depth`: figures for the cue and depth stages.

The cue benchmark writes a synthetic clip (default 49x512x512, 10 moving instances) as a
real clip store + depth store, then times the cue kernel (compute from arrays in memory)
and the whole per-clip job (read the stores, compute, write the cue store + picture).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from stance import config
from stance.cues import compute, depth, kernel, runner
from stance.render import store as clip_store


def synthetic_clip(frames: int, size: int, instances: int, seed: int = 0):
    """Disks sliding over a tilted floor, each with its own velocity and depth speed."""
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


def run_cues(args: argparse.Namespace) -> None:
    settings = config.validate({})["cues"]
    arrays, tracks, attrs = synthetic_clip(args.frames, args.size, args.instances)
    folder = Path(tempfile.mkdtemp(prefix="stance-bench-cues-"))
    try:
        render_path = clip_store.write_clip(folder / "render" / "bench.zarr", arrays, tracks, attrs)
        disparity = runner.flickering_disparity(arrays["depth"], np.random.default_rng(0))
        depth.write_depth(
            folder / "depth" / "bench.zarr",
            disparity.astype(np.float32),
            {"clip_id": "bench", "model": "synthetic", "code_hash": "bench"},
        )
        clip = clip_store.read_clip(render_path)
        pair = list(compute.reference_frames(args.frames, settings["reference_frame"]))
        depth_pair, disparity_pair = arrays["depth"][pair], disparity[pair].astype(np.float32)
        kernel.mean_flow(arrays["segmentation"][:1], arrays["forward_flow"][:1], args.instances + 1)
        compute.from_render(clip, depth_pair, disparity_pair, settings, {})
        full_flow = _best(
            lambda: kernel.mean_flow(
                arrays["segmentation"], arrays["forward_flow"], args.instances + 1
            )
        )
        cue_kernel = _best(
            lambda: compute.from_render(clip, depth_pair, disparity_pair, settings, {})
        )
        out = folder / "cues"

        def whole_job():
            shutil.rmtree(out, ignore_errors=True)
            runner.run_shard(folder / "render", folder / "depth", out, settings, "bench")

        job = _best(whole_job)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"cue bench: {args.frames}x{args.size}x{args.size}, {args.instances} instances, "
        f"reference frames 0->{min(settings['reference_frame'], args.frames - 1)}"
    )
    print(f"  per-instance flow over all {args.frames} frames (numba): {full_flow * 1e3:7.1f} ms")
    print(f"  cue kernel (flow, dz with alignment, mass, paint):  {cue_kernel * 1e3:7.1f} ms")
    print(f"  whole per-clip job (read, compute, write + PNG):   {job * 1e3:7.1f} ms")


def run_depth(args: argparse.Namespace) -> None:
    from stance.cues import depth_model

    cfg = config.load(args.config)
    settings = cfg["depth"]
    device, dtype = depth.resolve_device(settings["device"], settings["dtype"])
    model, processor = depth_model.load(args.model or cfg["models"]["depth"])
    model.to(device)
    size = args.input_size or settings["input_size"]
    frames = np.random.default_rng(0).integers(
        0, 255, (args.frames, args.frame_size, args.frame_size, 3), dtype=np.uint8
    )
    depth.predict(
        model,
        processor,
        frames[: settings["batch_size"]],
        size,
        settings["batch_size"],
        device,
        dtype,
    )  # warm-up
    seconds = _best(
        lambda: depth.predict(
            model, processor, frames, size, settings["batch_size"], device, dtype
        ),
        repeats=2,
    )
    params = sum(p.numel() for p in model.parameters())
    print(
        f"depth bench: {args.model or cfg['models']['depth']} ({params / 1e6:.2f} M params) "
        f"on {device}/{dtype}, input {size}px, batch {settings['batch_size']}"
    )
    print(
        f"  {args.frames} frames of {args.frame_size}px in {seconds:.2f} s: "
        f"{args.frames / seconds:.1f} frames/s"
    )


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
