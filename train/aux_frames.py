"""What the auxiliary stream looks like: depth and segmentation as RGB videos for the VAE.

Depth: inverse depth as grey, min-max normalised by the KEYFRAME's range (later frames are
clipped to it), so the first frame of a training depth video can be rebuilt at inference
from any disparity of the keyframe alone: Depth-Anything-V2's relative disparity is affine
in inverse depth, and min-max normalisation removes the affine map.
Segmentation: instance ids through the fixed palette (label i+1 = instance i, 0 = floor and
background), as in the render store and the cue store's keyframe labels.
"""

from __future__ import annotations

import numpy as np

from stance.errors import UserError
from stance.palette import palette

FAR_M = 1e3  # rendered depth at or beyond this is background at infinity (inverse 0)


def grey(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values -> (..., 3) uint8 grey, low -> 0 and high -> 255, clipped."""
    scaled = (values - low) / max(high - low, 1e-9) * 255.0
    return np.repeat(np.clip(scaled, 0, 255).round()[..., None], 3, axis=-1).astype(np.uint8)


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    return np.where(depth < FAR_M, 1.0 / np.maximum(depth, 1e-6), 0.0)


def depth_video(depth: np.ndarray) -> np.ndarray:
    """Rendered depth (T,H,W) metres -> (T,H,W,3) uint8, normalised by frame 0's range."""
    inverse = inverse_depth(depth)
    return grey(inverse, float(inverse[0].min()), float(inverse[0].max()))


def depth_keyframe(disparity: np.ndarray) -> np.ndarray:
    """Any affine-invariant disparity of the keyframe (H,W) -> (H,W,3) uint8; equals
    `depth_video(depth)[0]` when disparity = a / depth + b with a > 0."""
    return grey(disparity, float(disparity.min()), float(disparity.max()))


def segmentation_video(seg: np.ndarray) -> np.ndarray:
    return palette(seg)


def keyframe(kind: str, labels: np.ndarray, disparity: np.ndarray | None) -> np.ndarray:
    """The auxiliary stream's keyframe at inference, from a cue store's keyframe labels
    (segmentation) or keyframe disparity (depth)."""
    if kind == "seg":
        return segmentation_video(labels)
    if kind == "depth":
        if disparity is None:
            raise UserError(
                "this variant conditions its depth stream on the keyframe's depth, but the "
                "cue store holds none: add `depth: <image>` (grey or 16-bit PNG, brighter = "
                "nearer, or a .npy disparity) to the hint file, or use a variant trained "
                "with train.aux_keyframe: rgb"
            )
        return depth_keyframe(disparity)
    raise ValueError(f"no auxiliary keyframe for aux {kind!r}")
