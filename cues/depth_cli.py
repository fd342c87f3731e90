"""`stance depth`: Depth-Anything-V2 disparity for every frame of a rendered shard."""

from __future__ import annotations

import argparse
from pathlib import Path

from stance import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="predict depth for the clips of one rendered shard")
    shard.add_argument("--render", required=True, type=Path, help="rendered shard folder")
    shard.add_argument("--out", required=True, type=Path, help="depth shard folder to write")
    shard.add_argument(
        "--model",
        required=True,
        help="hub id (depth-anything/Depth-Anything-V2-Large-hf) or folder",
    )
    shard.add_argument("--settings", required=True, help="JSON of the `depth` config section")
    shard.add_argument(
        "--batch-size", type=int, help="frames per forward pass (overrides depth.batch_size)"
    )
    shard.add_argument("--code-hash", default="unknown")
    shard.add_argument(
        "--offline",
        action="store_true",
        help="never try the hub: fail at once when the weights are not local",
    )


def main(args: argparse.Namespace) -> int:
    from stance.cues import depth

    settings = config.section_from_json("depth", args.settings)
    if args.batch_size is not None:  # operational: the rule passes it outside its params
        settings = config.validate({"depth": {**settings, "batch_size": args.batch_size}})["depth"]
    depth.run_shard(
        args.render, args.out, settings, args.model, args.code_hash, allow_download=not args.offline
    )
    return 0
