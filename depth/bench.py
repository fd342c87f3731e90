"""`stance bench depth`: Depth-Anything-V2 frames/s for the configured model."""

from __future__ import annotations

import argparse

HELP = "Depth-Anything-V2 frames/s for the configured model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--model", help="hub id or folder (default: models.depth of the config)")
    parser.add_argument(
        "--geometry",
        choices=["small", "base", "large"],
        help="random weights at a real model's size instead of --model (no download)",
    )
    parser.add_argument("--batch-size", type=int, help="default: depth.batch_size of the config")
    parser.add_argument("--input-size", type=int, help="default: depth.input_size of the config")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--frame-size", type=int, default=512)


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from stance import config
    from stance.bench import best_of
    from stance.depth import model as depth_model
    from stance.depth import shard

    cfg = config.load_settings(args.config)
    settings = cfg.depth
    batch = args.batch_size or settings.batch_size
    device, dtype = shard.resolve_device(settings.device, settings.dtype)
    if args.geometry:
        from transformers import DepthAnythingForDepthEstimation, DPTImageProcessor

        name = f"{args.geometry} geometry (random weights)"
        model = DepthAnythingForDepthEstimation(depth_model.geometry_config(args.geometry))
        processor = DPTImageProcessor(**depth_model.HUB_PREPROCESSOR)
    else:
        name = args.model or cfg.models.depth
        model, processor = depth_model.load(name)
    model.eval().to(device)
    size = args.input_size or settings.input_size
    frames = np.random.default_rng(0).integers(
        0, 255, (args.frames, args.frame_size, args.frame_size, 3), dtype=np.uint8
    )
    shard.predict(model, processor, frames[:batch], size, batch, device, dtype)  # warm-up
    seconds = best_of(
        lambda: shard.predict(model, processor, frames, size, batch, device, dtype), repeats=2
    )
    params = sum(p.numel() for p in model.parameters())
    print(
        f"depth bench: {name} ({params / 1e6:.2f} M params) "
        f"on {device}/{dtype}, input {size}px, batch {batch}"
    )
    print(
        f"  {args.frames} frames of {args.frame_size}px in {seconds:.2f} s: "
        f"{args.frames / seconds:.1f} frames/s"
    )
