"""`stance bench evaluate`: Physics-IQ on the same mp4 files two ways, with identical
numbers required.

- reference: the reference benchmark's procedure (`physics_iq_files`): pass 1 writes a
  mask video per file, pass 2 decodes take 1 twice, take 2, the generated video and the
  three mask videos per view and loops over frames;
- pipeline: what the evaluation stage runs (`physics_iq.score_view`): each file decoded
  once, masks vectorised where the recurrence allows, the videos of a view prepared in
  parallel threads (OpenCV releases the GIL).

Each clip is one view: take 1 = "truth", take 2 = "twin", and `--runs` generated videos
(the benchmark asks for 4 seeds). The reference computes the takes' masks once (the
benchmark ships them as video-masks/) and runs pass 1 on each generated video and pass 2
once per run; the pipeline prepares the takes once and scores every run with them (one
scoring job per variant: `physics_iq_benchmark.score_runs`). `--runs 1` is the evaluation
of Kubric clips (one generated video per clip and variant job).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from stance import physics_iq_folder
from stance.evaluate import physics_iq, physics_iq_files

HELP = "Physics-IQ: the reference's file-by-file procedure vs the pipeline's, same files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument(
        "--runs", type=int, default=1, help="generated videos per view (benchmark: 4 seeds)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="pipeline threads (default: the CPUs)"
    )


def synthetic_video(rng, frames: int, size: int) -> np.ndarray:
    """A textured background with a few moving squares (RGB)."""
    video = np.repeat(rng.integers(40, 90, (1, size, size, 3), dtype=np.uint8), frames, 0)
    for _ in range(3):
        y, x = rng.integers(0, size // 2, 2)
        dy, dx = rng.integers(-3, 4, 2)
        colour = rng.integers(150, 255, 3)
        for t in range(frames):
            yy, xx = (y + dy * t) % (size - 24), (x + dx * t) % (size - 24)
            video[t, yy : yy + 24, xx : xx + 24] = colour
    return video


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def clip_files(folder: Path, clips: int, runs: int = 1) -> list[tuple[Path, Path, list[Path]]]:
    """(truth, twin, [generated per run]) per clip, cycling through six written videos."""
    videos = sorted(folder.glob("video*.mp4"))
    return [
        (videos[k % 6], videos[(k + 1) % 6], [videos[(k + 2 + r) % 6] for r in range(runs)])
        for k in range(clips)
    ]


def _per_run(files) -> list[list]:
    """One empty list per generated run of the clips."""
    return [[] for _ in files[0][2]]


def reference_way(files, fps: int, scratch: Path):
    """Per-view metrics, run-major: [run][clip] generated and physical variance."""
    generated, variance = _per_run(files), _per_run(files)
    for k, (truth, twin, ours) in enumerate(files):
        takes = [scratch / f"{k}_truth.mp4", scratch / f"{k}_twin.mp4"]
        for video, out in zip((truth, twin), takes, strict=True):
            physics_iq_files.write_mask_video(video, out)
        for r, video in enumerate(ours):
            mask = scratch / f"{k}_ours{r}.mp4"
            physics_iq_files.write_mask_video(video, mask)
            gen, pv = physics_iq_files.view_metrics(truth, twin, video, *takes, mask, fps)
            generated[r].append(gen)
            variance[r].append(pv)
    return generated, variance


def pipeline_way(files, fps: int, workers: int):
    generated, variance = _per_run(files), _per_run(files)
    runs = len(generated)
    options = physics_iq.Options()
    with ThreadPoolExecutor(workers) as pool:
        for truth, twin, ours in files:
            videos = list(pool.map(physics_iq_folder.read_rgb, (truth, twin, *ours)))
            others = {"twin": videos[1]} | {f"run{r}": v for r, v in enumerate(videos[2:])}
            scored = physics_iq.score_view(videos[0], others, fps, options, pool=pool)
            for r in range(runs):
                generated[r].append(scored.metrics[f"run{r}"])
                variance[r].append(scored.metrics["twin"])
    return generated, variance


def check_identical(slow, fast) -> None:
    for a, b in zip(slow, fast, strict=True):
        if a.st != b.st or a.mse != b.mse or abs(a.s - b.s) > 1e-12 or abs(a.ws - b.ws) > 1e-12:
            raise AssertionError(f"the two ways differ on a view: {a} vs {b}")


def run(args: argparse.Namespace) -> None:
    workers = args.workers or len(os.sched_getaffinity(0))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k in range(6):
            write_video(
                folder / f"video{k}.mp4", synthetic_video(rng, args.frames, args.size), args.fps
            )
        files = clip_files(folder, args.clips, args.runs)
        slow, slow_s, slow_cpu = timed(reference_way, files, args.fps, folder)
        fast, fast_s, fast_cpu = timed(pipeline_way, files, args.fps, workers)
    scores = []
    for r in range(args.runs):
        check_identical(slow[0][r] + slow[1][r], fast[0][r] + fast[1][r])
        slow_score = physics_iq.aggregate(slow[0][r], slow[1][r]).score
        fast_score = physics_iq.aggregate(fast[0][r], fast[1][r]).score
        if slow_score != fast_score:
            raise AssertionError(f"run {r}: reference way {slow_score}, pipeline {fast_score}")
        scores.append(fast_score)
    scored = args.clips * args.runs
    print(
        f"evaluate bench: Physics-IQ on {args.clips} clips of {args.frames}x{args.size}x"
        f"{args.size} at {args.fps} fps (truth, twin and {args.runs} generated mp4 per clip;"
        f" reference settings); {workers} pipeline thread(s)"
    )
    for name, wall, cpu in (
        ("reference procedure", slow_s, slow_cpu),
        ("pipeline", fast_s, fast_cpu),
    ):
        print(
            f"  {name + ':':20} {wall:.2f} s, {scored / wall:.1f} generated videos/s;"
            f" CPU {cpu:.2f} s, {1000 * cpu / scored:.0f} ms per generated video"
        )
    print(
        f"  speed-up {slow_s / fast_s:.2f}x wall, {slow_cpu / fast_cpu:.2f}x CPU time (both"
        f" procedures' FFmpeg threads counted); identical per-view"
        f" metrics, scores per run {scores}"
    )


def timed(function, *args):
    """(result, wall seconds, CPU seconds of every thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu
