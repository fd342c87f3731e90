"""FVD numerics and feature plumbing; PSNR, SSIM, trajectory errors."""

import numpy as np
import pytest
import torch
from helpers import TinyVideoNet

from stance.errors import UserError
from stance.evaluate import fvd, quality


def test_frechet_distance_closed_forms():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([3.0, -1.0])
    assert fvd.frechet_distance(mu1, np.eye(2), mu2, np.eye(2)) == pytest.approx(13.0)
    a, b = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    expected = (1 - 3) ** 2 + (2 - 1) ** 2  # sum (sqrt(a) - sqrt(b))^2 for diagonal S
    assert fvd.frechet_distance(mu1, a, mu1, b) == pytest.approx(expected)


def test_fd_of_a_sample_with_itself_is_zero_and_fd_is_symmetric():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)), rng.normal(1.0, 2.0, size=(64, 8))
    assert fvd.fvd_from_features(x, x) == pytest.approx(0.0, abs=1e-6)
    assert fvd.fvd_from_features(x, y) == pytest.approx(fvd.fvd_from_features(y, x), rel=1e-6)
    # independently: Tr sqrt(S1 S2) is the sum of the square roots of S1 S2's eigenvalues
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    diff = x.mean(0) - y.mean(0)
    expected = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * root
    assert fvd.fvd_from_features(x, y) == pytest.approx(expected, rel=1e-9)
    # the interval is the percentiles of FVD over paired resamples of the clips
    rng, values = np.random.default_rng(7), []
    for _ in range(50):
        idx = rng.integers(0, len(x), len(x))
        values.append(fvd.fvd_from_features(x[idx], y[idx]))
    assert fvd.bootstrap(x, y, samples=50, seed=7) == pytest.approx(
        tuple(np.percentile(values, [2.5, 97.5])), rel=1e-12
    )
    with pytest.raises(ValueError, match="at least 2 videos"):
        fvd.fvd_from_features(x[:1], y[:1])


def test_extractor_preprocesses_like_i3d(tmp_path):
    path = tmp_path / "tiny_i3d.pt"
    torch.jit.script(TinyVideoNet()).save(str(path))
    extract = fvd.load_extractor(path)
    videos = np.random.default_rng(0).integers(0, 255, (3, 9, 32, 32, 3), dtype=np.uint8)
    features = extract(videos)
    assert features.shape == (3, 4) and features.dtype == np.float64
    x = fvd.preprocess(videos)
    assert x.shape == (3, 3, 16, 224, 224)
    assert torch.equal(x[:, :, 9], x[:, :, 15])  # short clips repeat their last frame


def test_missing_i3d_weights_name_the_file(tmp_path):
    with pytest.raises(UserError, match=r"i3d_torchscript\.pt"):
        fvd.load_extractor(tmp_path / "i3d_torchscript.pt")


def test_psnr_and_ssim():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    assert quality.psnr(video, video) == float("inf")
    assert quality.ssim(video, video) == pytest.approx(1.0)
    noisy = np.clip(video + rng.normal(0, 20, video.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(video + rng.normal(0, 60, video.shape), 0, 255).astype(np.uint8)
    assert quality.ssim(video, noisy) > quality.ssim(video, noisier)
    assert quality.psnr(video, noisy) > quality.psnr(video, noisier) > 0


def test_tracks_from_a_segmentation_video():
    colours = np.array([[200, 30, 30], [30, 200, 30]], np.uint8)
    video = np.zeros((2, 20, 20, 3), np.uint8)
    video[0, 2:6, 2:6] = colours[0]
    video[1, 4:8, 2:6] = colours[0] + 10  # decoded colours are never exact
    video[:, 10:14, 10:14] = colours[1]
    tracks = quality.instance_tracks_from_colours(video, colours)
    assert np.allclose(tracks[0], [[4, 4], [4, 6]])
    truth = np.array([[[4, 4], [4, 7]], [[12, 12], [12, 12]]], float)
    visible = np.ones((2, 2), bool)
    assert quality.trajectory_error(tracks, truth, visible) == pytest.approx(0.25)
