"""`stance bench train`: step time, tokens/s, peak memory (and MFU on GPUs) of one STANCE
training step (forward + backward + AdamW) on random inputs.

Geometries: `tiny` (the embedded config's transformer), `small` (configs/small.yaml's, on
the invertible codec's 4x latent grid: `--geometry small --size 48 --batch-size 16` is one
step of the small-scale run), `smallfine` and `smallwide` (the stacks of
configs/small_fine.yaml and configs/small_wide.yaml, on the same codec) and `5b`
(CogVideoX1.5-5B-I2V's transformer config with random weights, bf16 and gradient
checkpointing on a GPU).
"""

from __future__ import annotations

import argparse
import resource
import time

# transformer/config.json of THUDM/CogVideoX1.5-5B-I2V
COGVIDEOX15_5B = dict(
    num_attention_heads=48,
    attention_head_dim=64,
    in_channels=32,
    out_channels=16,
    time_embed_dim=512,
    ofs_embed_dim=512,
    text_embed_dim=4096,
    num_layers=42,
    sample_width=300,
    sample_height=300,
    sample_frames=81,
    patch_size=2,
    patch_size_t=2,
    patch_bias=False,
    max_text_seq_length=226,
    use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=False,
    temporal_compression_ratio=4,
)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, per GPU


HELP = "STANCE training step time, tokens/s, peak memory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_geometry(parser)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--layers", type=int, help="override the layer count (smoke tests)")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=32, help="frame height (and width)")
    parser.add_argument("--width", type=int, help="frame width when not square (e.g. 1360)")
    parser.add_argument("--motion-tokens", type=int, default=8)
    parser.add_argument("--aux", action="store_true", help="add the auxiliary stream")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="wrap the transformer in torch.compile; the first step's time (compilation "
        "included) is printed apart from the timed steps",
    )
    parser.add_argument(
        "--cpu-attention",
        choices=["auto", "bf16", "float32"],
        default="auto",
        help="what attention runs in under bf16 autocast on a CPU; auto: float32 where the "
        "CPU has bf16 instructions but no AMX (its bf16 flash kernel is the slower one there)",
    )
    parser.add_argument(
        "--precision",
        choices=["bf16", "autocast", "fp32"],
        help="bf16: bf16 weights, gradients and AdamW states (16 GB less per 1B params); "
        "autocast: fp32 weights under bf16 autocast, as accelerate's mixed_precision=bf16 "
        "trains; fp32: no bf16 at all. Default: bf16 on a GPU; on a CPU fp32 and autocast "
        "side by side",
    )


def add_geometry(parser: argparse.ArgumentParser) -> None:
    from stance.train import tiny

    choices = ["tiny", *tiny.EXACT_CODEC_TRANSFORMERS, "5b"]
    parser.add_argument("--geometry", choices=choices, default="tiny")


def step_flops(params: int, tokens: int, layers: int, dim: int) -> float:
    """Forward + backward FLOPs: 6 * params * tokens + attention (12 * L * S^2 * D)."""
    return 6.0 * params * tokens + 12.0 * layers * tokens**2 * dim


def run(args: argparse.Namespace) -> None:
    import torch

    from stance import precision

    precision.cpu_attention = args.cpu_attention
    if args.precision is not None:
        measure(args, args.precision)
    elif torch.cuda.is_available():
        measure(args, "bf16")
    else:  # a CPU: what bf16 autocast (train.mixed_precision auto) buys over float32
        fp32, autocast = measure(args, "fp32"), measure(args, "autocast")
        print(f"bf16 autocast vs float32 on this CPU: {fp32 / autocast:.2f}x faster per step")


def measure(args: argparse.Namespace, precision: str) -> float:
    """Print one setting's figures; returns its seconds per step."""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model, geometry, spatial = build_model(args, precision, device)
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    inputs = random_inputs(args, model, geometry, spatial, dtype, device)
    if args.compile:
        model = torch.compile(model)
    seconds, first = time_steps(training_step(model, inputs, dtype, device), args.steps, cuda)
    if seconds != seconds:  # out of memory
        print(
            f"train bench: {args.geometry} geometry, {precision}, aux {args.aux}, "
            f"gradient checkpointing {args.gradient_checkpointing}: out of memory on "
            f"{torch.cuda.get_device_name()} "
            f"(peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB)"
        )
        return seconds
    report(args, precision, model, geometry, spatial, seconds, cuda)
    if args.compile:
        print(f"  torch.compile: first step (compilation included) {first:.1f} s")
    return seconds


