"""`stance bench render`: our write path vs kubric's stock write path on the same scenes.

For each clip a valid scene is sampled once, then rendered twice:
- stance: render the store's layers -> zarr clip store + H.264 preview;
- kubric stock: render kubric's default layers -> `kb.write_image_dict` (PNG/TIFF per frame)
  + metadata JSON, as kubric's MOVi workers do.
Overhead ratio = whole clip wall time / seconds inside Cycles renders (the floor).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from stance.shards import Clip

HELP = "clips/hour and overhead of the render stage"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--spp", type=int, default=16)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)


def _ours(spec, render, threads, out: Path, clip: Clip) -> None:
    from stance import video
    from stance.render import shard, store, worker

    rendered = worker.render_clip(spec, render, threads, check=False)
    attrs = shard.clip_attrs(clip, spec, rendered, render, "bench")
    store.write_clip(
        out / f"{clip.clip_id}.zarr", shard.store_arrays(rendered), rendered.tracks, attrs
    )
    video.write_mp4(out / f"{clip.clip_id}.mp4", rendered.rgb, render.fps)


def _stock(spec, render, threads, out: Path, clip: Clip) -> None:
    from stance.render import kubric_compat, worker

    kb = kubric_compat.load()
    rendered = worker.render_clip(
        spec,
        render,
        threads,
        check=False,
        layers=worker.KUBRIC_DEFAULT_LAYERS,
        keep_layers=True,
        fast_readback=False,
    )
    kb.write_image_dict(rendered.layers, out / clip.clip_id)
    metadata = {
        "camera": rendered.camera,
        "events": rendered.events,
        "instances": [worker.object_record(o) for o in spec.objects],
        "tracks": {k: v.tolist() for k, v in rendered.tracks.items()},
    }
    kb.write_json(metadata, out / clip.clip_id / "metadata.json")


def _timed(fn, *args) -> tuple[float, float]:
    from stance.render import kubric_compat

    with kubric_compat.CyclesTimer() as cycles:
        start = time.perf_counter()
        fn(*args)
        wall = time.perf_counter() - start
    return wall, cycles.seconds


def run(args: argparse.Namespace) -> None:
    from stance import config
    from stance.render import kubric_compat, shard

    values = {
        "resolution": args.resolution,
        "frames": args.frames,
        "samples_per_pixel": args.spp,
        "threads": args.threads,
    }
    render = config.section_settings("render", values, source="stance bench render")
    kubric_compat.load()  # import cost (~1.5 s) is paid once per job, not per clip
    totals = {"stance": [0.0, 0.0], "kubric stock": [0.0, 0.0]}
    out = Path(tempfile.mkdtemp(prefix="stance-bench-"))
    try:
        for k in range(args.clips):
            clip = Clip("train", 9_000_000 + k)
            spec, _ = shard.sample_valid(clip, render, args.threads)
            for name, fn in [("stance", _ours), ("kubric stock", _stock)]:
                wall, cycles = _timed(fn, spec, render, args.threads, out, clip)
                totals[name][0] += wall
                totals[name][1] += cycles
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(
        f"render bench: {args.clips} clips, {args.resolution}x{args.resolution}, "
        f"{args.frames} frames, {args.spp} spp, {args.threads} threads"
    )
    print(
        f"{'path':14s} {'s/clip':>8s} {'clips/hour':>11s} {'cycles s/clip':>14s} {'overhead':>9s}"
    )
    for name, (wall, cycles) in totals.items():
        per = wall / args.clips
        print(
            f"{name:14s} {per:8.2f} {3600 / per:11.1f} {cycles / args.clips:14.2f} "
            f"{wall / max(cycles, 1e-9):9.2f}"
        )
    speedup = totals["kubric stock"][0] / totals["stance"][0]
    print(f"stance path is {speedup:.2f}x the speed of kubric's stock write path")
