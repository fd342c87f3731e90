"""`stance bench startup`: time and peak memory from a saved base checkpoint to the end of
the first training step, for the two ways of building the STANCE transformer.

- `weightless` (what training does): the model is built on the meta device and takes the
  base checkpoint's tensors themselves (`weights.stance_transformer`); only the new
  modules are initialised.
- `eager` (the straightforward way, for comparison): the whole model is built with random
  weights, then the base weights are copied in; two copies are alive at once.

A random-weight base transformer of the geometry is saved once (`--checkpoint`, default a
temporary folder); each build runs in its own fresh process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from stance.train import bench

HELP = "time and peak RSS from a saved checkpoint to the first training step"
BUILDS = ("weightless", "eager")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bench.add_geometry(parser)
    parser.add_argument("--layers", type=int, help="override the layer count")
    parser.add_argument("--size", type=int, default=32, help="frame height and width")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--checkpoint", type=Path, help="where to save the base (reused)")
    parser.add_argument("--builds", nargs="+", choices=BUILDS, default=list(BUILDS))


def run(args: argparse.Namespace) -> None:
    step_args = argparse.Namespace(
        geometry=args.geometry,
        layers=args.layers,
        size=args.size,
        width=None,
        frames=args.frames,
        batch_size=1,
        motion_tokens=8,
        aux=False,
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.checkpoint or scratch)
        params = save_base(step_args, folder)
        print(
            f"startup bench: {args.geometry} geometry, {params / 1e6:.2f} M base params "
            f"(float32 checkpoint {folder}), first step: autocast, batch 1 x "
            f"{args.frames}x{args.size}x{args.size}"
        )
        context = multiprocessing.get_context("spawn")
        for build in args.builds:
            with context.Pool(1) as pool:
                figures = pool.apply(first_step, (build, step_args, str(folder)))
            print(
                f"  {build:>10}: imports {figures['import_s']:.1f} s, then model built "
                f"{figures['built_s']:.1f} s "
                f"(peak RSS {figures['built_gib']:.2f} GiB); first step done "
                f"{figures['step_s']:.1f} s (peak RSS {figures['step_gib']:.2f} GiB)"
            )


def save_base(args: argparse.Namespace, folder: Path) -> int:
    """A random-weight CogVideoX transformer of the geometry in `folder`/transformer (and a
    VAE config naming the geometry's spatial factor); returns its parameter count."""
    import torch
    from diffusers import CogVideoXTransformer3DModel

    geometry, spatial = bench.geometry_of(args)
    target = folder / "transformer"
    with torch.device("meta"):
        base = CogVideoXTransformer3DModel(**geometry)
    params = sum(p.numel() for p in base.parameters())
    if not (target / "config.json").exists():
        base.to_empty(device="cpu")
        for tensor in base.parameters():  # random values, cheaply (no per-layer init rules)
            torch.nn.init.normal_(tensor.data, std=0.02)
        base.save_pretrained(target)
    write_vae_config(folder, spatial)
    return params


def write_vae_config(folder: Path, spatial: int) -> None:
    """The one VAE field the build reads: its block count gives the spatial factor."""
    import json

    (folder / "vae").mkdir(exist_ok=True)
    blocks = [128] * (spatial.bit_length())  # 2 ** (blocks - 1) == spatial
    config = {"_class_name": "AutoencoderKLCogVideoX", "block_out_channels": blocks}
    (folder / "vae" / "config.json").write_text(json.dumps(config))


def first_step(build: str, args: argparse.Namespace, folder: str) -> dict:
    """In a fresh process: build the model the given way, run one training step; the
    seconds (after the imports) and peak RSS (GiB) at both points."""
    start = time.perf_counter()
    import torch
    from diffusers import CogVideoXTransformer3DModel  # noqa: F401  (timed apart)

    imported = time.perf_counter()
    model = build_model(build, folder).train()
    figures = {
        "import_s": imported - start,
        "built_s": time.perf_counter() - imported,
        "built_gib": peak_rss_gib(),
    }
    geometry, spatial = bench.geometry_of(args)
    inputs = bench.random_inputs(args, model, geometry, spatial, torch.bfloat16, "cpu")
    bench.training_step(model, inputs, torch.bfloat16, "cpu")()
    figures.update(step_s=time.perf_counter() - imported, step_gib=peak_rss_gib())
    return figures


def build_model(build: str, folder: str):
    from stance.train import components, weights

    if build == "weightless":
        return weights.stance_transformer(folder, {"motion_tokens": 8}, allow_download=False)
    from diffusers import CogVideoXTransformer3DModel

    from stance.train.model import StanceTransformer

    base = CogVideoXTransformer3DModel.from_pretrained(folder, subfolder="transformer")
    spatial = components.vae_spatial_factor(folder, allow_download=False)
    model = StanceTransformer.from_config(
        {**base.config, "vae_spatial": spatial, "motion_tokens": 8}
    )
    model.load_state_dict(base.state_dict(), strict=False)
    return model


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
