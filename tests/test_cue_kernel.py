"""Cue kernels and dz estimators against direct numpy computations."""

import dataclasses

import numpy as np
import pytest

from stance.cues import dz, kernel
from stance.settings import Dz


def _scene(rng, t=4, h=24, w=24, n=3):
    seg = np.zeros((t, h, w), np.uint16)
    for i in range(n):
        y, x = rng.integers(2, h - 8), rng.integers(2, w - 8)
        seg[:, y : y + 5, x : x + 5] = i + 1
    flow = rng.normal(size=(t, h, w, 2)).astype(np.float32)
    return seg, flow


def test_flow_means_equal_boolean_mask_means():
    rng = np.random.default_rng(0)
    seg, flow = _scene(rng)
    means, counts = kernel.mean_flow(seg, flow, 4)
    for t in range(len(seg)):
        for label in range(4):
            mask = seg[t] == label
            assert counts[t, label] == mask.sum()
            if mask.any():
                assert np.allclose(means[t, label], flow[t][mask].mean(axis=0), atol=1e-5)


def test_labels_beyond_the_table_are_refused():
    seg = np.full((1, 2, 2), 5, np.uint16)
    with pytest.raises(ValueError, match="label 5"):
        kernel.mean_flow(seg, np.zeros((1, 2, 2, 2), np.float32), 3)


def test_grouped_median_matches_numpy():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 500)
    values = rng.normal(size=500)
    medians = kernel.grouped_median(labels, values, 6)
    for label in range(5):
        assert medians[label] == pytest.approx(np.median(values[labels == label]))
    assert np.isnan(medians[5])


def test_erosion_shrinks_and_falls_back_for_tiny_instances():
    seg = np.zeros((9, 9), np.uint16)
    seg[2:7, 2:7] = 1
    seg[0, 8] = 2  # a single pixel: erosion empties it
    eroded = kernel.erode_labels(seg, 1)
    assert (eroded == 1).sum() == 9 and (eroded == 2).sum() == 0
    values = np.arange(81, dtype=np.float64).reshape(9, 9)
    medians = kernel.instance_medians(seg, values, 3, erode_px=1)
    assert medians[1] == np.median(values[3:6, 3:6])
    assert medians[2] == values[0, 8]  # fell back to the full mask


def test_scale_shift_fit_recovers_an_affine_flicker():
    rng = np.random.default_rng(2)
    truth = rng.uniform(0.1, 1.0, (16, 16))
    predicted = (truth - 0.05) / 1.3
    scale, shift = dz.fit_scale_shift(predicted, truth, np.ones_like(truth, bool))
    assert scale == pytest.approx(1.3) and shift == pytest.approx(0.05)
    assert dz.fit_scale_shift(predicted, truth, np.zeros_like(truth, bool)) == (1.0, 0.0)


def _receding_square(steps=3, size=32):
    """One square moving right and away from the camera over a tilted floor."""
    seg = np.zeros((steps + 1, size, size), np.uint16)
    depth = np.tile(np.linspace(4.0, 8.0, size)[:, None], (steps + 1, 1, size)).astype(np.float32)
    for t in range(steps + 1):
        seg[t, 10:18, 4 + 3 * t : 12 + 3 * t] = 1
        depth[t][seg[t] == 1] = 3.0 + 0.2 * t
    return seg, depth


def test_aligned_median_is_exact_under_flicker_and_literal_is_not():
    seg, depth = _receding_square()
    rng = np.random.default_rng(3)
    disparity = 1.0 / depth * rng.uniform(0.8, 1.2, (4, 1, 1)) + rng.uniform(-0.05, 0.05, (4, 1, 1))
    params = Dz(
        method="aligned_median", align_to="ground_truth", erode_px=1, dilate_px=2, units="absolute"
    )
    pair = [0, 3]
    disparity, seg, depth = disparity[pair], seg[pair], depth[pair]
    estimated = dz.estimate(disparity, seg, 2, 3, params, depth)
    assert estimated[1] == pytest.approx(0.2, rel=1e-3)
    assert dz.ground_truth(depth, seg, 2, 3, 1, "absolute")[1] == pytest.approx(0.2, rel=1e-4)
    literal = dz.estimate(disparity, seg, 2, 3, dataclasses.replace(params, method="literal"))
    assert abs(literal[1] - 0.2) > 0.05
    relative = dz.estimate(
        disparity, seg, 2, 3, dataclasses.replace(params, align_to="first_frame")
    )
    assert np.sign(relative[1]) == 1.0


def test_relative_dz_agrees_between_rendered_depth_and_a_video_without_it():
    """The same receding square through the render path (disparity aligned to the true
    depth) and the benchmark path (first-frame alignment of a disparity known only up to
    an arbitrary scale, here 7x): relative dz agrees; absolute dz differs by that scale."""
    seg, depth = _receding_square()
    pair = [0, 3]
    seg, depth = seg[pair], depth[pair]
    disparity = 7.0 / depth  # a relative depth model: right up to its scale
    rendered = Dz(
        method="aligned_median", align_to="ground_truth", erode_px=1, dilate_px=2, units="relative"
    )
    video = dataclasses.replace(rendered, align_to="first_frame")
    from_render = dz.estimate(disparity, seg, 2, 3, rendered, depth)[1]
    from_video = dz.estimate(disparity, seg, 2, 3, video)[1]
    assert from_render == pytest.approx(0.6 / 3 / 3.0, rel=1e-3)  # 0.2 m/frame at 3 m
    assert from_video == pytest.approx(from_render, rel=1e-3)
    truth = dz.ground_truth(depth, seg, 2, 3, 1, units="relative")[1]
    assert truth == pytest.approx(from_render, rel=1e-4)
    absolute = [dataclasses.replace(p, units="absolute") for p in (rendered, video)]
    metres, arbitrary = (dz.estimate(disparity, seg, 2, 3, p, depth)[1] for p in absolute)
    assert metres == pytest.approx(0.2, rel=1e-3) and arbitrary == pytest.approx(0.2 / 7, rel=1e-3)


def test_ground_truth_alignment_needs_rendered_depth():
    seg, depth = _receding_square()
    params = Dz(
        method="aligned_median", align_to="ground_truth", erode_px=1, dilate_px=2, units="absolute"
    )
    with pytest.raises(ValueError, match="needs rendered depth"):
        dz.estimate(1.0 / depth[[0, 3]], seg[[0, 3]], 2, 3, params)


def test_agreement_scores():
    truth = np.array([0.1, -0.2, 0.3, np.nan, -0.1])
    scores = dz.agreement(truth * 2, truth)
    assert scores == {"instances": 4, "correlation": pytest.approx(1.0), "sign_accuracy": 1.0}
    assert dz.agreement(-truth, truth)["sign_accuracy"] == 0.0
