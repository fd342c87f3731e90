"""`stance generate`: sample test clips (or a user's hint cue store) with a trained variant."""

from __future__ import annotations

import argparse
from pathlib import Path

from stance import config
from stance.settings import replace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = sub.add_parser("shard", help="generate every clip of a cue shard")
    shard.set_defaults(run=_shard)
    _add_run_arguments(shard, cues="cue shard folder", out="folder to write videos to")
    shard.add_argument("--frames", required=True, type=int, help="frames per clip")

    piq = sub.add_parser(
        "physics-iq", help="one benchmark run: every Physics-IQ view with one seed"
    )
    piq.set_defaults(run=_physics_iq)
    _add_run_arguments(piq, cues="results/cues/physics_iq", out="run folder to write videos to")
    piq.add_argument("--seed", required=True, type=int, help="this run's sampling seed")

    hints = sub.add_parser(
        "hints", help="generate from a cue store made by `stance cues from-hints`"
    )
    hints.set_defaults(run=_hints)
    hints.add_argument("store", type=Path, help="cue store (.zarr)")
    hints.add_argument("--trained", required=True, type=Path, help="trained variant folder")
    hints.add_argument("--out", required=True, type=Path, help="mp4 to write")
    hints.add_argument("--prompt", default="objects moving on the floor.")
    hints.add_argument("--config", default="config.yaml")
    hints.add_argument("--frames", type=int, help="default: render.frames of the config")
    hints.add_argument(
        "--memory-profile",
        choices=config.choices("generate", "memory_profile"),
        help="default: generate.memory_profile of the config",
    )
    hints.add_argument("--offline", action="store_true")


def _add_run_arguments(parser: argparse.ArgumentParser, cues: str, out: str) -> None:
    """What `shard` and `physics-iq` both read: cues, trained variant, model, settings."""
    parser.add_argument("--cues", required=True, type=Path, help=cues)
    parser.add_argument("--trained", required=True, type=Path, help="trained variant folder")
    parser.add_argument("--out", required=True, type=Path, help=out)
    parser.add_argument("--model", required=True, help="CogVideoX pipeline: hub id or folder")
    parser.add_argument("--settings", required=True, help="JSON of the `generate` section")
    parser.add_argument(
        "--max-text", required=True, type=int, help="T5 tokens (train.max_text_seq_length)"
    )
    parser.add_argument("--fps", required=True, type=int, help="frame rate of the videos")
    parser.add_argument("--code-hash", default="unknown")
    parser.add_argument(
        "--memory-profile",
        choices=config.choices("generate", "memory_profile"),
        help="overrides generate.memory_profile of --settings (operational)",
    )
    parser.add_argument("--offline", action="store_true")


def _request(args: argparse.Namespace):
    """The job's request from its flags: the `generate` section of --settings with the
    operational --memory-profile, the trained variant, the base model and the video facts."""
    from stance.generate.jobs import Request

    overrides = {"memory_profile": args.memory_profile}
    return Request(
        trained=args.trained,
        model=args.model,
        settings=config.section_from_json("generate", args.settings, overrides),
        max_text=args.max_text,
        fps=args.fps,
        code_hash=args.code_hash,
        allow_download=not args.offline,
    )


def _shard(args: argparse.Namespace) -> None:
    from stance.generate import jobs

    jobs.generate_shard(_request(args), cue_dir=args.cues, out_dir=args.out, frames=args.frames)


def _physics_iq(args: argparse.Namespace) -> None:
    from stance.generate import jobs

    jobs.generate_physics_iq(_request(args), cue_dir=args.cues, out_dir=args.out, seed=args.seed)


def _hints(args: argparse.Namespace) -> None:
    """A hint store is a user's, outside the DAG: every value comes from their config."""
    from stance.generate import jobs

    cfg = config.load_settings(args.config)
    settings = cfg.generate
    if args.memory_profile:
        settings = replace(settings, memory_profile=args.memory_profile)
    request = jobs.Request(
        trained=args.trained,
        model=cfg.models.video,
        settings=settings,
        max_text=cfg.train.max_text_seq_length,
        fps=cfg.render.fps,
        allow_download=not args.offline,
    )
    frames = args.frames or cfg.render.frames
    jobs.generate_from_store(
        request, store=args.store, out=args.out, frames=frames, prompt=args.prompt
    )
