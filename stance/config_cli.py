"""`stance config`: validate a config file and show it with every default filled in."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a config; print the resolved values")
    check.set_defaults(run=_check)
    check.add_argument("path", nargs="?", default="config.yaml", help="YAML config file")
    check.add_argument("--quiet", action="store_true", help="only report errors and job counts")


def _check(args: argparse.Namespace) -> None:
    from stance import config

    config.check(args.path, quiet=args.quiet)
