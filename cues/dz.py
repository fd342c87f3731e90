"""dz: the per-instance depth change, the third (2.5D) channel of an Instance Cue.

Methods (config `cues.dz.method`):
- `aligned_median` (default): per frame, fit scale + shift of the predicted disparity to a
  reference disparity on static background pixels (outside every dilated instance mask),
  invert to depth, take the median over each frame's OWN eroded instance mask, and
  difference frames 0 and k. The fit removes Depth-Anything's per-frame flicker; own
  masks stop sideways motion from pulling background into the statistic.
- `literal`: the paper's formula read literally: mean over the frame-0 mask of the raw
  predicted disparity change. Kept for comparison: it is uncorrelated with true dz.

Units (`cues.dz.units`): `relative` (the default) = the depth change per frame as a
fraction of the instance's depth in the first reference frame, (z_k - z_0) / (k z_0):
scale-free, so a rendered clip (depth aligned to the true depth) and a real video (depth
known only up to scale, aligned to its first frame) give dz on the same scale, and a
model trained on one reads the other as it was trained. `absolute` = metres per frame
when aligned to ground truth (Kubric), else the predicted disparity's own arbitrary
units: usable only where every clip has metric depth. Positive dz = moving away from the
camera. The `literal` method is always in raw disparity units.
"""

from __future__ import annotations

import numpy as np

from stance.cues import kernel
from stance.settings import Dz

SKY_DEPTH = 1e3  # rendered depth beyond this is sky (Kubric writes 1e10 there)
MIN_FIT_PIXELS = 16


def fit_scale_shift(
    disparity: np.ndarray, reference: np.ndarray, mask: np.ndarray
) -> tuple[float, float]:
    """Least-squares s, b with s * disparity + b ~ reference over `mask` (identity if too few)."""
    x, y = disparity[mask].astype(np.float64), reference[mask].astype(np.float64)
    if x.size < MIN_FIT_PIXELS or np.ptp(x) == 0:
        return 1.0, 0.0
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def aligned_depth(
    disparity: np.ndarray, reference: np.ndarray, seg: np.ndarray, valid: np.ndarray, dilate_px: int
) -> np.ndarray:
    """Depth from one frame's predicted disparity after the background scale/shift fit."""
    background = valid & ~kernel.dilate_foreground(seg, dilate_px)
    scale, shift = fit_scale_shift(disparity, reference, background)
    aligned = scale * disparity + shift
    return 1.0 / np.maximum(aligned, 1e-6)


def instance_depths(depth: np.ndarray, seg: np.ndarray, num_ids: int, erode_px: int) -> np.ndarray:
    return kernel.instance_medians(seg, depth.astype(np.float64), num_ids, erode_px)


def estimate(
    disparity: np.ndarray,
    seg: np.ndarray,
    num_ids: int,
    steps: int,
    params: Dz,
    gt_depth: np.ndarray | None = None,
) -> np.ndarray:
    """dz per label (num_ids,), label 0 = background, in units per frame.

    disparity, seg (and gt_depth) hold the two reference frames (2,H,W): the first and
    the last, `steps` frames apart.
    """
    if params.method == "literal":
        change = (disparity[1] - disparity[0]) / steps
        sums = np.bincount(seg[0].ravel(), weights=change.ravel(), minlength=num_ids)
        counts = np.bincount(seg[0].ravel(), minlength=num_ids)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts
    depths = []
    for t in (0, 1):
        if params.align_to == "ground_truth":
            if gt_depth is None:
                raise ValueError("cues.dz.align_to=ground_truth needs rendered depth")
            valid = gt_depth[t] < SKY_DEPTH
            reference = np.where(valid, 1.0 / np.maximum(gt_depth[t], 1e-6), 0.0)
        else:  # first_frame: the first frame defines the (relative) depth scale; its
            # objects are no background either (the fit pairs the same pixel in both frames)
            valid = ~kernel.dilate_foreground(seg[0], params.dilate_px)
            reference = disparity[0]
        depth = aligned_depth(disparity[t], reference, seg[t], valid, params.dilate_px)
        depths.append(instance_depths(depth, seg[t], num_ids, params.erode_px))
    return depth_change(depths[0], depths[1], steps, params.units)


def depth_change(z0: np.ndarray, z1: np.ndarray, steps: int, units: str) -> np.ndarray:
    """Per-frame depth change in `units`: metres (absolute) or a fraction of z0 (relative)."""
    per_frame = (z1 - z0) / steps
    if units == "absolute":
        return per_frame
    with np.errstate(invalid="ignore", divide="ignore"):
        return per_frame / z0


def ground_truth(
    gt_depth: np.ndarray,
    seg: np.ndarray,
    num_ids: int,
    steps: int,
    erode_px: int,
    units: str,
) -> np.ndarray:
    """The same statistic on rendered depth pairs, in `units`: what `estimate` aims at."""
    z0 = instance_depths(gt_depth[0], seg[0], num_ids, erode_px)
    z1 = instance_depths(gt_depth[1], seg[1], num_ids, erode_px)
    return depth_change(z0, z1, steps, units)


def agreement(estimated: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pearson correlation and sign accuracy over instances where both are finite."""
    keep = np.isfinite(estimated) & np.isfinite(truth)
    est, gt = estimated[keep], truth[keep]
    corr = float(np.corrcoef(est, gt)[0, 1]) if len(est) > 2 and est.std() and gt.std() else np.nan
    moving = np.abs(gt) > 1e-4
    sign = float((np.sign(est[moving]) == np.sign(gt[moving])).mean()) if moving.any() else np.nan
    return {"instances": int(keep.sum()), "correlation": corr, "sign_accuracy": sign}
