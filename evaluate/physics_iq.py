"""Physics-IQ (Motamed et al. 2025) on arrays, following the reference benchmark's code
(google-deepmind/physics-IQ-benchmark, code/), checked against numbers it produced
(tests/test_physics_iq.py::test_parity_with_the_reference_code).

Per scenario and view the reference compares take 1 of a real experiment with the
generated video and, for the physical variance (PV), with take 2. Here a scenario is a
rendered test clip (one view): take 1 = the clip, take 2 = its physical-variance twin
(perturbed re-simulation) or the clip itself (`deterministic` PV).

Reference settings (the defaults, `Options.reference`):
- frames: the first fps x 5 of each video (`first_frames`; a Kubric clip shorter than 5 s
  is scored whole); a generated video or take 2 shorter than take 1's selection is an
  error (the reference raises in its MSE), a longer one is cut;
- size: every video of a view is scored at a quarter of take 1's size, `w // 4, h // 4`
  (`evaluation_size`);
- masks (`motion_masks`): at each video's OWN size: grey, 5x5 Gaussian blur, running
  average updated with weight 0.3 BEFORE differencing, |grey - avg| > 10, morphological
  open then close (5x5), frame 0 empty; written as an mp4v video at the video's own fps
  (even-cropped), read back, resized bilinearly to the evaluation size and re-binarised
  at > 127 (`lossy_mask_roundtrip`). The old reference reads the mask video's 3 BGR
  channels, which a grey video decodes nearly equal; its IoU over them equals the IoU
  over channel 0 on the parity set (tested), the channel the newer reference uses;
- per-view metrics (`view_metrics`): spatiotemporal IoU per frame (1 when the union is
  empty; frames paired like zip), spatial IoU of the "ever moved" masks, weighted
  spatial IoU of the per-pixel motion frequency, MSE per frame of [0, 1] frames in
  float32;
- aggregation (`aggregate`) and score as `calculate_iq_score.py`: per-frame values
  rounded to 4 decimals; ST and MSE averaged per scenario over the frames of all its
  views, then over scenarios; S and WS averaged per view over scenarios, then over views;
  PVs per view (ST, MSE pooled over frames), then over views, rounded (PV_S to 5
  decimals); score = clip(100 * [(ST/PV_ST + S/PV_S + WS/PV_WS) / 3 - (MSE - PV_MSE)],
  0, 100), 2 dp.
Other settings (`scale` a number, `lossy_masks: false`) are labelled in the tables.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from stance.errors import UserError
from stance.motion_masks import motion_masks
from stance.physics_iq_folder import opencv_frames
from stance.settings import Evaluate


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T,H,W[,C]) -> (T,h,w[,C]) bilinear; size = (width, height) as OpenCV takes it."""
    if frames.shape[2:0:-1] == size:
        return frames
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])


def lossy_mask_roundtrip(masks: np.ndarray, size: tuple[int, int], fps: int) -> np.ndarray:
    """The reference's mask files: an mp4v video at the masks' own (even-cropped) size and
    the video's fps, read back as BGR, resized bilinearly and re-binarised at > 127 on
    channel 0 (B), as the reference thresholds them (the decoded channels of a grey video
    can differ by 1, so the channel matters near the threshold)."""
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
        frames = [frame[..., 0] for frame in opencv_frames(path)]  # BGR: B, as the reference
    if len(frames) != t:
        raise RuntimeError(f"mask video round trip returned {len(frames)} of {t} frames")
    return resize_frames(np.stack(frames), size) > 127


def _frame_axes(masks: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, masks.ndim))


def spatiotemporal_iou(m1: np.ndarray, m2: np.ndarray) -> list[float]:
    """IoU per frame (frames paired like zip; 1 where both are empty)."""
    n = min(len(m1), len(m2))
    a, b = m1[:n].astype(bool), m2[:n].astype(bool)
    union = np.logical_or(a, b).sum(axis=_frame_axes(a))
    inter = np.logical_and(a, b).sum(axis=_frame_axes(a))
    return [1.0 if u == 0 else float(i / u) for i, u in zip(inter, union, strict=True)]


def spatial_iou(m1: np.ndarray, m2: np.ndarray) -> float:
    return spatiotemporal_iou(m1.any(axis=0)[None], m2.any(axis=0)[None])[0]


def weighted_spatial_iou(m1: np.ndarray, m2: np.ndarray) -> float:
    w1, w2 = m1.mean(axis=0), m2.mean(axis=0)
    denominator = np.maximum(w1, w2).sum()
    return 1.0 if denominator == 0 else float(np.minimum(w1, w2).sum() / denominator)


def frame_mse(f1: np.ndarray, f2: np.ndarray) -> list[float]:
    """Per frame, mean squared difference of [0, 1] frames (the reference's float32; a
    row-wise mean over the contiguous frame sums in the same order as its per-frame one)."""
    n = min(len(f1), len(f2))
    a = (f1[:n] / 255.0).astype(np.float32)
    b = (f2[:n] / 255.0).astype(np.float32)
    return [float(v) for v in ((a - b) ** 2).reshape(n, -1).mean(axis=1)]


