"""`stance bench`: benchmarks that print figures (no pass/fail: numbers to report)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    render = sub.add_parser("render", help="clips/hour and overhead of the render stage")
    render.add_argument("--resolution", type=int, default=128)
    render.add_argument("--frames", type=int, default=24)
    render.add_argument("--spp", type=int, default=16)
    render.add_argument("--clips", type=int, default=2)
    render.add_argument("--threads", type=int, default=2)


def main(args: argparse.Namespace) -> int:
    if args.target == "render":
        from stance.render import bench

        bench.run(args)
    return 0
