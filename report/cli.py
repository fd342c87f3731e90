"""`stance report`: what the pipeline produced, for people: the dataset card, cue pictures,
side-by-side videos, the results page (the tables themselves are `stance evaluate
tables`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    dataset = sub.add_parser(
        "dataset", help="dataset card: counts per split/family, contact sheet of first frames"
    )
    dataset.set_defaults(run=_dataset)
    dataset.add_argument("--manifest", required=True, type=Path)
    dataset.add_argument("--out", required=True, type=Path, help="output folder")
    dataset.add_argument(
        "--sheet-clips", type=int, default=8, help="clips shown in the contact sheet"
    )
    dataset.add_argument(
        "--sheet-frames", type=int, default=5, help="frames per clip in the contact sheet"
    )

    cues = sub.add_parser("cues", help="cue pictures and the dz estimator table")
    cues.set_defaults(run=_cues)
    cues.add_argument("--cues", nargs="+", required=True, type=Path, help="cue shard folders")
    cues.add_argument("--dz-report", required=True, type=Path, help="CSV of stance cues dz-report")
    cues.add_argument("--out", required=True, type=Path, help="output folder")
    cues.add_argument("--sheet-clips", type=int, default=8)

    videos = sub.add_parser("videos", help="side-by-side videos: truth | generated | twin")
    videos.set_defaults(run=_videos)
    videos.add_argument("--render", required=True, type=Path)
    videos.add_argument("--generated", required=True, type=Path)
    videos.add_argument("--clips", type=int, default=2)
    videos.add_argument("--fps", type=int, default=12)
    videos.add_argument("--out", required=True, type=Path)

    results = sub.add_parser(
        "results",
        help="results page: tables, loss curves, ground truth | no cues | cues | reversed cues",
    )
    results.set_defaults(run=_results)
    results.add_argument("--tables", required=True, type=Path, help="stance evaluate tables.md")
    results.add_argument("--trained", nargs="+", required=True, type=Path, help="train folders")
    results.add_argument(
        "--render", required=True, nargs="+", type=Path, help="the rendered test shards"
    )
    results.add_argument(
        "--cued", required=True, nargs="+", type=Path, help="the cue variant's videos, per shard"
    )
    results.add_argument(
        "--uncued", nargs="+", default=[], type=Path, help="the no-cue variant's, if any"
    )
    results.add_argument("--clips", type=int, default=2)
    results.add_argument("--fps", type=int, default=12)
    results.add_argument("--run-name", default="")
    results.add_argument("--model", help="the video stack: its VAE's reconstruction PSNR")
    results.add_argument("--out", required=True, type=Path)


def _dataset(args: argparse.Namespace) -> None:
    from stance.report import dataset

    dataset.write(args.manifest, args.out, args.sheet_clips, args.sheet_frames)


def _cues(args: argparse.Namespace) -> None:
    from stance.report import cues

    cues.write(args.cues, args.dz_report, args.out, args.sheet_clips)


def _results(args: argparse.Namespace) -> None:
    from stance.report import results

    results.write(
        args.tables,
        trained=args.trained,
        renders=args.render,
        cued=args.cued,
        uncued=args.uncued,
        out_dir=args.out,
        clips=args.clips,
        fps=args.fps,
        run_name=args.run_name,
        model_source=args.model,
    )


def _videos(args: argparse.Namespace) -> None:
    from stance.report import videos

    videos.write(args.render, args.generated, args.out, args.clips, args.fps)