@dataclass
class ViewMetrics:
    st: list[float]
    s: float
    ws: float
    mse: list[float]

    def columns(self, variance: ViewMetrics) -> dict[str, Any]:
        """Table columns of a view: these metrics (st, s, ws, mse) and the physical
        variance's (take 2 or twin against take 1) as pv_st, pv_s, pv_ws, pv_mse."""
        pv = {f"pv_{key}": value for key, value in vars(variance).items()}
        return {**vars(self), **pv}


class PhysicsIQError(UserError, ValueError):
    """A video cannot be scored (no frames, fewer frames than the real clip)."""


@dataclass
class Options:
    threshold: int = 10
    scale: float | str = "reference"  # "reference": w // 4, h // 4 of take 1; or a factor
    lossy_masks: bool = True  # the reference's mp4v mask files
    seconds: int = 5  # the reference scores the first fps x 5 frames

    @classmethod
    def from_settings(cls, settings: Evaluate) -> Options:
        """From the `evaluate` config section."""
        return cls(settings.threshold, settings.scale, settings.lossy_masks)

    @property
    def reference(self) -> bool:
        return (
            self.scale == "reference"
            and self.lossy_masks
            and self.threshold == 10
            and self.seconds == 5
        )


def evaluation_size(width: int, height: int, scale: float | str) -> tuple[int, int]:
    """(width, height) every video of a view is scored at, from take 1's size."""
    if scale == "reference":
        return max(1, width // 4), max(1, height // 4)
    return max(1, round(width * scale)), max(1, round(height * scale))


def first_frames(frames: np.ndarray, count: int, name: str) -> np.ndarray:
    """The first `count` frames; fewer is an error naming the video (the reference raises
    on unequal lengths rather than scoring fewer frames)."""
    if len(frames) == 0:
        raise PhysicsIQError(f"{name} has no frames: regenerate it")
    if len(frames) < count:
        raise PhysicsIQError(
            f"{name} has {len(frames)} frames; Physics-IQ compares the first {count} "
            "(fps x 5 s, or the whole real clip when it is shorter): make it at least "
            f"{count} frames long"
        )
    return frames[:count]


@dataclass
class Prepared:
    frames: np.ndarray  # RGB at the evaluation size
    masks: np.ndarray = field(repr=False)  # bool, at the evaluation size


def prepare(frames: np.ndarray, size: tuple[int, int], fps: int, options: Options) -> Prepared:
    """Masks at the video's own size (as the reference computes them), then frames and
    masks at the evaluation size `size`."""
    masks = motion_masks(frames, options.threshold)
    if options.lossy_masks:
        masks = lossy_mask_roundtrip(masks, size, fps)
    else:
        masks = resize_frames(masks.astype(np.uint8) * 255, size) > 127
    return Prepared(resize_frames(frames, size), masks)


def prepare_shipped(frames: np.ndarray, masks: np.ndarray, size: tuple[int, int]) -> Prepared:
    """A real take with its shipped motion-mask video (the download's video-masks/real):
    `masks` (T,H,W) is channel 0 of the decoded BGR frames (`read_mask_video`), resized
    bilinearly to the evaluation size and binarised at > 127, as the reference reads mask
    files (it resizes the 3 channels, then takes channel 0: the same pixels)."""
    if len(masks) < len(frames):
        raise PhysicsIQError(
            f"the shipped mask video has {len(masks)} frames for a take of {len(frames)}: "
            "download the masks again, or remove video-masks/real to have them computed"
        )
    return Prepared(resize_frames(frames, size), resize_frames(masks[: len(frames)], size) > 127)


@dataclass
class View:
    """One view of a scenario, prepared: take 1 (the real video) and its selection."""

    real: Prepared
    frames: int  # how many frames every video of the view is scored on
    size: tuple[int, int]


def real_view(take1: np.ndarray, fps: int, options: Options, name: str = "the real clip") -> View:
    take1 = first_frames(take1, min(len(take1), fps * options.seconds), name)
    size = evaluation_size(take1.shape[2], take1.shape[1], options.scale)
    return View(prepare(take1, size, fps, options), len(take1), size)


def compare(view: View, frames: np.ndarray, fps: int, options: Options, name: str):
    """(ViewMetrics against take 1, the prepared video) of another video of the view
    (take 2 or a generated video, at its own size and fps)."""
    ours = prepare(first_frames(frames, view.frames, name), view.size, fps, options)
    return view_metrics(view.real, ours), ours


@dataclass
class ScoredView:
    real: Prepared  # take 1
    metrics: dict[str, ViewMetrics]  # each other video against take 1
    prepared: dict[str, Prepared]


def score_view(
    take1: np.ndarray,
    others: Mapping[str, np.ndarray],
    fps: int,
    options: Options,
    names: Mapping[str, str] | None = None,
    pool: Executor | None = None,
    shipped_masks: Mapping[str, np.ndarray] | None = None,
) -> ScoredView:
    """Take 1 and the view's other videos (take 2, generated; same fps) prepared in
    parallel threads (OpenCV releases the GIL), then each compared with take 1: the
    numbers of `real_view` + `compare`. `names` label videos in errors; `shipped_masks`
    ("take1", "take2": decoded mask videos) replace the masks computed from those takes."""
    names, shipped = names or {}, shipped_masks or {}
    take1 = first_frames(
        take1, min(len(take1), fps * options.seconds), names.get("take1", "take 1")
    )
    size = evaluation_size(take1.shape[2], take1.shape[1], options.scale)
    videos = {"take1": take1} | {
        key: first_frames(frames, len(take1), names.get(key, key)) for key, frames in others.items()
    }

    def work(key):
        if key in shipped:
            return prepare_shipped(videos[key], shipped[key], size)
        return prepare(videos[key], size, fps, options)

    own = (
        ThreadPoolExecutor(min(len(videos), len(os.sched_getaffinity(0)))) if pool is None else None
    )
    with own or contextlib.nullcontext(pool) as executor:
        prepared = dict(zip(videos, executor.map(work, videos), strict=True))
    real = prepared.pop("take1")
    metrics = {key: view_metrics(real, ours) for key, ours in prepared.items()}
    return ScoredView(real, metrics, prepared)


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


def score_from_means(st, s, ws, mse, pv_st, pv_s, pv_ws, pv_mse) -> float:
    """calculate_iq_score.py's formula; as there (numpy), x/0 = inf (clipped to 100) and
    0/0 = nan."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (np.float64(st) / pv_st + np.float64(s) / pv_s + np.float64(ws) / pv_ws) / 3
        value = float(np.clip(100.0 * (ratios - (mse - pv_mse)), 0.0, 100.0))
    return round(value, 2)


def aggregate(
    generated: Sequence[ViewMetrics],
    variance: Sequence[ViewMetrics],
    scenarios: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
    refuse_degenerate: bool = True,
) -> Scores:
    """Dataset score from per-view metrics vs take 1 (`generated`) and take 2 vs take 1,
    with `scenarios[i]`/`views[i]` naming record i (default: one view per scenario). A
    physical-variance IoU of 0 is refused (`refuse_degenerate`: rendered twins that never
    move like their clips) or, as the reference, makes its ratio infinite (score 100)."""
    if not generated or len(generated) != len(variance):
        raise ValueError("need one physical-variance record per generated clip")
    n = len(generated)
    by_scenario = group_indices(scenarios if scenarios is not None else range(n))
    by_view = group_indices(views if views is not None else ["view"] * n)
    # as calculate_iq_score.py: ST/MSE pool the frames of a scenario's views, then average
    # scenarios; S/WS average a view's scenarios, then views; PVs likewise per view
    st = _mean_of_groups([v.st for v in generated], by_scenario)
    mse = _mean_of_groups([v.mse for v in generated], by_scenario)
    s = _mean_of_groups([[v.s] for v in generated], by_view)
    ws = _mean_of_groups([[v.ws] for v in generated], by_view)
    pv_st = round(_mean_of_groups([v.st for v in variance], by_view), 4)
    pv_mse = round(_mean_of_groups([v.mse for v in variance], by_view), 4)
    pv_s = round(_mean_of_groups([[v.s] for v in variance], by_view), 5)
    pv_ws = round(_mean_of_groups([[v.ws] for v in variance], by_view), 4)
    pvs = (pv_st, pv_s, pv_ws, pv_mse)
    if refuse_degenerate and min(pvs[:3]) <= 0:
        raise ValueError(
            f"physical variance IoUs {pvs[:3]} must be positive: the twins never "
            "move like their clips (check render.twins or use deterministic PV)"
        )
    per_sample = float(
        np.mean([_sample_score(g, v, pvs) for g, v in zip(generated, variance, strict=True)])
    )
    return Scores(st, s, ws, mse, *pvs, score_from_means(st, s, ws, mse, *pvs), per_sample)


def group_indices(names: Sequence) -> list[list[int]]:
    """Record indices grouped by name, in order of first appearance."""
    groups: dict = {}
    for k, name in enumerate(names):
        groups.setdefault(name, []).append(k)
    return list(groups.values())


def _mean_of_groups(values: Sequence[Sequence[float]], groups: list[list[int]]) -> float:
    """Mean over groups of the mean of all values of the group's records."""
    return float(np.mean([np.mean([x for k in ks for x in values[k]]) for ks in groups]))


def _sample_score(generated: ViewMetrics, variance: ViewMetrics, dataset_pvs) -> float:
    """One clip against its own twin, every metric weighted equally; where the twin's IoU
    is 0 (no overlap at all) the dataset-level PV stands in."""
    own = (float(np.mean(variance.st)), variance.s, variance.ws, float(np.mean(variance.mse)))
    pvs = [
        o if o > 0 or k == 3 else d for k, (o, d) in enumerate(zip(own, dataset_pvs, strict=True))
    ]
    return score_from_means(
        float(np.mean(generated.st)), generated.s, generated.ws, float(np.mean(generated.mse)), *pvs
    )