def training_step(model, inputs: dict, dtype, device: str):
    """One forward + backward + AdamW step on `inputs`, as a function to call repeatedly;
    under autocast to `dtype` when the weights are not in it."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95))
    weights = next(model.parameters()).dtype
    autocast = torch.autocast(device, dtype, enabled=weights != dtype)

    def step():
        with autocast:
            out = model(**inputs).sample
        outs = out if isinstance(out, tuple) else (out,)
        loss = sum(o.float().square().mean() for o in outs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def build_model(args: argparse.Namespace, precision: str, device: str):
    """(STANCE transformer of the bench geometry in the setting's weights, its geometry,
    the codec's spatial compression)."""
    import torch

    from stance.train.model import StanceTransformer

    geometry, spatial = geometry_of(args)
    weights = torch.float32 if precision in ("autocast", "fp32") else torch.bfloat16
    with torch.device(device):  # initialise on the GPU: 5B random weights in seconds
        model = StanceTransformer(
            **geometry, motion_tokens=args.motion_tokens, vae_spatial=spatial
        ).to(weights)
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model.train(), geometry, spatial


def geometry_of(args: argparse.Namespace) -> tuple[dict, int]:
    """(the transformer config of `args.geometry` with `args.layers` applied, the spatial
    factor of its codec)."""
    from stance.train import tiny

    exact_codec = tiny.EXACT_CODEC_TRANSFORMERS
    geometry = dict({"5b": COGVIDEOX15_5B, **exact_codec}.get(args.geometry, tiny.TRANSFORMER))
    spatial = tiny.SMALL_CODEC["spatial_compression_ratio"] if args.geometry in exact_codec else 8
    if args.layers:
        geometry["num_layers"] = args.layers
    return geometry, spatial


def patch_sizes(geometry: dict) -> tuple[int, int]:
    """(spatial patch, temporal patch) of a transformer config (no temporal patch: 1)."""
    return geometry["patch_size"], geometry["patch_size_t"] or 1


def latent_grid(args: argparse.Namespace, geometry: dict, spatial: int) -> tuple[int, int, int]:
    """(latent frames padded to a multiple of the temporal patch, latent height, width)."""
    latent_frames = (args.frames - 1) // 4 + 1
    latent_frames += -latent_frames % patch_sizes(geometry)[1]
    return latent_frames, args.size // spatial, (args.width or args.size) // spatial


def random_inputs(args, model, geometry: dict, spatial: int, dtype, device: str) -> dict:
    """One random batch of the model's inputs (keyword arguments of its forward)."""
    import torch

    from stance.train import objective

    latent_frames, lat_h, lat_w = latent_grid(args, geometry, spatial)
    height, width = args.size, args.width or args.size
    batch, channels = args.batch_size, geometry["in_channels"] // 2
    g = torch.Generator(device).manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g, device=device).to(dtype)

    hidden = rand(batch, latent_frames, 2 * channels, lat_h, lat_w)
    aux = rand(batch, latent_frames, 2 * channels, lat_h, lat_w) if args.aux else None
    text = rand(batch, geometry["max_text_seq_length"], geometry["text_embed_dim"])
    cues = torch.zeros(batch, 4, height, width, device=device, dtype=dtype)
    cues[..., height // 4 : height // 2, width // 4 : width // 2] = 1.0
    return {
        "hidden_states": hidden,
        "encoder_hidden_states": text,
        "timestep": torch.full((batch,), 500, device=device),
        "ofs": torch.full((batch,), 2.0, device=device),
        "image_rotary_emb": objective.rotary_embedding(
            model.config, height, width, latent_frames, device
        ),
        "cues": cues,
        "aux_hidden_states": aux,
    }


def time_steps(step, steps: int, cuda: bool) -> tuple[float, float]:
    """(seconds per step over `steps` after a warm-up step, the warm-up step's seconds);
    (NaN, NaN) when it runs out of memory."""
    import torch

    start = time.perf_counter()
    try:
        step()  # warm-up (allocations, kernels, compilation)
    except torch.OutOfMemoryError:
        return float("nan"), float("nan")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, first


def attention_dtype(setting: str, cuda: bool) -> str:
    """What the timed step's attention runs in (`--precision` setting, device)."""
    from stance import precision

    if setting == "fp32":
        return "float32"
    on_cpu_autocast = setting == "autocast" and not cuda
    return "float32" if on_cpu_autocast and precision.cpu_attention_in_float32() else "bf16"


def report(args, precision: str, model, geometry: dict, spatial: int, seconds: float, cuda: bool):
    """Print the setting, tokens/s, peak memory, FLOPs and (on a known GPU) MFU."""
    import torch

    patch, patch_t = patch_sizes(geometry)
    latent_frames, lat_h, lat_w = latent_grid(args, geometry, spatial)
    streams = 2 if args.aux else 1
    video_tokens = latent_frames // patch_t * (lat_h // patch) * (lat_w // patch)
    sequence = streams * video_tokens + args.motion_tokens + geometry["max_text_seq_length"]
    batch = args.batch_size
    params = sum(p.numel() for p in model.parameters())
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name()
        peak_tflops = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        name, peak_tflops = "CPU", None
    flops = batch * step_flops(
        params,
        sequence,
        geometry["num_layers"],
        geometry["num_attention_heads"] * geometry["attention_head_dim"],
    )
    weights = next(model.parameters()).dtype
    print(
        f"train bench: {args.geometry} geometry ({params / 1e6:.2f} M params, "
        f"{geometry['num_layers']} layers) on {name}, {weights} weights "
        f"({precision}, {torch.get_num_threads()} CPU threads), "
        f"attention in {attention_dtype(precision, cuda)}, "
        f"batch {batch} x {args.frames}x{args.size}x{args.width or args.size}, "
        f"streams {streams}, {args.motion_tokens} motion tokens, gradient checkpointing "
        f"{args.gradient_checkpointing}, torch.compile {args.compile}"
    )
    print(
        f"  {batch} x {sequence} tokens; step {seconds:.3f} s; "
        f"{batch * sequence / seconds:,.0f} tokens/s; peak memory {peak:.2f} GiB "
        f"({'GPU allocated' if cuda else 'process RSS'})"
    )
    achieved = flops / seconds / 1e12
    mfu = f"; MFU {achieved / peak_tflops:.1%}" if peak_tflops else ""
    print(f"  model FLOPs/step {flops / 1e12:.2f} T; achieved {achieved:.2f} TFLOP/s{mfu}")
