"""`stance models`: build the tiny random-weight models the embedded config runs on."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tiny = sub.add_parser(
        "make-tiny",
        help="save a tiny random-weight model built from a real "
        "config, loadable with from_pretrained like the real one",
    )
    tiny.add_argument(
        "kind",
        choices=["depth", "video"],
        help="depth: Depth-Anything-V2; video: CogVideoX-1.5 I2V pipeline",
    )
    tiny.add_argument("--out", required=True, type=Path, help="folder to write")
    tiny.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    if args.kind == "depth":
        from stance.cues import depth_model

        depth_model.make_tiny(args.out, seed=args.seed)
    elif args.kind == "video":
        from stance.train import tiny

        tiny.make_tiny(args.out, seed=args.seed)
    return 0
