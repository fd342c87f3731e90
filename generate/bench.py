"""Generation under each memory profile: seconds per sampling step and per video, peak GPU
memory. The stack is built from the real configs with random weights: `5b` =
CogVideoX1.5-5B-I2V (T5-XXL encoder, the 1.5 VAE, the 5B transformer with STANCE's cue
modules), `tiny` = the embedded config's stack.

    python -m stance.generate.bench --geometry 5b --frames 49 --size 512 --steps 4 \
        --profiles full offload sequential
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

# text_encoder/config.json of THUDM/CogVideoX1.5-5B-I2V (T5 v1.1 XXL encoder)
T5_XXL = dict(
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    vocab_size=32128,
)
# vae/config.json of THUDM/CogVideoX1.5-5B-I2V (the diffusers defaults but these)
VAE_15 = dict(scaling_factor=0.7, invert_scale_latents=True)


def build(geometry: str, device: str, dtype):
    """(pipeline, cue map builder) with random weights, on `device`."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
    from transformers import T5Config, T5EncoderModel

    from stance.generate.pipeline import StanceImageToVideoPipeline
    from stance.train import tiny
    from stance.train.bench import COGVIDEOX15_5B
    from stance.train.model import StanceTransformer

    if geometry == "tiny":
        parts = tiny.components()
        transformer = StanceTransformer(**tiny.TRANSFORMER, motion_tokens=8)
        parts.pop("transformer")
        pipe = StanceImageToVideoPipeline(transformer=transformer, **parts)
        return pipe.to(device), 32
    with torch.device(device):  # random init on the GPU: seconds instead of minutes
        text_encoder = T5EncoderModel(T5Config(**T5_XXL)).to(dtype)
        vae = AutoencoderKLCogVideoX(**VAE_15).to(dtype)
        transformer = StanceTransformer(**COGVIDEOX15_5B, motion_tokens=64).to(dtype)
    pipe = StanceImageToVideoPipeline(
        tokenizer=tiny.tokenizer(),
        text_encoder=text_encoder.eval(),
        vae=vae.eval(),
        transformer=transformer.eval(),
        scheduler=CogVideoXDPMScheduler(**tiny.SCHEDULER),
    )
    return pipe, 226


def main(argv: list[str] | None = None) -> None:
    import torch

    from stance import precision
    from stance.generate import sampling

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometry", choices=["tiny", "5b"], default="tiny")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="sampling steps measured (>= 3)")
    parser.add_argument("--video-steps", type=int, default=50, help="steps of a real video")
    parser.add_argument("--profiles", nargs="+", default=list(sampling.MEMORY_PROFILES))
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be at least 3 (the steady pace is measured from step 2)")

    cuda = torch.cuda.is_available()
    dtype = precision.inference_dtype("cuda" if cuda else "cpu")
    key = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    cues = np.zeros((args.size, args.size, 4), np.float32)
    cues[args.size // 4 : args.size // 2, args.size // 4 : args.size // 2, :2] = 1.5
    reference = None
    for profile in args.profiles:
        video, once, per_step, peak = run_profile(args, profile, key, cues, cuda, dtype)
        per_video = once + (args.video_steps - 1) * per_step
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        same = "reference" if reference is None else f"max diff {np.abs(video - reference).max()}"
        reference = video if reference is None else reference
        print(
            f"generate bench: {args.geometry}, {profile}, {args.frames}x{args.size}x{args.size}:"
            f" {per_step:.2f} s/step, {once:.1f} s for 1 step incl. encode+decode, "
            f"~{per_video:.0f} s per {args.video_steps}-step video; peak GPU {peak:.1f} GiB; "
            f"process RSS peak {rss:.1f} GiB; video vs the first profile: {same}",
            flush=True,
        )
        if cuda:
            torch.cuda.empty_cache()


def run_profile(args, profile: str, key, cues, cuda: bool, dtype):
    """(video, seconds of a 1-step video, seconds per extra step, peak GPU GiB)."""
    import torch

    from stance.generate import sampling

    torch.manual_seed(0)  # the same random weights for every profile
    pipe, max_text = build(args.geometry, "cuda" if cuda else "cpu", dtype)
    if cuda and profile != "full":
        pipe.to("cpu")
    sampling.apply_memory_profile(pipe, profile, cuda)
    pipe.set_progress_bar_config(disable=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    ticks = []

    def timed_loop(iterable=None, total=None):  # the sampling loop's progress bar
        for item in iterable:
            if cuda:
                torch.cuda.synchronize()
            ticks.append(time.perf_counter())
            yield item

    pipe.progress_bar = timed_loop

    def timed(steps):
        ticks.clear()
        start = time.perf_counter()
        out = pipe.generate(
            key,
            cues,
            "a red cube slides",
            args.frames,
            steps,
            1.0,
            0,
            max_sequence_length=max_text,
        )
        if cuda:
            torch.cuda.synchronize()
        return out.video.astype(int), time.perf_counter() - start

    timed(1)  # warm-up: kernels, allocator, offload hooks
    _, once = timed(1)  # prompt encoding, keyframe encoding, one step, decoding
    video, _ = timed(args.steps)
    # ticks mark the start of each step; the first step also moves an offloaded
    # transformer to the GPU (in `once`), so the steady pace is measured from step 2
    per_step = (ticks[-1] - ticks[1]) / (len(ticks) - 2)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return video, once, per_step, peak


if __name__ == "__main__":
    main()
