"""`stance evaluate`: Physics-IQ, FVD, PSNR/SSIM and trajectory errors; results tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stance import config
from stance.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_test_clip_commands(sub)
    _add_benchmark_commands(sub)
    _add_submission_commands(sub)


def _add_test_clip_commands(sub) -> None:
    """Metrics of the rendered test clips and the results tables."""
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
    shard.add_argument(
        "--code-hash",
        default="",
        help="hash of the evaluation code (the DAG passes it); rows carry it as evaluation_code",
    )
    shard.add_argument("--out", required=True, type=Path, help="parquet to write")

    gather = sub.add_parser("tables", help="merge shard metrics into the results tables")
    gather.set_defaults(run=_tables)
    gather.add_argument("metrics", nargs="+", type=Path, help="per-shard parquet files")
    gather.add_argument("--settings", required=True, help="JSON of the `evaluate` section")
    gather.add_argument(
        "--sampling",
        help="JSON {train: {cue_dropout, aux_keyframe, image_noise, timestep_sampling, "
        "motion_weighting}, generate: {steps, guidance_scale, cue_guidance, "
        "cue_guidance_above, use_dynamic_cfg}}: how the variants were trained and sampled",
    )
    gather.add_argument("--out", required=True, type=Path, help="output folder")

    pooled = sub.add_parser(
        "replicates",
        help="pool training runs of one configuration: per-variant values over runs and "
        "clips, with two-level bootstrap intervals",
        description="Pool the trained variants of several runs evaluated on the same test "
        "clips: Physics IQ, directional response, motion gain, follows share and placebo "
        "response per run and their mean, with 95 % intervals from a bootstrap that "
        "resamples the runs and the clips. Reads <method>/test/*.parquet of each folder "
        "(trained variants only; the twin and copy_first_frame baselines are skipped) and "
        "writes replicates.csv, replicates.md and replicates.png. Only the test clips and "
        "each variant's aux, cue_mode and motion_tokens are checked across runs: pooling "
        "runs of different settings is up to you.",
        epilog="See docs/evaluation.md, section 'Pooling training runs'.",
    )
    pooled.set_defaults(run=_replicates)
    pooled.add_argument(
        "folders", nargs="+", type=Path, help="each run's results/evaluate folder (two or more)"
    )
    pooled.add_argument(
        "--reference",
        required=True,
        help="the pooled variant the others are compared with (e.g. rgb_only)",
    )
    pooled.add_argument(
        "--bootstrap",
        type=int,
        default=config.defaults().evaluate.bootstrap,
        help="bootstrap draws (default %(default)s, the schema's evaluate.bootstrap; the "
        "docs' tables use 1000)",
    )
    pooled.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap draws (default %(default)s)"
    )
    pooled.add_argument("--out", required=True, type=Path, help="output folder")


def _add_benchmark_commands(sub) -> None:
    """Scoring generated runs on the Physics-IQ benchmark and its tables."""
    piq = sub.add_parser(
        "physics-iq", help="score a variant's generated Physics-IQ benchmark runs (seeds)"
    )
    piq.set_defaults(run=_physics_iq)
    piq.add_argument(
        "--benchmark", required=True, type=Path, help="the benchmark folder (either track)"
    )
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
    piq_tables.add_argument("runs", nargs="+", type=Path, help="<variant>/<run>.parquet files")
    piq_tables.add_argument("--fps", required=True, type=int)
    piq_tables.add_argument("--out", required=True, type=Path, help="output folder")


def _add_submission_commands(sub) -> None:
    """Preparing a Physics-IQ Verified submission: prompts and the run check."""
    prompts = sub.add_parser(
        "physics-iq-prompts",
        help="the benchmark's descriptions/data.yaml -> a descriptions CSV of one templater",
    )
    prompts.set_defaults(run=_physics_iq_prompts)
    prompts.add_argument(
        "--data", required=True, type=Path, help="descriptions/data.yaml of the benchmark repo"
    )
    prompts.add_argument(
        "--templater",
        required=True,
        choices=("base", "cogvideox"),
        help="base: the reference's best-practice template; cogvideox: one detailed paragraph "
        "within CogVideoX's token limit",
    )
    prompts.add_argument("--out", required=True, type=Path, help="CSV to write")
    prompts.add_argument(
        "--no-action-postfix",
        action="store_true",
        help="leave out the subject-action postfixes, as the reference's shipped CSVs do",
    )
    prompts.add_argument(
        "--max-tokens",
        type=int,
        default=224,
        help="T5 tokens per prompt (CogVideoX1.5: 224); cogvideox shortens to fit, base warns",
    )
    prompts.add_argument(
        "--tokenizer",
        type=Path,
        help="a local T5 tokenizer folder, or a pipeline folder with tokenizer/, for exact "
        "counts (default: a deliberately high estimate)",
    )

    check = sub.add_parser(
        "physics-iq-check",
        help="check a generated run folder against the Physics-IQ Verified submission rules",
    )
    check.set_defaults(run=_physics_iq_check)
    check.add_argument("run_dir", type=Path, help="a generated run's folder of mp4 files")
    check.add_argument("--views", type=int, default=198, help="videos expected (198)")
    check.add_argument("--fps", type=float, help="the frame rate every video must have (± 0.01)")
    check.add_argument(
        "--descriptions",
        type=Path,
        help="the descriptions CSV the run was generated from: every video must have a row; "
        "the run's rows are written to --descriptions-out",
    )
    check.add_argument(
        "--descriptions-out",
        type=Path,
        help="where the run's descriptions go (default: descriptions.csv beside RUN_DIR)",
    )
    check.add_argument("--card", type=Path, help="write a submission card skeleton (YAML) here")


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
        args.code_hash,
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


def _replicates(args: argparse.Namespace) -> None:
    from stance.evaluate import replicates

    replicates.gather(args.folders, args.out, args.reference, args.bootstrap, args.seed)


def _physics_iq(args: argparse.Namespace) -> None:
    from stance import physics_iq_folder
    from stance.evaluate import physics_iq, physics_iq_benchmark

    settings = config.section_from_json("evaluate", args.settings)
    options = physics_iq.Options.from_settings(settings)
    record = json.loads(args.record)
    if not len(args.generated) == len(args.out) == len(record["runs"]):
        raise UserError(
            f"{len(args.generated)} --generated folders, {len(args.out)} --out files and "
            f"{len(record['runs'])} run numbers in --record: give one of each per run"
        )
    root = physics_iq_folder.root_of(args.benchmark, settings.physics_iq_track)
    track = physics_iq_folder.track_of(root, settings.physics_iq_track)
    runs = physics_iq_benchmark.score_runs(
        args.benchmark, args.generated, args.fps, options, args.descriptions, track
    )
    for rows, out, number in zip(runs, args.out, record["runs"], strict=True):
        run = {
            "variant": record["variant"],
            "run": number,
            "fps": args.fps,
            "reference": options.reference,
            "track": track,
            # without a descriptions CSV the prompts are the scenario names in words
            "prompts": settings.physics_iq_prompts if args.descriptions else "names",
        }
        physics_iq_benchmark.write_run(rows, out, run)


def _physics_iq_tables(args: argparse.Namespace) -> None:
    from stance.evaluate import physics_iq_benchmark

    table = physics_iq_benchmark.gather(args.runs, args.out, args.fps)
    print(table.to_string(index=False))


def _physics_iq_prompts(args: argparse.Namespace) -> None:
    from stance.evaluate import physics_iq_prompts

    rows = physics_iq_prompts.write_prompts(
        args.data,
        args.templater,
        args.out,
        with_postfix=not args.no_action_postfix,
        max_tokens=args.max_tokens,
        tokenizer=args.tokenizer,
    )
    print(f"wrote {len(rows)} rows ({args.templater} templater) to {args.out}")


def _physics_iq_check(args: argparse.Namespace) -> None:
    from stance.evaluate import physics_iq_submission

    run, written = physics_iq_submission.check_and_write(
        args.run_dir,
        views=args.views,
        expected_fps=args.fps,
        descriptions=args.descriptions,
        descriptions_out=args.descriptions_out,
        card=args.card,
    )
    print(
        f"{run.folder}: {len(run.videos)} videos, {run.fps:g} fps, {run.resolution}, each "
        "5 s: follows the Physics-IQ Verified submission rules"
    )
    for path in written:
        print(f"wrote {path}")
