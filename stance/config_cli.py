"""`stance config`: validate a config file and show it with every default filled in."""

from __future__ import annotations

import argparse

import yaml

from stance import config, shards


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a config; print the resolved values")
    check.add_argument("path", nargs="?", default="config.yaml", help="YAML config file")
    check.add_argument("--quiet", action="store_true", help="only report errors and job counts")


def main(args: argparse.Namespace) -> int:
    cfg = config.load(args.path)
    if not args.quiet:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
    per_split = {split: shards.num_shards(cfg, split) for split in cfg["data"]["splits"]}
    print(f"# {args.path}: valid; shards per split: {per_split}")
    return 0
