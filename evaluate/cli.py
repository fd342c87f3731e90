"""`stance evaluate`: Physics-IQ, FVD, PSNR/SSIM and trajectory errors; results tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stance import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="metrics of one method on one rendered test shard")
    shard.set_defaults(run=_shard)
    shard.add_argument("--render", required=True, type=Path, help="rendered shard folder")
    shard.add_argument(
        "--method",
        required=True,
        help="a trained variant, copy_first_frame, twin, or an external method",
    )
    shard.add_argument(
        "--generated",
        type=Path,
        help="a variant's generate shard folder (its record names the variant: aux, cues)",
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
    gather.set_defaults(run=_tables)
    gather.add_argument("metrics", nargs="+", type=Path, help="per-shard parquet files")
    gather.add_argument("--settings", required=True, help="JSON of the `evaluate` section")
    gather.add_argument(
        "--sampling",
        help="JSON {train: {cue_dropout, aux_keyframe, image_noise}, generate: {steps, "
        "guidance_scale, cue_guidance}}: how the variants were trained and sampled",
    )
    gather.add_argument("--out", required=True, type=Path, help="output folder")


def _shard(args: argparse.Namespace) -> None:
    from stance.evaluate import metrics

    settings = config.section_from_json("evaluate", args.settings)
    metrics.evaluate_shard(
        args.render,
        args.out,
        args.method,
        settings,
        args.generated,
        Path(settings["external_dir"]),
        metrics.feature_extractors(args.fvd_model, args.cd_fvd_model),
    )


def _tables(args: argparse.Namespace) -> None:
    from stance.evaluate import tables

    settings = config.section_from_json("evaluate", args.settings)
    sampling = json.loads(args.sampling) if args.sampling else None
    tables.gather(args.metrics, args.out, settings, sampling)
