"""Physics-IQ definitions against hand-computed cases and the reference's fixture."""

import numpy as np
import pytest

from stance.evaluate import physics_iq as piq


def moving_square(frames=6, size=48, start=4, step=4, colour=(255, 255, 255)):
    video = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        x = start + step * t
        video[t, 16:28, x : x + 12] = colour
    return video


def test_masks_follow_motion_and_frame_zero_is_empty():
    masks = piq.motion_masks(moving_square())
    assert not masks[0].any()
    assert masks[1:].any(axis=(1, 2)).all()
    assert not masks[:, :10, :].any()  # rows away from the square never move
    assert not piq.motion_masks(np.repeat(moving_square()[:1], 5, axis=0)).any()


def test_masks_see_brightness_only():
    grey = np.full((4, 32, 32, 3), 128, np.uint8)
    video = grey.copy()
    red = np.array([255, 0, 0], np.float64)
    luma = 0.299 * red[0]  # a red square of nearly the background's luminance
    level = round(luma)
    for t in range(4):
        video[t] = level
        video[t, 8:20, 4 + 3 * t : 16 + 3 * t] = (255, 0, 0)
    assert not piq.motion_masks(video).any()


def test_iou_definitions_on_hand_cases():
    a = np.zeros((3, 2, 2), bool)
    b = np.zeros((3, 2, 2), bool)
    a[1, 0, 0] = b[1, 0, 0] = True  # frame 1: identical
    a[2, 0, 0] = True  # frame 2: a moves, b does not
    b[2, 1, 1] = True
    assert piq.spatiotemporal_iou(a, b) == [1.0, 1.0, 0.0]  # frame 0: empty union -> 1
    assert piq.spatial_iou(a, b) == pytest.approx(1 / 2)  # {(0,0)} vs {(0,0),(1,1)}
    # weights: a (0,0)=2/3; b (0,0)=1/3, (1,1)=1/3 -> min 1/3, max 2/3 + 1/3
    assert piq.weighted_spatial_iou(a, b) == pytest.approx((1 / 3) / (2 / 3 + 1 / 3))
    empty = np.zeros((3, 2, 2), bool)
    assert piq.spatial_iou(empty, empty) == 1.0 and piq.weighted_spatial_iou(empty, empty) == 1.0


def test_mse_is_per_frame_on_unit_range():
    a = np.zeros((2, 2, 2, 3), np.uint8)
    b = a.copy()
    b[1] = 255
    assert piq.frame_mse(a, b) == [0.0, 1.0]


def test_reference_hand_fixture_is_clipped_to_100():
    assert piq._score(0.4, 0.5, 0.6, 0.1, 0.3, 0.25, 0.5, 0.05) == 100.0
    assert piq._score(0.1, 0.1, 0.1, 0.2, 0.5, 0.5, 0.5, 0.0) == 0.0
    assert piq._score(0.3, 0.3, 0.3, 0.0, 0.6, 0.6, 0.6, 0.0) == 50.0


def test_generated_equal_to_the_twin_scores_100():
    options = piq.Options()
    clips = [moving_square(step=s) for s in (3, 4, 5)]
    twins = [moving_square(step=s, start=5) for s in (3, 4, 5)]
    generated, variance = [], []
    for clip, twin in zip(clips, twins, strict=True):
        real, other = piq.prepare(clip, options), piq.prepare(twin, options)
        variance.append(piq.view_metrics(real, other))
        generated.append(piq.view_metrics(real, other))
    scores = piq.aggregate(generated, variance)
    assert scores.score == 100.0 and scores.per_sample == pytest.approx(100.0)


def test_a_static_copy_of_the_first_frame_scores_low():
    options = piq.Options()
    clip, twin = moving_square(), moving_square(start=5)
    real = piq.prepare(clip, options)
    pv = piq.view_metrics(real, piq.prepare(twin, options))
    frozen = piq.view_metrics(real, piq.prepare(np.repeat(clip[:1], len(clip), 0), options))
    assert piq.aggregate([frozen], [pv]).score < 50


def test_scale_and_lossy_roundtrip_options():
    clip = moving_square(frames=5, size=64)
    exact = piq.prepare(clip, piq.Options(scale=0.5))
    lossy = piq.prepare(clip, piq.Options(scale=0.5, lossy_masks=True))
    assert exact.frames.shape == (5, 32, 32, 3) and exact.masks.shape == (5, 32, 32)
    assert lossy.masks.shape == (5, 32, 32)
    agreement = (exact.masks == lossy.masks).mean()
    assert 0.9 < agreement <= 1.0


def test_aggregate_refuses_mismatched_or_degenerate_input():
    record = piq.ViewMetrics(st=[1.0], s=0.0, ws=0.0, mse=[0.0])
    with pytest.raises(ValueError, match="one physical-variance record"):
        piq.aggregate([record], [])
    with pytest.raises(ValueError, match="must be positive"):
        piq.aggregate([record], [record])
