"""`stance evaluate`: Physics-IQ, FVD, PSNR/SSIM and trajectory errors; tables; videos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stance import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="metrics of one method on one rendered test shard")
    shard.add_argument("--render", required=True, type=Path, help="rendered shard folder")
    shard.add_argument(
        "--method",
        required=True,
        help="a trained variant, copy_first_frame, twin, or an external method",
    )
    shard.add_argument("--generated", type=Path, help="generated shard folder (variants)")
    shard.add_argument(
        "--aux",
        default="none",
        choices=["none", "depth", "seg"],
        help="the variant's auxiliary stream (seg enables trajectory error)",
    )
    shard.add_argument("--settings", required=True, help="JSON of the `evaluate` section")
    shard.add_argument("--fvd-model", default="", help="I3D TorchScript path ('' = no FVD)")
    shard.add_argument(
        "--cd-fvd-model",
        default="",
        help="VideoMAE-v2 ViT-g checkpoint or converted folder ('' = no content-debiased FVD)",
    )
    shard.add_argument("--out", required=True, type=Path, help="parquet to write")

    gather = sub.add_parser("tables", help="merge shard metrics into the results tables")
    gather.add_argument("metrics", nargs="+", type=Path, help="per-shard parquet files")
    gather.add_argument("--settings", required=True, help="JSON of the `evaluate` section")
    gather.add_argument("--variants", required=True, help="JSON of train.variants")
    gather.add_argument(
        "--sampling",
        help="JSON {train: {cue_dropout, aux_keyframe, image_noise}, generate: {steps, "
        "guidance_scale, cue_guidance}}: how the variants were trained and sampled",
    )
    gather.add_argument("--out", required=True, type=Path, help="output folder")

    videos = sub.add_parser("videos", help="side-by-side videos: truth | generated | twin")
    videos.add_argument("--render", required=True, type=Path)
    videos.add_argument("--generated", required=True, type=Path)
    videos.add_argument("--clips", type=int, default=2)
    videos.add_argument("--fps", type=int, default=12)
    videos.add_argument("--out", required=True, type=Path)


def main(args: argparse.Namespace) -> int:
    if args.action == "shard":
        from stance.evaluate import fvd, metrics, videomae

        settings = config.section_from_json("evaluate", args.settings)
        features = {}
        if args.fvd_model:
            features["fvd"] = fvd.load_extractor(args.fvd_model)
        if args.cd_fvd_model:
            features["cd_fvd"] = videomae.load_extractor(args.cd_fvd_model)
        external = Path(settings["external_dir"])
        metrics.evaluate_shard(
            args.render,
            args.out,
            args.method,
            settings,
            args.generated,
            external,
            args.aux,
            features,
        )
    elif args.action == "tables":
        from stance.evaluate import tables

        settings = config.section_from_json("evaluate", args.settings)
        sampling = json.loads(args.sampling) if args.sampling else None
        tables.gather(args.metrics, args.out, settings, json.loads(args.variants), sampling)
    elif args.action == "videos":
        from stance.evaluate import side_by_side

        side_by_side.write(args.render, args.generated, args.out, args.clips, args.fps)
    return 0
