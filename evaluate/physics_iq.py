"""Physics-IQ (Motamed et al. 2025) on arrays, following the reference benchmark's code.

Per scenario the reference compares take 1 of a real experiment with the generated video
and, for the physical variance (PV), with take 2. Here a scenario is a rendered test clip:
take 1 = the clip, take 2 = its physical-variance twin (perturbed re-simulation) or the
clip itself (`deterministic` PV). One view per scenario.

Motion masks (`motion_masks`): grey, 5x5 Gaussian blur, running average updated with
weight 0.3 BEFORE differencing, |grey - avg| > 10, morphological open then close (5x5),
frame 0 empty. Per-view metrics (`view_metrics`): spatiotemporal IoU per frame (1 when
the union is empty; frames paired like zip), spatial IoU of the "ever moved" masks,
weighted spatial IoU of the per-pixel motion frequency, MSE per frame on [0, 1] frames.
Aggregation (`aggregate`) and score as `calculate_iq_score.py`: per-frame values rounded
to 4 decimals; PVs pooled over all frames/scenarios and rounded (PV_S to 5 decimals);
score = clip(100 * [(ST/PV_ST + S/PV_S + WS/PV_WS) / 3 - (MSE - PV_MSE)], 0, 100), 2 dp.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

KERNEL = np.ones((5, 5), np.uint8)


def motion_masks(frames: np.ndarray, threshold: int = 10) -> np.ndarray:
    """(T,H,W,3) uint8 RGB -> (T,H,W) bool motion masks, as the reference computes them."""
    masks = np.zeros(frames.shape[:3], dtype=bool)
    average = None
    for t, frame in enumerate(frames):
        grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        if average is None:
            average = grey.astype(np.float64)
            continue  # frame 0's mask is empty
        cv2.accumulateWeighted(grey, average, 0.3)
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(average))
        _, binary = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, KERNEL)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, KERNEL)
        masks[t] = binary > 0
    return masks


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T,H,W[,C]) -> (T,h,w[,C]) bilinear; size = (width, height) as OpenCV takes it."""
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])


def lossy_mask_roundtrip(masks: np.ndarray, size: tuple[int, int], fps: int = 8) -> np.ndarray:
    """The reference's quirk: masks saved as an mp4v video, read back, resized bilinearly
    and re-binarised at > 127."""
    t, h, w = masks.shape
    w2, h2 = w - w % 2, h - h % 2
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "masks.mp4")
        writer = cv2.VideoWriter(
            path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w2, h2), isColor=False
        )
        for mask in masks:
            writer.write((mask[:h2, :w2] * 255).astype(np.uint8))
        writer.release()
        capture = cv2.VideoCapture(path)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        capture.release()
    if len(frames) != t:
        raise RuntimeError(f"mask video round trip returned {len(frames)} of {t} frames")
    return resize_frames(np.stack(frames), size) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def spatiotemporal_iou(m1: np.ndarray, m2: np.ndarray) -> list[float]:
    return [_iou(a, b) for a, b in zip(m1, m2, strict=False)]


def spatial_iou(m1: np.ndarray, m2: np.ndarray) -> float:
    return _iou(m1.any(axis=0), m2.any(axis=0))


def weighted_spatial_iou(m1: np.ndarray, m2: np.ndarray) -> float:
    w1, w2 = m1.mean(axis=0), m2.mean(axis=0)
    denominator = np.maximum(w1, w2).sum()
    return 1.0 if denominator == 0 else float(np.minimum(w1, w2).sum() / denominator)


def frame_mse(f1: np.ndarray, f2: np.ndarray) -> list[float]:
    """Per frame, mean squared difference of [0, 1] frames over pixels and channels."""
    a, b = f1.astype(np.float64) / 255.0, f2.astype(np.float64) / 255.0
    return [float(((x - y) ** 2).mean()) for x, y in zip(a, b, strict=False)]


@dataclass
class ViewMetrics:
    st: list[float]
    s: float
    ws: float
    mse: list[float]


