"""Frame fidelity (PSNR, SSIM) and trajectory errors of generated clips."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of uint8 videos over all frames (dB; inf if equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window sigma 1.5, K1 0.01, K2 0.03) over
    frames and channels of uint8 videos."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    spatial = (0, sigma, sigma, 0)  # filter each frame's rows and columns, per channel

    def blur(z):
        return ndimage.gaussian_filter(z, spatial, truncate=3.5)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(index.mean())


def centroids(masks: np.ndarray) -> np.ndarray:
    """(T,H,W) bool -> (T,2) (x, y) centroids, NaN for empty frames."""
    out = np.full((len(masks), 2), np.nan)
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            out[t] = xs.mean() + 0.5, ys.mean() + 0.5
    return out


def centroid_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between per-frame centroids where both exist (NaN if never)."""
    both = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    return float(np.linalg.norm(a[both] - b[both], axis=-1).mean()) if both.any() else np.nan


def instance_tracks_from_colours(
    video: np.ndarray, colours: np.ndarray, max_distance: float = 60.0
) -> np.ndarray:
    """Instance centroids (N,T,2) from a generated segmentation video: each pixel takes
    the nearest instance colour (background black is instance 0, not tracked)."""
    palette = np.concatenate([[[0, 0, 0]], colours]).astype(np.float64)
    dist = np.linalg.norm(video[..., None, :].astype(np.float64) - palette, axis=-1)
    labels = dist.argmin(-1)
    labels[dist.min(-1) > max_distance] = 0
    return np.stack([centroids(labels == i + 1) for i in range(len(colours))])


def trajectory_error(tracked: np.ndarray, truth: np.ndarray, visible: np.ndarray) -> float:
    """Mean pixel distance of tracked vs ground-truth centres over visible instance-frames."""
    keep = visible & np.isfinite(tracked).all(-1)
    return (
        float(np.linalg.norm(tracked[keep] - truth[keep], axis=-1).mean()) if keep.any() else np.nan
    )
