"""`stance bench`: benchmarks that print figures (no pass/fail: numbers to report)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    render = sub.add_parser("render", help="clips/hour and overhead of the render stage")
    render.add_argument("--resolution", type=int, default=128)
    render.add_argument("--frames", type=int, default=24)
    render.add_argument("--spp", type=int, default=16)
    render.add_argument("--clips", type=int, default=2)
    render.add_argument("--threads", type=int, default=2)

    cues = sub.add_parser("cues", help="cue kernel and whole per-clip cue job time")
    cues.add_argument("--frames", type=int, default=49)
    cues.add_argument("--size", type=int, default=512)
    cues.add_argument("--instances", type=int, default=10)
    evaluate = sub.add_parser("evaluate", help="Physics-IQ clips/s")
    evaluate.add_argument("--clips", type=int, default=100)
    evaluate.add_argument("--frames", type=int, default=49)
    evaluate.add_argument("--size", type=int, default=256)
    depth = sub.add_parser("depth", help="Depth-Anything-V2 frames/s for the configured model")
    depth.add_argument("--config", default="config.yaml")
    depth.add_argument("--model", help="hub id or folder (default: models.depth of the config)")
    depth.add_argument("--input-size", type=int, help="default: depth.input_size of the config")
    depth.add_argument("--frames", type=int, default=16)
    depth.add_argument("--frame-size", type=int, default=512)
    train = sub.add_parser("train", help="STANCE training step time, tokens/s, peak memory")
    train.add_argument("--geometry", choices=["tiny", "5b"], default="tiny")
    train.add_argument("--layers", type=int, help="override the layer count (smoke tests)")
    train.add_argument("--frames", type=int, default=9)
    train.add_argument("--size", type=int, default=32)
    train.add_argument("--motion-tokens", type=int, default=8)
    train.add_argument("--aux", action="store_true", help="add the auxiliary stream")
    train.add_argument("--steps", type=int, default=5)
    train.add_argument("--gradient-checkpointing", action="store_true")


def main(args: argparse.Namespace) -> int:
    if args.target == "render":
        from stance.render import bench

        bench.run(args)
    elif args.target == "cues":
        from stance.cues import bench

        bench.run_cues(args)
    elif args.target == "train":
        from stance.train import bench

        bench.run(args)
    elif args.target == "evaluate":
        from stance.evaluate import bench

        bench.run(args)
    elif args.target == "depth":
        from stance.cues import bench

        bench.run_depth(args)
    return 0