@dataclass
class Options:
    threshold: int = 10
    scale: float = 1.0  # evaluation size relative to the clip (the reference uses 1/4 of 4K)
    lossy_masks: bool = False
    fps: int = 8


@dataclass
class Prepared:
    frames: np.ndarray  # resized RGB
    masks: np.ndarray = field(repr=False)


def prepare(frames: np.ndarray, options: Options) -> Prepared:
    """Masks at full size (as the reference computes them), then both at evaluation size."""
    masks = motion_masks(frames, options.threshold)
    h, w = frames.shape[1:3]
    size = (max(1, round(w * options.scale)), max(1, round(h * options.scale)))
    if options.lossy_masks:
        masks = lossy_mask_roundtrip(masks, size, options.fps)
    elif size != (w, h):
        masks = resize_frames(masks.astype(np.uint8) * 255, size) > 127
    small = frames if size == (w, h) else resize_frames(frames, size)
    return Prepared(small, masks)


def view_metrics(real: Prepared, other: Prepared) -> ViewMetrics:
    return ViewMetrics(
        st=[round(v, 4) for v in spatiotemporal_iou(real.masks, other.masks)],
        s=spatial_iou(real.masks, other.masks),
        ws=weighted_spatial_iou(real.masks, other.masks),
        mse=[round(v, 4) for v in frame_mse(real.frames, other.frames)],
    )


@dataclass
class Scores:
    st: float
    s: float
    ws: float
    mse: float
    pv_st: float
    pv_s: float
    pv_ws: float
    pv_mse: float
    score: float
    per_sample: float  # mean of per-clip scores, each clip normalised by its own twin


def _score(st, s, ws, mse, pv_st, pv_s, pv_ws, pv_mse) -> float:
    ratios = (st / pv_st + s / pv_s + ws / pv_ws) / 3
    return round(max(min(100.0 * (ratios - (mse - pv_mse)), 100.0), 0.0), 2)


def aggregate(generated: Sequence[ViewMetrics], variance: Sequence[ViewMetrics]) -> Scores:
    """Dataset score from per-clip metrics vs take 1 (`generated`) and take 2 vs take 1."""
    if not generated or len(generated) != len(variance):
        raise ValueError("need one physical-variance record per generated clip")
    st = float(np.mean([np.mean(v.st) for v in generated]))
    mse = float(np.mean([np.mean(v.mse) for v in generated]))
    s = float(np.mean([v.s for v in generated]))
    ws = float(np.mean([v.ws for v in generated]))
    pv_st = round(float(np.mean([x for v in variance for x in v.st])), 4)
    pv_mse = round(float(np.mean([x for v in variance for x in v.mse])), 4)
    pv_s = round(float(np.mean([v.s for v in variance])), 5)
    pv_ws = round(float(np.mean([v.ws for v in variance])), 4)
    pvs = (pv_st, pv_s, pv_ws, pv_mse)
    if min(pvs[:3]) <= 0:
        raise ValueError(
            f"physical variance IoUs {pvs[:3]} must be positive: the twins never "
            "move like their clips (check render.twins or use deterministic PV)"
        )
    per_sample = float(
        np.mean([_sample_score(g, v, pvs) for g, v in zip(generated, variance, strict=True)])
    )
    return Scores(st, s, ws, mse, *pvs, _score(st, s, ws, mse, *pvs), per_sample)


def _sample_score(generated: ViewMetrics, variance: ViewMetrics, dataset_pvs) -> float:
    """One clip against its own twin, every metric weighted equally; where the twin's IoU
    is 0 (no overlap at all) the dataset-level PV stands in."""
    own = (float(np.mean(variance.st)), variance.s, variance.ws, float(np.mean(variance.mse)))
    pvs = [
        o if o > 0 or k == 3 else d for k, (o, d) in enumerate(zip(own, dataset_pvs, strict=True))
    ]
    return _score(
        float(np.mean(generated.st)), generated.s, generated.ws, float(np.mean(generated.mse)), *pvs
    )
