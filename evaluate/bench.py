"""`stance bench evaluate`: Physics-IQ throughput (clips/s) at a given clip geometry.

Each clip is scored as in the evaluation stage: motion masks for ground truth, generated
and twin videos, then the four metrics against ground truth for generated and twin.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from stance.evaluate import physics_iq

HELP = "Physics-IQ clips/s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", type=int, default=256)


def synthetic_video(rng, frames: int, size: int) -> np.ndarray:
    """A textured background with a few moving squares."""
    video = np.repeat(rng.integers(40, 90, (1, size, size, 3), dtype=np.uint8), frames, 0)
    for _ in range(3):
        y, x = rng.integers(0, size // 2, 2)
        dy, dx = rng.integers(-3, 4, 2)
        colour = rng.integers(150, 255, 3)
        for t in range(frames):
            yy, xx = (y + dy * t) % (size - 24), (x + dx * t) % (size - 24)
            video[t, yy : yy + 24, xx : xx + 24] = colour
    return video


def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    pool = [synthetic_video(rng, args.frames, args.size) for _ in range(6)]
    options = physics_iq.Options()
    generated, variance = [], []
    start = time.perf_counter()
    fps = 8
    for k in range(args.clips):
        view = physics_iq.real_view(pool[k % 6], fps, options)
        variance.append(physics_iq.compare(view, pool[(k + 1) % 6], fps, options, "twin")[0])
        generated.append(physics_iq.compare(view, pool[(k + 2) % 6], fps, options, "ours")[0])
    physics_iq.aggregate(generated, variance)
    seconds = time.perf_counter() - start
    print(
        f"evaluate bench: Physics-IQ on {args.clips} clips of {args.frames}x{args.size}x"
        f"{args.size} (3 videos per clip: truth, generated, twin; reference settings)"
    )
    print(f"  {seconds:.2f} s: {args.clips / seconds:.1f} clips/s")
