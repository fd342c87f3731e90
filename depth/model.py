"""Depth-Anything-V2 through transformers: loading (hub id or local folder) and the tiny
random-weight model the embedded config uses.

The tiny model is a real `DepthAnythingForDepthEstimation` built from a real (shrunk)
config and saved with `save_pretrained`, beside the hub's preprocessor settings, so it
goes through exactly the `from_pretrained` path the real Small/Base/Large models take.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stance.errors import UserError
from stance.settings import Depth

log = logging.getLogger(__name__)

# Preprocessing of depth-anything/Depth-Anything-V2-{Small,Base,Large}-hf on the hub.
HUB_PREPROCESSOR = dict(
    do_resize=True,
    size={"height": 518, "width": 518},
    resample=3,
    keep_aspect_ratio=True,
    ensure_multiple_of=14,
    do_rescale=True,
    rescale_factor=1 / 255,
    do_normalize=True,
    image_mean=[0.485, 0.456, 0.406],
    image_std=[0.229, 0.224, 0.225],
    do_pad=False,
)


def _config(width, layers, heads, intermediate, out_indices, neck, fusion, head):
    """A Depth-Anything-V2 config: DINOv2 backbone (width, depth, heads, MLP width, the
    1-based layers the DPT head reads) and the head's neck, fusion and output widths."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        out_indices=out_indices,
        reshape_hidden_states=False,
        image_size=518,
        patch_size=14,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=width,
        neck_hidden_sizes=neck,
        fusion_hidden_size=fusion,
        head_hidden_size=head,
        patch_size=14,
        depth_estimation_type="relative",
    )


def tiny_config():
    """Depth-Anything-V2 layout at toy width: 4 DINOv2 layers of 32 channels (164k params)."""
    return _config(32, 4, 2, 64, [1, 2, 3, 4], [8, 16, 32, 32], fusion=16, head=8)


# Depth-Anything-V2 geometries (the authors' MODEL_CONFIGS: DINOv2 width/depth/heads, the
# 1-based backbone layers the DPT head reads, its neck widths and fusion width).
GEOMETRIES = {
    "small": (384, 12, 6, [3, 6, 9, 12], [48, 96, 192, 384], 64),
    "base": (768, 12, 12, [3, 6, 9, 12], [96, 192, 384, 768], 128),
    "large": (1024, 24, 16, [5, 12, 18, 24], [256, 512, 1024, 1024], 256),
}


def geometry_config(name: str):
    """The real config of Depth-Anything-V2-{Small,Base,Large}-hf (random weights when
    built from it): benchmarks at the real size without downloading weights."""
    width, layers, heads, out_indices, neck, fusion = GEOMETRIES[name]
    return _config(width, layers, heads, 4 * width, out_indices, neck, fusion, head=32)


def make_tiny(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny random-weight model and save it like a hub checkpoint."""
    import torch
    from transformers import DepthAnythingForDepthEstimation, DPTImageProcessor

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(tiny_config()).eval()
    model.save_pretrained(out_dir)
    DPTImageProcessor(**HUB_PREPROCESSOR).save_pretrained(out_dir)
    log.info(
        "tiny Depth-Anything-V2 (%d parameters) -> %s",
        sum(p.numel() for p in model.parameters()),
        out_dir,
    )
    return out_dir


def _missing_weights(source: str, cause: Exception) -> UserError:
    return UserError(
        f"Depth-Anything-V2 weights {source!r} are not available here ({type(cause).__name__}). "
        f"Download them where the hub is reachable: `huggingface-cli download {source}` "
        "(into the Hugging Face cache, $HF_HOME), or set models.depth to a local folder "
        "holding config.json, model.safetensors and preprocessor_config.json. For the tiny "
        "test model run `stance models make-tiny depth --out <folder>`."
    )


def load(source: str, allow_download: bool = True):
    """(model, processor) from a local folder, the HF cache, or (if allowed) the hub."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    def _load(**kwargs):
        model = AutoModelForDepthEstimation.from_pretrained(source, **kwargs)
        return model.eval(), AutoImageProcessor.from_pretrained(source, **kwargs)

    if Path(source).exists():
        if not (Path(source) / "config.json").exists():
            raise UserError(f"{source} has no config.json: not a saved Depth-Anything model")
        return _load(local_files_only=True)
    try:
        return _load(local_files_only=True)
    except OSError as cached_miss:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false")
        if not allow_download or offline:
            raise _missing_weights(source, cached_miss) from cached_miss
    try:
        return _load()
    except OSError as exc:
        raise _missing_weights(source, exc) from exc


def resolve_device(device: str, dtype: str) -> tuple[str, str]:
    """'auto' -> CUDA with bf16 when a GPU is present, else CPU float32."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        from stance import precision

        dtype = str(precision.inference_dtype(device)).removeprefix("torch.")
    return device, dtype


def predict(
    model,
    processor,
    frames: np.ndarray,
    input_size: int,
    batch_size: int,
    device: str,
    dtype: str,
) -> np.ndarray:
    """(T,H,W,3) uint8 frames -> (T,H,W) float32 disparity at the frames' own size."""
    import torch

    t, h, w, _ = frames.shape
    out = np.empty((t, h, w), dtype=np.float32)
    autocast = (  # the same mixed-precision path on CUDA and (bf16) on CPU
        torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype))
        if dtype != "float32"
        else nullcontext()
    )
    size = {"height": input_size, "width": input_size}
    for start in range(0, t, batch_size):
        batch = list(frames[start : start + batch_size])
        inputs = processor(images=batch, return_tensors="pt", size=size).to(device)
        with torch.inference_mode(), autocast:
            outputs = model(**inputs)
        outputs.predicted_depth = outputs.predicted_depth.float()
        resized = processor.post_process_depth_estimation(
            outputs, target_sizes=[(h, w)] * len(batch)
        )
        for k, item in enumerate(resized):
            out[start + k] = item["predicted_depth"].cpu().numpy()
    return out


@dataclass
class Estimator:
    """A loaded Depth-Anything-V2 on the depth section's device, in its dtype, at its input
    and batch size: (T,H,W,3) uint8 frames -> (T,H,W) float32 disparity (`predict`)."""

    model: Any
    processor: Any
    device: str
    dtype: str
    input_size: int
    batch_size: int

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return predict(
            self.model,
            self.processor,
            frames,
            self.input_size,
            self.batch_size,
            self.device,
            self.dtype,
        )


def estimator(source: str, settings: Depth, allow_download: bool = True) -> Estimator:
    """models.depth loaded and placed as the `depth` config section says."""
    device, dtype = resolve_device(settings.device, settings.dtype)
    model, processor = load(source, allow_download=allow_download)
    model.to(device)
    return Estimator(model, processor, device, dtype, settings.input_size, settings.batch_size)
