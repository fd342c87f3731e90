"""`stance report`: human-readable summaries of what the pipeline produced."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    dataset = sub.add_parser(
        "dataset", help="dataset card: counts per split/family, contact sheet of first frames"
    )
    dataset.add_argument("--manifest", required=True, type=Path)
    dataset.add_argument("--out", required=True, type=Path, help="output folder")
    dataset.add_argument(
        "--sheet-clips", type=int, default=8, help="clips shown in the contact sheet"
    )
    dataset.add_argument(
        "--sheet-frames", type=int, default=5, help="frames per clip in the contact sheet"
    )

    cues = sub.add_parser("cues", help="cue pictures and the dz estimator table")
    cues.add_argument("--cues", nargs="+", required=True, type=Path, help="cue shard folders")
    cues.add_argument("--dz-report", required=True, type=Path, help="CSV of stance cues dz-report")
    cues.add_argument("--out", required=True, type=Path, help="output folder")
    cues.add_argument("--sheet-clips", type=int, default=8)


def main(args: argparse.Namespace) -> int:
    if args.action == "dataset":
        from stance.evaluate import dataset_report

        dataset_report.write(args.manifest, args.out, args.sheet_clips, args.sheet_frames)
    elif args.action == "cues":
        from stance.evaluate import cue_report

        cue_report.write(args.cues, args.dz_report, args.out, args.sheet_clips)
    return 0
