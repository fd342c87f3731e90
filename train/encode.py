"""Per-clip training cache: VAE latents, keyframes and T5 prompt embeddings, computed once.

The VAE dominates the cost of a training step, so every clip is encoded once per shard
job into `results/train/cache/{split}/{shard}/<clip_id>.safetensors`. The cache holds nothing
the cue stage computes: training reads the cues from the cue stores, so changing the cue
logic never re-encodes a clip.

| tensor              | shape        | meaning                                               |
|---------------------|--------------|-------------------------------------------------------|
| video_latents       | (F, C, h, w) | VAE(video in [-1, 1]) * scaling_factor                |
| depth_latents       | (F, C, h, w) | VAE(depth video, `aux_frames.depth_video`) * scaling  |
| seg_latents         | (F, C, h, w) | VAE(instance colours, `aux_frames`) * scaling         |
| rgb_keyframe        | (H, W, 3)    | uint8 frame 0 of the video                            |
| depth_keyframe      | (H, W, 3)    | uint8 frame 0 of the depth video                      |
| seg_keyframe        | (H, W, 3)    | uint8 frame 0 of the segmentation video               |
| image_latents       | (1, C, h, w) | VAE(rgb_keyframe + log-normal noise), unscaled        |
| depth_image_latents | (1, C, h, w) | VAE(depth_keyframe + the same noise level), unscaled  |
| seg_image_latents   | (1, C, h, w) | VAE(seg_keyframe + the same noise level), unscaled    |
| prompt_embeds       | (S, D)       | T5 embedding of the clip's caption                    |

The *_image_latents are the noise augmentation drawn once (`train.image_noise: cached`);
by default the trainer redraws the noise and encodes the keyframes at every step, as
THUDM's trainer does. Metadata (strings): format, version, model, resolution, frames,
caption, clip_id, code_hash.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import safe_open, save_file

from stance import provenance, stores
from stance.render import store as clip_store
from stance.train import aux_frames, captions, components, draws

log = logging.getLogger(__name__)
FORMAT = "stance.train.latents"
VERSION = "2"
PRODUCER = "the train stage's encoder (stance train encode)"
STREAMS = ("rgb", "depth", "seg")  # keyframe / image-latent prefixes, RGB first
TENSORS = (
    "video_latents",
    "depth_latents",
    "seg_latents",
    *(f"{s}_keyframe" for s in STREAMS),
    "image_latents",
    "depth_image_latents",
    "seg_image_latents",
    "prompt_embeds",
)
NOISE_LOG_MEAN, NOISE_LOG_STD = -3.0, 0.5  # image noise sigma ~ exp(N(-3, 0.5)), as THUDM


def image_latent_name(stream: str) -> str:
    return "image_latents" if stream == "rgb" else f"{stream}_image_latents"


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """(T,H,W,3) uint8 -> (1,3,T,H,W) float in [-1, 1]."""
    video = torch.from_numpy(frames).float().div(127.5).sub(1.0)
    return video.permute(3, 0, 1, 2)[None]


@torch.no_grad()
def encode_video(
    vae, frames: np.ndarray, generator: torch.Generator, scale: bool = True
) -> torch.Tensor:
    """(T,H,W,3) uint8 -> (F, C, h, w) latents (scaled by the VAE factor if `scale`)."""
    dist = vae.encode(to_unit(frames).to(vae.device, vae.dtype)).latent_dist
    latents = dist.sample(generator=generator)
    if scale:
        latents = latents * vae.config.scaling_factor
    return latents[0].permute(1, 0, 2, 3).float().cpu().contiguous()


@torch.no_grad()
def noisy_keyframe_latents(
    vae, keyframes: dict[str, torch.Tensor], generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """Noise-augmented keyframes -> raw VAE latents (B, 1, C, h, w) per stream.

    keyframes: stream -> (B, H, W, 3) uint8 on any device. One sigma ~ exp(N(-3, 0.5)) per
    sample, shared by its streams (as the authors noise RGB and depth keyframes together),
    Gaussian pixel noise in [-1, 1] units, then a latent sample; every draw comes from
    `generator` on its own device.
    """
    first = next(iter(keyframes.values()))
    batch, device = first.shape[0], vae.device
    sigma = draws.randn((batch,), generator, device).mul(NOISE_LOG_STD).add(NOISE_LOG_MEAN).exp()
    out = {}
    for stream, frames in keyframes.items():
        pixels = frames.to(device).float().div(127.5).sub(1.0).permute(0, 3, 1, 2)[:, :, None]
        pixels = pixels + sigma[:, None, None, None, None] * draws.randn(
            pixels.shape, generator, device
        )
        dist = vae.encode(pixels.to(vae.dtype)).latent_dist
        latents = dist.mean + dist.std * draws.randn(dist.mean.shape, generator, device)
        out[stream] = latents.permute(0, 2, 1, 3, 4).float()
    return out


@torch.no_grad()
def embed_prompt(tokenizer, text_encoder, caption: str, max_length: int) -> torch.Tensor:
    ids = tokenizer(
        caption,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0][0].float().cpu().contiguous()


def stream_videos(arrays) -> dict[str, np.ndarray]:
    """The (T,H,W,3) uint8 videos the VAE encodes per clip: RGB, depth and segmentation."""
    return {
        "rgb": arrays["rgb"],
        "depth": aux_frames.depth_video(arrays["depth"]),
        "seg": aux_frames.segmentation_video(arrays["segmentation"]),
    }


def encode_videos(
    frozen, videos: dict[str, np.ndarray], caption: str, max_text: int, seed: int
) -> dict[str, torch.Tensor]:
    """A clip's cache tensors from its `stream_videos` and caption."""
    generator = torch.Generator().manual_seed(seed)
    vae = frozen["vae"]
    tensors = {
        "video_latents": encode_video(vae, videos["rgb"], generator),
        "depth_latents": encode_video(vae, videos["depth"], generator),
        "seg_latents": encode_video(vae, videos["seg"], generator),
        "prompt_embeds": embed_prompt(
            frozen["tokenizer"], frozen["text_encoder"], caption, max_text
        ),
    }
    keyframes = {s: torch.from_numpy(np.ascontiguousarray(v[:1])) for s, v in videos.items()}
    keyframe_rng = torch.Generator(device=vae.device).manual_seed(seed + 1)
    noisy = noisy_keyframe_latents(vae, keyframes, keyframe_rng)
    for stream in STREAMS:
        tensors[f"{stream}_keyframe"] = keyframes[stream][0]
        tensors[image_latent_name(stream)] = noisy[stream][0].cpu().contiguous()
    return tensors


