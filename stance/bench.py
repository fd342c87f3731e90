"""`stance bench`: benchmarks that print figures (no pass/fail: numbers to report).

Each bench lives in its stage (`BENCHES` names the module) with its own flags:
`add_arguments(parser)`, `run(args)` and `HELP`. Bench modules import their heavy
dependencies inside `run`, so `stance --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable

BENCHES = {  # name: module
    "render": "stance.render.bench",
    "cues": "stance.cues.bench",
    "depth": "stance.depth.bench",
    "train": "stance.train.bench",
    "startup": "stance.train.startup_bench",
    "evaluate": "stance.evaluate.bench",
    "scheduler": "stance.scheduling_bench",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, path in BENCHES.items():
        module = importlib.import_module(path)
        bench = sub.add_parser(name, help=module.HELP, description=module.HELP)
        bench.set_defaults(run=module.run)
        module.add_arguments(bench)


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of `repeats` wall-clock timings of `fn()`, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
