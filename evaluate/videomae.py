"""VideoMAE-v2 features for content-debiased FVD (Ge et al. 2024, package cd-fvd).

The feature network is VideoMAE-v2 ViT-g/14 pretrained on UnlabeledHybrid and fine-tuned
on Something-Something-v2 (`vit_g_hybrid_pt_1200e_ssv2_ft.pth`): 16 frames at 224 px,
input in [0, 1] with no mean/std normalisation, bilinear resize, and the 1408-d feature
is the LayerNorm (`fc_norm`) of the mean over all tokens, before the classifier.

We run it as transformers' VideoMAEForVideoClassification (same blocks: q/v biases,
fixed sinusoidal positions, pre-norm layers); `convert_checkpoint` maps the original
checkpoint's keys onto it, so `models.fvd_videomae` may name the original .pth or a
folder written by `stance models convert-videomae`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stance.errors import UserError
from stance.evaluate import fvd

FRAMES = 16
SIZE = 224
CHECKPOINT = "vit_g_hybrid_pt_1200e_ssv2_ft.pth"
CHECKPOINT_URL = (
    "https://huggingface.co/OpenGVLab/InternVideoMAE_models/resolve/main/mae-g/" + CHECKPOINT
)
# ViT-g/14 as in VideoMAE-v2's `vit_giant_patch14_224` (mlp ratio 48/11 -> 6144).
VIT_G = {
    "hidden_size": 1408,
    "num_hidden_layers": 40,
    "num_attention_heads": 16,
    "intermediate_size": 6144,
    "patch_size": 14,
    "tubelet_size": 2,
    "num_frames": FRAMES,
    "image_size": SIZE,
    "qv_bias": True,  # q and v biases, none on k
    "use_mean_pooling": True,
    "layer_norm_eps": 1e-6,
    "hidden_act": "gelu",
    "num_labels": 174,  # SSv2 classes (the head is not used for features)
}

_LAYER_KEYS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "attn.q_bias": "attention.attention.query.bias",
    "attn.v_bias": "attention.attention.value.bias",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}


def config(**overrides):
    from transformers import VideoMAEConfig

    return VideoMAEConfig(**{**VIT_G, **overrides})


def build(cfg):
    """The feature model for `cfg`, with fc_norm's epsilon as in the original (1e-6;
    transformers builds it with the LayerNorm default)."""
    from transformers import VideoMAEForVideoClassification

    return with_original_eps(VideoMAEForVideoClassification(cfg))


def with_original_eps(model):
    model.fc_norm.eps = model.config.layer_norm_eps
    return model.eval()


def convert_checkpoint(state: Mapping[str, Any]) -> dict[str, Any]:
    """Original VideoMAE-v2 fine-tuning keys -> VideoMAEForVideoClassification keys."""
    for key in ("model", "module"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
    out = {}
    for key, value in state.items():
        if key.startswith("patch_embed.proj."):
            out["videomae.embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            prefix = f"videomae.encoder.layer.{index}."
            if rest == "attn.qkv.weight":
                query, key_, value_ = value.chunk(3, dim=0)
                out[prefix + "attention.attention.query.weight"] = query
                out[prefix + "attention.attention.key.weight"] = key_
                out[prefix + "attention.attention.value.weight"] = value_
                continue
            name, _, leaf = rest.rpartition(".")
            if rest in _LAYER_KEYS:  # q_bias, v_bias: whole key maps to a bias
                out[prefix + _LAYER_KEYS[rest]] = value
            elif name in _LAYER_KEYS:
                out[prefix + _LAYER_KEYS[name] + "." + leaf] = value
            else:
                raise KeyError(f"unexpected VideoMAE-v2 key {key}")
        elif key.startswith("fc_norm."):
            out[key] = value
        elif key.startswith("head."):
            out["classifier." + key.split(".", 1)[1]] = value
        elif key == "pos_embed":
            continue  # fixed sinusoid table, rebuilt by the model
        else:
            raise KeyError(f"unexpected VideoMAE-v2 key {key}")
    return out


def load_model(path: str | Path):
    """The feature model from a converted folder or the original checkpoint file."""
    import torch

    path = Path(path)
    if path.is_dir():
        from transformers import VideoMAEForVideoClassification

        model = VideoMAEForVideoClassification.from_pretrained(path)
        return with_original_eps(model)
    if not path.is_file():
        raise UserError(
            f"content-debiased FVD needs the VideoMAE-v2 ViT-g checkpoint at {path}, which "
            f"does not exist. Download {CHECKPOINT} ({CHECKPOINT_URL}) where the network is "
            "reachable and set models.fvd_videomae to it (or to a folder made from it with "
            "`stance models convert-videomae`), or set models.fvd_videomae: null."
        )
    try:
        state = convert_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
    except KeyError as exc:
        raise UserError(f"{path} is not a VideoMAE-v2 checkpoint: {exc}") from exc
    check_vit_g(state, path)  # before building the 1B-parameter model
    model = build(config())
    model.load_state_dict(state, strict=False)
    return model


def check_vit_g(state: Mapping[str, Any], path: Path) -> None:
    """Refuse other VideoMAE sizes: cd-FVD numbers are only comparable with ViT-g."""
    patch = state.get("videomae.embeddings.patch_embeddings.projection.weight")
    size = (
        VIT_G["hidden_size"],
        3,
        VIT_G["tubelet_size"],
        VIT_G["patch_size"],
        VIT_G["patch_size"],
    )
    layers = {k.split(".")[3] for k in state if k.startswith("videomae.encoder.layer.")}
    if patch is None or tuple(patch.shape) != size or len(layers) != VIT_G["num_hidden_layers"]:
        found = None if patch is None else tuple(patch.shape)
        raise UserError(
            f"{path} is not a VideoMAE-v2 ViT-g checkpoint: patch embedding {found} and "
            f"{len(layers)} layers, expected {size} and {VIT_G['num_hidden_layers']} layers "
            f"(download {CHECKPOINT})"
        )


def preprocess(videos: np.ndarray, size: int = SIZE, frames: int = FRAMES):
    """(N,T,H,W,3) uint8 -> (N,16,3,224,224) float in [0, 1]: the first 16 frames (short
    clips repeat their last frame), bilinear resize, no normalisation."""
    return fvd.clip_frames(videos, frames, size) / 255.0


def features(model, pixel_values, batch: int = 8):
    """fc_norm(mean over tokens) of the encoder's last layer: (N, hidden) float64."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(pixel_values), batch):
            chunk = pixel_values[start : start + batch].to(model.dtype)
            hidden = model.videomae(pixel_values=chunk).last_hidden_state
            out.append(model.fc_norm(hidden.mean(dim=1)).double())
    return torch.cat(out).cpu().numpy()


def load_extractor(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function videos -> VideoMAE-v2 features, for `fvd.fvd_from_features`."""
    model = load_model(path)
    cfg = model.config

    def extract(videos: np.ndarray) -> np.ndarray:
        return features(model, preprocess(videos, cfg.image_size, cfg.num_frames))

    return extract