def clip_inputs(path: Path, index: int) -> tuple[str, dict[str, np.ndarray], str, int]:
    """What the cache of the `index`-th clip of a render shard is computed from: its id,
    `stream_videos`, caption and encode seed."""
    clip = clip_store.read_clip(path, names=("rgb", "segmentation", "depth"))
    seed = int(Path(path).stem.split("-")[-1]) * 7 + index
    caption = captions.describe(clip.attrs["instances"])
    return clip.attrs["clip_id"], stream_videos(clip.arrays), caption, seed


def write_clip_cache(
    frozen,
    target: Path,
    clip_id: str,
    videos: dict[str, np.ndarray],
    caption: str,
    seed: int,
    max_text: int,
    model: str,
    code_hash: str,
) -> None:
    """Encode one clip and write its cache file (renamed when whole: never half-written)."""
    tensors = encode_videos(frozen, videos, caption, max_text, seed)
    meta = {
        "caption": caption,
        "clip_id": clip_id,
        "frames": str(len(videos["rgb"])),
        "resolution": str(videos["rgb"].shape[1]),
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "code_hash": code_hash,
    }
    tmp = target.with_suffix(".partial")
    save_file(tensors, tmp, metadata=meta)
    tmp.replace(target)


def write_shard_record(
    out_dir: Path, model: str, max_text: int, code_hash: str, clips: list[str]
) -> None:
    provenance.write_resolved_config(
        out_dir,
        "encode",
        {"model": model, "max_text_seq_length": max_text, "code_hash": code_hash, "clips": clips},
    )


def load_encoders(model_source: str, allow_download: bool) -> dict:
    """The frozen stack with its VAE and text encoder on the GPU when there is one."""
    frozen = components.load_frozen(model_source, allow_download)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name in ("vae", "text_encoder"):
        frozen[name].to(device)
    return frozen


def encode_shard(
    render_dir: Path,
    out_dir: Path,
    model_source: str,
    max_text: int,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    frozen = load_encoders(model_source, allow_download)
    paths = clip_store.clip_paths(render_dir)
    for k, path in enumerate(tqdm(paths, desc=f"encode {render_dir.name}", unit="clip")):
        clip_id, videos, caption, seed = clip_inputs(path, k)
        target = out_dir / f"{path.stem}.safetensors"
        write_clip_cache(
            frozen, target, clip_id, videos, caption, seed, max_text, model_source, code_hash
        )
    write_shard_record(out_dir, model_source, max_text, code_hash, [p.name for p in paths])


def read_cache(
    path: Path, names: tuple[str, ...] = TENSORS
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The cache's metadata and the tensors `names` (default: all), reading only those."""
    if not Path(path).is_file():
        raise stores.StoreError(f"no training cache at {path}; run {PRODUCER}")
    with stores.reading(path, PRODUCER), safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise stores.StoreError(
                f"{path} is not a training cache of version {VERSION} "
                f"(found {meta.get('format')} {meta.get('version')}): "
                + stores.regenerate(Path(path), PRODUCER)
            )
        missing = set(TENSORS) - set(handle.keys())
        if missing:
            raise stores.StoreError(
                f"{path} lacks {sorted(missing)}: {stores.regenerate(Path(path), PRODUCER)}"
            )
        return {name: handle.get_tensor(name) for name in names}, meta
