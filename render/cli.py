"""`stance render`: Kubric clips into clip stores (one shard per job), and the manifest."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stance import config
from stance.errors import UserError
from stance.shards import Clip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="render the clips of one shard into a folder")
    shard.set_defaults(run=_shard)
    shard.add_argument("--split", required=True, choices=config.SPLITS)
    shard.add_argument("--seeds", required=True, help="comma-separated clip seeds")
    shard.add_argument(
        "--settings", required=True, help="JSON object with the `render` config section"
    )
    shard.add_argument("--code-hash", default="unknown", help="recorded in every store")
    shard.add_argument("--threads", type=int, default=2, help="Cycles threads")
    shard.add_argument("--out", required=True, type=Path, help="shard folder to write")

    clip = sub.add_parser("clip", help="render single clips with a config file (debugging)")
    clip.set_defaults(run=_clip)
    clip.add_argument("--config", default="config.yaml", help="YAML config file")
    clip.add_argument("--split", default="test", choices=config.SPLITS)
    clip.add_argument("--seed", type=int, nargs="+", required=True)
    clip.add_argument("--threads", type=int, default=2)
    clip.add_argument("--out", required=True, type=Path)

    manifest = sub.add_parser("manifest", help="merge shard manifests into one parquet")
    manifest.set_defaults(run=_manifest)
    manifest.add_argument("shards", nargs="+", type=Path, help="rendered shard folders")
    manifest.add_argument("--out", required=True, type=Path)


def _quiet_kubric() -> None:
    # kubric logs every frame and file at INFO; our own per-clip lines are enough.
    logging.getLogger("kubric").setLevel(logging.WARNING)


def _shard(args: argparse.Namespace) -> None:
    from stance.render import shard

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError as exc:
        raise UserError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from exc
    _quiet_kubric()
    render = config.section_from_json("render", args.settings)
    shard.render_shard(
        [Clip(args.split, s) for s in seeds], render, args.out, args.threads, args.code_hash
    )


def _clip(args: argparse.Namespace) -> None:
    from stance.provenance import code_hash
    from stance.render import shard

    _quiet_kubric()
    render = config.load_settings(args.config).render
    clips = [Clip(args.split, s) for s in args.seed]
    shard.render_shard(clips, render, args.out, args.threads, code_hash("stance.render"))


def _manifest(args: argparse.Namespace) -> None:
    from stance.render import shard

    shard.write_manifest(args.shards, args.out)
