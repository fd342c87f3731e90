"""Per-clip training cache: VAE latents, T5 prompt embeddings and cue maps, computed once.

The VAE dominates the cost of a training step, so every clip is encoded once per shard
job into `results/latents/{split}/{shard}/<clip_id>.safetensors`:

| tensor          | shape          | meaning                                              |
|-----------------|----------------|------------------------------------------------------|
| video_latents   | (F, C, h, w)   | VAE(video in [-1, 1]) * scaling_factor               |
| image_latents   | (1, C, h, w)   | VAE(first frame + log-normal noise), unscaled        |
| depth_latents   | (F, C, h, w)   | VAE(rendered inverse depth as a grey video) * scaling |
| seg_latents     | (F, C, h, w)   | VAE(instance colours) * scaling                      |
| prompt_embeds   | (S, D)         | T5 embedding of the clip's caption                   |
| cues            | (Cc, H, W)     | the cue store's keyframe cue (u, v, dz, mass)        |

Metadata (strings): format, version, model, resolution, frames, caption, noise sigma,
code_hash. The rule's params hold the model id and settings, so a different model or
preprocessing re-encodes (the cache is keyed by them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, safe_open, save_file

from stance import provenance, stores
from stance.cues import store as cue_store
from stance.palette import palette
from stance.render import store as clip_store
from stance.train import captions, components

log = logging.getLogger(__name__)
FORMAT = "stance.train.latents"
VERSION = "1"
TENSORS = (
    "video_latents",
    "image_latents",
    "depth_latents",
    "seg_latents",
    "prompt_embeds",
    "cues",
)


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """(T,H,W,3) uint8 -> (1,3,T,H,W) float in [-1, 1]."""
    video = torch.from_numpy(frames).float().div(127.5).sub(1.0)
    return video.permute(3, 0, 1, 2)[None]


def depth_video(depth: np.ndarray) -> np.ndarray:
    """Rendered depth -> inverse depth as a grey uint8 video, normalised per clip."""
    inverse = np.where(depth < 1e3, 1.0 / np.maximum(depth, 1e-6), 0.0)
    grey = (inverse - inverse.min()) / max(np.ptp(inverse), 1e-9) * 255
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)


def segmentation_video(seg: np.ndarray) -> np.ndarray:
    return palette(seg)


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


def encode_clip(
    frozen, render_path: Path, cue_path: Path, max_text: int, seed: int
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    clip = clip_store.read_clip(render_path, names=("rgb", "segmentation", "depth"))
    cue = cue_store.read(cue_path)
    generator = torch.Generator().manual_seed(seed)
    vae = frozen["vae"]
    rgb = clip.arrays["rgb"]
    sigma = float(np.exp(np.random.default_rng(seed).normal(-3.0, 0.5)))
    noisy_first = np.clip(
        rgb[:1].astype(np.float32)
        + sigma * 127.5 * np.random.default_rng(seed + 1).standard_normal(rgb[:1].shape),
        0,
        255,
    ).astype(np.uint8)
    caption = captions.describe(clip.attrs["instances"])
    tensors = {
        "video_latents": encode_video(vae, rgb, generator),
        "image_latents": encode_video(vae, noisy_first, generator, scale=False),
        "depth_latents": encode_video(vae, depth_video(clip.arrays["depth"]), generator),
        "seg_latents": encode_video(
            vae, segmentation_video(clip.arrays["segmentation"]), generator
        ),
        "prompt_embeds": embed_prompt(
            frozen["tokenizer"], frozen["text_encoder"], caption, max_text
        ),
        "cues": torch.from_numpy(cue.cue[0]).permute(2, 0, 1).contiguous(),
    }
    meta = {
        "caption": caption,
        "noise_sigma": f"{sigma:.6f}",
        "clip_id": clip.attrs["clip_id"],
        "frames": str(len(rgb)),
        "resolution": str(rgb.shape[1]),
    }
    return tensors, meta


def encode_shard(
    render_dir: Path,
    cue_dir: Path,
    out_dir: Path,
    model_source: str,
    max_text: int,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    frozen = components.load_frozen(model_source, allow_download)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name in ("vae", "text_encoder"):
        frozen[name].to(device)
    paths = clip_store.clip_paths(render_dir)
    for k, path in enumerate(tqdm(paths, desc=f"encode {render_dir.name}", unit="clip")):
        tensors, meta = encode_clip(
            frozen, path, cue_dir / path.name, max_text, seed=int(path.stem.split("-")[-1]) * 7 + k
        )
        meta.update(format=FORMAT, version=VERSION, model=model_source, code_hash=code_hash)
        target = out_dir / f"{path.stem}.safetensors"
        tmp = target.with_suffix(".partial")
        save_file(tensors, tmp, metadata=meta)
        tmp.replace(target)
    provenance.write_resolved_config(
        out_dir,
        "encode",
        {
            "model": model_source,
            "max_text_seq_length": max_text,
            "code_hash": code_hash,
            "clips": [p.name for p in paths],
        },
    )


def read_cache(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise stores.StoreError(
            f"{path} is not a training cache of version {VERSION} "
            f"(found {meta.get('format')} {meta.get('version')}): "
            "re-encode it (stance train encode)"
        )
    tensors = load_file(str(path))
    missing = set(TENSORS) - set(tensors)
    if missing:
        raise stores.StoreError(f"{path} lacks {sorted(missing)}: re-encode it")
    return tensors, meta
