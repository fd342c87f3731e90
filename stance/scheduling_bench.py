"""`stance bench scheduler`: CPU time of Snakemake's own process while jobs wait for cores,
with its stock wake-up timers and with `stance.scheduling.coalesce_wakeups`.

A throwaway workflow runs `--quick` instant jobs (each finished job adds a timer chain to
the stock scheduler), then `--waiting` jobs that each take every core for `--seconds`, so
all but one wait. Printed per setting: the wall time and the CPU seconds of the
Snakemake process and its jobs (the jobs are `touch` and `sleep`, so nearly all of it is
the scheduler's).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELP = "CPU time of Snakemake's scheduler while jobs wait, stock vs one wake-up timer"

WORKFLOW = """\
import os

if os.environ.get("STANCE_COALESCE_WAKEUPS") == "1":
    from stance.scheduling import coalesce_wakeups

    coalesce_wakeups()


rule all:
    input:
        expand("waited/{{j}}", j=range({waiting})),


rule quick:
    output:
        "quick/{{i}}",
    shell:
        "touch {{output}}"


rule wait_for_cores:
    input:
        expand("quick/{{i}}", i=range({quick})),
    output:
        "waited/{{j}}",
    threads: workflow.cores
    shell:
        "sleep {seconds}; touch {{output}}"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", type=int, default=100, help="instant jobs run first")
    parser.add_argument("--waiting", type=int, default=3, help="jobs taking every core")
    parser.add_argument("--seconds", type=float, default=10.0, help="each waiting job's time")
    parser.add_argument("--cores", type=int, default=2)


def run(args: argparse.Namespace) -> None:
    print(
        f"scheduler bench: {args.quick} instant jobs, then {args.waiting} jobs of "
        f"{args.seconds:g} s on all {args.cores} cores, one at a time"
    )
    for label, coalesce in (("stock timers", False), ("one wake-up timer", True)):
        wall, cpu = measure(args, coalesce)
        print(f"  {label:18s} wall {wall:6.1f} s, Snakemake CPU {cpu:6.2f} s")


def measure(args: argparse.Namespace, coalesce: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of Snakemake and its jobs) of one run of the workflow."""
    with tempfile.TemporaryDirectory(prefix="stance-scheduler-bench-") as folder:
        snakefile = Path(folder) / "Snakefile"
        snakefile.write_text(
            WORKFLOW.format(quick=args.quick, waiting=args.waiting, seconds=args.seconds)
        )
        env = dict(os.environ, STANCE_COALESCE_WAKEUPS="1" if coalesce else "0")
        command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", folder]
        command += ["--cores", str(args.cores), "--quiet", "all"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu
