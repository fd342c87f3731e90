"""`stance train`: encode the training cache, fit a STANCE variant."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stance import config
from stance.train import launch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    enc = sub.add_parser("encode", help="VAE latents, keyframes and prompt embeddings of a shard")
    enc.set_defaults(run=_encode)
    enc.add_argument("--render", required=True, type=Path, help="rendered shard folder")
    enc.add_argument("--out", required=True, type=Path, help="cache shard folder to write")
    enc.add_argument("--model", required=True, help="CogVideoX pipeline: hub id or folder")
    enc.add_argument(
        "--max-text", required=True, type=int, help="T5 tokens (train.max_text_seq_length)"
    )
    enc.add_argument("--code-hash", default="unknown")
    enc.add_argument("--offline", action="store_true", help="never try the hub")

    fit = sub.add_parser("fit", help="fine-tune one variant (accelerate; resumes by itself)")
    fit.set_defaults(run=_fit)
    fit.add_argument("--variant", required=True, help="name of a train.variants entry")
    fit.add_argument(
        "--cues", nargs="+", required=True, type=Path, help="cue folders of the same clips"
    )
    fit.add_argument(
        "--val-render", nargs="*", type=Path, default=[], help="validation render folders"
    )
    fit.add_argument("--val-cues", nargs="*", type=Path, default=[], help="validation cue folders")
    fit.add_argument(
        "--init",
        type=Path,
        help="pretrained backbone folder to fine-tune from (stance train pretrain's --out)",
    )
    _add_run_arguments(fit)
    pre = sub.add_parser(
        "pretrain", help="the shared backbone without cues (train.pretrain_steps steps)"
    )
    pre.set_defaults(run=_pretrain)
    _add_run_arguments(pre)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What every training run takes: data, model, settings and where it writes."""
    parser.add_argument("--cache", nargs="+", required=True, type=Path, help="cache folders")
    parser.add_argument("--out", required=True, type=Path, help="final model folder to write")
    parser.add_argument(
        "--runs",
        required=True,
        type=Path,
        help="folder for run state (checkpoints, TensorBoard); never deleted",
    )
    parser.add_argument("--model", required=True, help="CogVideoX pipeline: hub id or folder")
    parser.add_argument("--settings", required=True, help="JSON of the `train` config section")
    # Operational: how the run is babysat, never what it computes (the rule passes them
    # as resources, which Snakemake does not watch; they override the settings).
    for key in launch.BABYSITTING:
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"overrides train.{key}")
    parser.add_argument("--code-hash", default="unknown")
    parser.add_argument("--offline", action="store_true", help="never try the hub")


def _encode(args: argparse.Namespace) -> None:
    from stance.train import encode

    encode.encode_shard(
        args.render,
        args.out,
        args.model,
        args.max_text,
        args.code_hash,
        allow_download=not args.offline,
    )


def _job_args(args: argparse.Namespace) -> dict:
    """What fine-tuning and pretraining jobs both take from the command line."""
    overrides = {k: getattr(args, k) for k in launch.BABYSITTING}
    return {
        "cache_dirs": args.cache,
        "out_dir": args.out,
        "run_root": args.runs,
        "settings": config.section_from_json("train", args.settings, overrides),
        "model_source": args.model,
        "code_hash": args.code_hash,
        "allow_download": not args.offline,
    }


def _fit(args: argparse.Namespace) -> None:
    from stance.train import trainer

    job = _job_args(args)
    settings, probe = job["settings"], None
    if settings.validate_every and (args.val_render or args.val_cues):
        from stance.generate.validation import CueControlProbe

        probe = CueControlProbe(
            args.model, args.val_render, args.val_cues, settings, not args.offline
        )
    trainer.fit_variant(
        **job, cue_dirs=args.cues, variant_name=args.variant, init=args.init, probe=probe
    )
    print(json.dumps({"variant": args.variant, "out": str(args.out)}))


def _pretrain(args: argparse.Namespace) -> None:
    from stance.train import pretraining

    pretraining.pretrain_backbone(**_job_args(args))
    print(json.dumps({"variant": pretraining.PRETRAINED, "out": str(args.out)}))
