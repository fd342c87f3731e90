"""`stance models`: build the tiny random-weight models the embedded config runs on;
convert downloaded feature-network checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from stance import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tiny = sub.add_parser(
        "make-tiny",
        help="save a tiny random-weight model built from a real "
        "config, loadable with from_pretrained like the real one",
    )
    tiny.set_defaults(run=_make_tiny)
    tiny.add_argument(
        "kind",
        choices=["depth", "video"],
        help="depth: Depth-Anything-V2; video: CogVideoX-1.5 I2V pipeline",
    )
    tiny.add_argument("--out", required=True, type=Path, help="folder to write")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument(
        "--size",
        choices=config.BUILT_VIDEO_SIZES,
        default="tiny",
        help="video only: small = configs/small.yaml's from-scratch stack (invertible "
        "codec); smallwide = the same codec, a wider patch-1 transformer; smallfine = "
        "small with 4 x 4 px tokens (spatial patch 1); smallpca = "
        "the small stack with a 16-channel PCA codec fitted on --fit-renders",
    )
    tiny.add_argument(
        "--fit-renders",
        nargs="*",
        type=Path,
        default=[],
        help="smallpca only: render shard folders whose clips fit the codec",
    )
    convert = sub.add_parser(
        "convert-videomae",
        help="turn the original VideoMAE-v2 ViT-g checkpoint (vit_g_hybrid_pt_1200e_ssv2_ft"
        ".pth, for content-debiased FVD) into a transformers folder for models.fvd_videomae",
    )
    convert.set_defaults(run=_convert_videomae)
    convert.add_argument("checkpoint", type=Path, help="the original .pth file")
    convert.add_argument("--out", required=True, type=Path, help="folder to write")


def _make_tiny(args: argparse.Namespace) -> None:
    if args.kind == "depth":
        from stance.depth import model as depth_model

        depth_model.make_tiny(args.out, seed=args.seed)
    else:
        from stance.train import tiny

        if (args.size in config.FITTED_VIDEO_SIZES) != bool(args.fit_renders):
            raise SystemExit(
                f"--fit-renders goes with --size {' or '.join(config.FITTED_VIDEO_SIZES)}"
                " (and only with it)"
            )
        tiny.make_tiny(args.out, seed=args.seed, size=args.size, fit_renders=args.fit_renders)


def _convert_videomae(args: argparse.Namespace) -> None:
    from stance.evaluate import videomae

    videomae.load_model(args.checkpoint).save_pretrained(args.out)
