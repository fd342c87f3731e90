"""`stance evaluate`: Physics-IQ, FVD, PSNR/SSIM and trajectory errors; results tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stance import config
from stance.errors import UserError


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

    piq = sub.add_parser(
        "physics-iq", help="score a variant's generated Physics-IQ benchmark runs (seeds)"
    )
    piq.set_defaults(run=_physics_iq)
    piq.add_argument("--benchmark", required=True, type=Path, help="physics-IQ-benchmark folder")
    piq.add_argument("--descriptions", type=Path, help="descriptions CSV (categories)")
    piq.add_argument(
        "--generated", required=True, nargs="+", type=Path, help="the runs' video folders"
    )
    piq.add_argument("--fps", required=True, type=int, help="frame rate (render.fps)")
    piq.add_argument("--settings", required=True, help="JSON of the `evaluate` section")
    piq.add_argument(
        "--record", required=True, help="JSON {variant, runs: [run number per folder]}: kept"
    )
    piq.add_argument("--out", required=True, nargs="+", type=Path, help="parquet per run")

    piq_tables = sub.add_parser(
        "physics-iq-tables", help="benchmark runs -> mean +- std over seeds, per category"
    )
    piq_tables.set_defaults(run=_physics_iq_tables)
    piq_tables.add_argument("runs", nargs="+", type=Path, help="<variant>/run_<k>.parquet files")
    piq_tables.add_argument("--fps", required=True, type=int)
    piq_tables.add_argument("--out", required=True, type=Path, help="output folder")


def _shard(args: argparse.Namespace) -> None:
    from stance.evaluate import metrics

    settings = config.section_from_json("evaluate", args.settings)
    metrics.evaluate_shard(
        args.render,
        args.out,
        args.method,
        settings,
        args.generated,
        Path(settings.external_dir),
        metrics.feature_extractors(args.fvd_model, args.cd_fvd_model),
    )


def _tables(args: argparse.Namespace) -> None:
    from stance.evaluate import tables

    settings = config.section_from_json("evaluate", args.settings)
    sampling = None
    if args.sampling:  # only the keys the notes use; the rest take their defaults
        values = json.loads(args.sampling)
        sampling = tuple(
            config.section_settings(name, values[name], "--sampling")
            for name in ("train", "generate")
        )
    tables.gather(args.metrics, args.out, settings, sampling)


def _physics_iq(args: argparse.Namespace) -> None:
    from stance.evaluate import physics_iq, physics_iq_benchmark

    settings = config.section_from_json("evaluate", args.settings)
    options = physics_iq.Options.from_settings(settings)
    record = json.loads(args.record)
    if not len(args.generated) == len(args.out) == len(record["runs"]):
        raise UserError(
            f"{len(args.generated)} --generated folders, {len(args.out)} --out files and "
            f"{len(record['runs'])} run numbers in --record: give one of each per run"
        )
    runs = physics_iq_benchmark.score_runs(
        args.benchmark, args.generated, args.fps, options, args.descriptions
    )
    for rows, out, number in zip(runs, args.out, record["runs"], strict=True):
        run = {
            "variant": record["variant"],
            "run": number,
            "fps": args.fps,
            "reference": options.reference,
        }
        physics_iq_benchmark.write_run(rows, out, run)


def _physics_iq_tables(args: argparse.Namespace) -> None:
    from stance.evaluate import physics_iq_benchmark

    table = physics_iq_benchmark.gather(args.runs, args.out, args.fps)
    print(table.to_string(index=False))
