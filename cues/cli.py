"""`stance cues`: Instance Cues from rendered clips or from user hints; dz report; pictures."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stance import config

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="cue stores for one rendered shard and its depth")
    shard.set_defaults(run=_shard)
    shard.add_argument("--render", required=True, type=Path, help="rendered shard folder")
    shard.add_argument("--depth", required=True, type=Path, help="depth shard folder")
    shard.add_argument("--out", required=True, type=Path, help="cue shard folder to write")
    shard.add_argument("--settings", required=True, help="JSON of the `cues` config section")
    shard.add_argument("--code-hash", default="unknown")

    hints = sub.add_parser(
        "from-hints",
        help="rasterise a user hint file (keyframe, masks, arrows, mass, dz) into a cue store",
    )
    hints.set_defaults(run=_from_hints)
    hints.add_argument("hints", type=Path, help="YAML or JSON hint file")
    hints.add_argument("--out", required=True, type=Path, help="cue store to write (.zarr)")
    hints.add_argument(
        "--config",
        type=Path,
        help="config with the cues section (default: ./config.yaml, else the schema's defaults)",
    )

    piq = sub.add_parser(
        "physics-iq", help="cue stores of the Physics-IQ benchmark's views (conditioning clips)"
    )
    piq.set_defaults(run=_physics_iq)
    piq.add_argument("--benchmark", required=True, type=Path, help="physics-IQ-benchmark folder")
    piq.add_argument("--descriptions", type=Path, help="descriptions CSV (prompts, categories)")
    piq.add_argument("--out", required=True, type=Path, help="folder of cue stores to write")
    piq.add_argument("--settings", required=True, help="JSON of the `cues` config section")
    piq.add_argument("--size", required=True, type=int, help="generation size (render.resolution)")
    piq.add_argument("--fps", required=True, type=int, help="frame rate (render.fps)")
    piq.add_argument("--depth-model", required=True, help="Depth-Anything-V2: hub id or folder")
    piq.add_argument("--depth-settings", required=True, help="JSON of the `depth` section")
    piq.add_argument("--batch-size", type=int, help="overrides depth.batch_size (operational)")
    piq.add_argument("--device", help="overrides depth.device (operational)")
    piq.add_argument("--code-hash", default="unknown")
    piq.add_argument("--offline", action="store_true")

    report = sub.add_parser("dz-report", help="dz estimators against rendered depth")
    report.set_defaults(run=_dz_report)
    report.add_argument("--render", nargs="+", required=True, type=Path)
    report.add_argument("--cues", nargs="+", required=True, type=Path)
    report.add_argument("--settings", required=True, help="JSON of the `cues` config section")
    report.add_argument("--out", required=True, type=Path, help="CSV to write (+ .md beside)")

    show = sub.add_parser("show", help="picture of a cue store (flow colours + arrows)")
    show.set_defaults(run=_show)
    show.add_argument("store", type=Path)
    show.add_argument("--out", required=True, type=Path, help="PNG to write")


def _shard(args: argparse.Namespace) -> None:
    from stance.cues import runner

    settings = config.section_from_json("cues", args.settings)
    runner.run_shard(args.render, args.depth, args.out, settings, args.code_hash)


def _from_hints(args: argparse.Namespace) -> None:
    from stance.cues import hints

    path = args.config or Path("config.yaml")
    if args.config is None and not path.exists():
        log.info("no config.yaml here: cues.mass at the schema's defaults")
        mass = config.defaults().cues.mass
    else:
        mass = config.load_settings(path).cues.mass
    hints.write_store(args.hints, args.out, mass)
    log.info("cue store from %s -> %s", args.hints, args.out)


def _physics_iq(args: argparse.Namespace) -> None:
    from stance.cues import from_video

    from_video.write_physics_iq_cues(
        args.benchmark,
        args.descriptions,
        args.out,
        config.section_from_json("cues", args.settings),
        args.size,
        args.fps,
        args.depth_model,
        config.section_from_json(
            "depth", args.depth_settings, {"batch_size": args.batch_size, "device": args.device}
        ),
        args.code_hash,
        not args.offline,
    )


def _dz_report(args: argparse.Namespace) -> None:
    from stance.cues import runner

    settings = config.section_from_json("cues", args.settings)
    print(runner.write_dz_report(args.render, args.cues, settings, args.out).to_string(index=False))


def _show(args: argparse.Namespace) -> None:
    from stance.cues import visualize

    visualize.write_picture(args.store, args.out)
