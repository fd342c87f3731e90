"""`stance depth`: Depth-Anything-V2 disparity for every frame of a rendered shard."""

from __future__ import annotations

import argparse
from pathlib import Path

from stance import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="predict depth for the clips of one rendered shard")
    shard.set_defaults(run=_shard)
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
    shard.add_argument("--device", help="auto, cpu, cuda, cuda:1 (overrides depth.device)")
    shard.add_argument("--code-hash", default="unknown")
    shard.add_argument(
        "--offline",
        action="store_true",
        help="never try the hub: fail at once when the weights are not local",
    )


def _shard(args: argparse.Namespace) -> None:
    from stance.depth import shard

    # operational values: the rule passes them outside its params (no rerun when changed)
    operational = {"batch_size": args.batch_size, "device": args.device}
    settings = config.section_from_json("depth", args.settings, operational)
    shard.run_shard(
        args.render, args.out, settings, args.model, args.code_hash, allow_download=not args.offline
    )
