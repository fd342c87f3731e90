"""Fréchet Video Distance: Fréchet distance of video features, in float64.

Features come from I3D (Kinetics-400) as the StyleGAN-V TorchScript port of the TF-Hub
model (`i3d_torchscript.pt`), loaded from a local path (no package ships the weights):
uint8 videos are resized bilinearly to 224, scaled to [-1, 1], 16 frames per clip.
FVD is only comparable at equal N and clip length: they are reported with every value,
with a bootstrap confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import linalg

from stance.errors import UserError

I3D_FRAMES = 16
I3D_SIZE = 224


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), float64, real part of sqrtm."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: regularise as common practice
        eps = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1)


def fvd_from_features(real: np.ndarray, generated: np.ndarray) -> float:
    if len(real) < 2 or len(generated) < 2:
        raise ValueError(
            f"FVD needs at least 2 videos per side (got {len(real)} and {len(generated)})"
        )
    return frechet_distance(*statistics(real), *statistics(generated))


def bootstrap(
    real: np.ndarray, generated: np.ndarray, samples: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of FVD over paired resamples of the clips."""
    rng = np.random.default_rng(seed)
    n = len(real)
    values = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if len(np.unique(idx)) < 2:
            continue
        values.append(fvd_from_features(real[idx], generated[idx]))
    low, high = np.percentile(values, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(low), float(high)


def clip_frames(videos: np.ndarray, frames: int, size: int):
    """(N,T,H,W,3) uint8 -> (N,frames,3,size,size) float in [0, 255]: the first `frames`
    frames (short clips repeat their last one), each resized bilinearly. The input side
    shared by the FVD feature networks (I3D here, VideoMAE-v2 in `videomae`)."""
    import torch
    import torch.nn.functional as F

    if videos.shape[1] < frames:
        pad = np.repeat(videos[:, -1:], frames - videos.shape[1], axis=1)
        videos = np.concatenate([videos, pad], axis=1)
    x = torch.from_numpy(np.ascontiguousarray(videos[:, :frames])).float()  # N,T,H,W,C
    n, t = x.shape[:2]
    x = x.permute(0, 1, 4, 2, 3).reshape(n * t, 3, *x.shape[2:4])
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.reshape(n, t, 3, size, size)


def preprocess(videos: np.ndarray):
    """(N,T,H,W,3) uint8 -> (N,3,16,224,224) float in [-1, 1] (I3D's input)."""
    return clip_frames(videos, I3D_FRAMES, I3D_SIZE).permute(0, 2, 1, 3, 4) / 127.5 - 1.0


def load_extractor(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function videos -> features from a TorchScript I3D at `path`."""
    import torch

    path = Path(path)
    if not path.exists():
        raise UserError(
            f"FVD needs the I3D feature network at {path}, which does not exist. Get "
            "i3d_torchscript.pt (the StyleGAN-V port of the TF-Hub Kinetics-400 I3D) where "
            "the network is reachable and set models.fvd to its path, or set models.fvd: null "
            "to leave FVD out of the tables."
        )
    network = torch.jit.load(str(path), map_location="cpu").eval()

    def extract(videos: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return network(preprocess(videos)).double().cpu().numpy().reshape(len(videos), -1)

    return extract
