"""Physics-IQ definitions against hand-computed cases, the reference's fixture, and
numbers the reference code produced (tests/physics_iq_synthetic.py)."""

import json
from pathlib import Path

import cv2
import numpy as np
import physics_iq_synthetic as synthetic
import pytest

from stance import motion_masks
from stance.evaluate import physics_iq as piq
from stance.evaluate import physics_iq_files as piq_files
from stance.evaluate.bench import write_video
from stance.evaluate.physics_iq import PhysicsIQError
from stance.physics_iq_folder import opencv_frames

EXACT = piq.Options(scale=1.0, lossy_masks=False)  # full size, exact masks


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
    assert piq.score_from_means(0.4, 0.5, 0.6, 0.1, 0.3, 0.25, 0.5, 0.05) == 100.0
    assert piq.score_from_means(0.1, 0.1, 0.1, 0.2, 0.5, 0.5, 0.5, 0.0) == 0.0
    assert piq.score_from_means(0.3, 0.3, 0.3, 0.0, 0.6, 0.6, 0.6, 0.0) == 50.0


def _view_pair(clip, other, options=EXACT, fps=8):
    view = piq.real_view(clip, fps, options)
    return view, piq.compare(view, other, fps, options, "other")[0]


def test_generated_equal_to_the_twin_scores_100():
    clips = [moving_square(step=s) for s in (3, 4, 5)]
    twins = [moving_square(step=s, start=5) for s in (3, 4, 5)]
    generated, variance = [], []
    for clip, twin in zip(clips, twins, strict=True):
        _, metrics = _view_pair(clip, twin)
        variance.append(metrics)
        generated.append(metrics)
    scores = piq.aggregate(generated, variance)
    assert scores.score == 100.0 and scores.per_sample == pytest.approx(100.0)


def test_a_static_copy_of_the_first_frame_scores_low():
    clip, twin = moving_square(), moving_square(start=5)
    view, pv = _view_pair(clip, twin)
    frozen, _ = piq.compare(view, np.repeat(clip[:1], len(clip), 0), 8, EXACT, "frozen")
    assert piq.aggregate([frozen], [pv]).score < 50


def test_scale_and_lossy_roundtrip_options():
    clip = moving_square(frames=5, size=64)
    exact = piq.prepare(clip, (32, 32), 8, piq.Options(scale=0.5, lossy_masks=False))
    lossy = piq.prepare(clip, (32, 32), 8, piq.Options(scale=0.5, lossy_masks=True))
    assert exact.frames.shape == (5, 32, 32, 3) and exact.masks.shape == (5, 32, 32)
    assert lossy.masks.shape == (5, 32, 32)
    agreement = (exact.masks == lossy.masks).mean()
    assert 0.9 < agreement <= 1.0


def test_reference_settings_are_the_default():
    assert piq.Options().reference
    assert not piq.Options(scale=0.25).reference
    assert not piq.Options(lossy_masks=False).reference


@pytest.mark.parametrize(
    "width,height,expected",
    [(854, 480, (213, 120)), (718, 404, (179, 101)), (1923, 1081, (480, 270))],
)
def test_reference_size_is_a_floor_quarter_of_take_one(width, height, expected):
    # round(w / 4) would give 214, 180 and 481 for these widths
    assert piq.evaluation_size(width, height, "reference") == expected
    assert piq.evaluation_size(width, height, 0.5) == (round(width * 0.5), round(height * 0.5))


def test_the_first_fps_times_five_frames_are_scored():
    clip = moving_square(frames=50, size=48, step=0)  # static after...
    clip[45:, 30:40, 30:40] = 255  # ...a change only after frame 40 = 8 fps x 5 s
    view = piq.real_view(clip, 8, EXACT)
    assert view.frames == 40 and not view.real.masks.any()
    longer = np.concatenate([clip, clip[:5]])
    metrics, _ = piq.compare(view, longer, 8, EXACT, "longer")  # cut to 40 frames
    assert len(metrics.st) == 40 and set(metrics.st) == {1.0}


def test_short_and_empty_videos_are_clear_errors():
    clip = moving_square(frames=6)
    view = piq.real_view(clip, 8, EXACT)  # a 6-frame clip (< 40) is scored whole
    assert view.frames == 6
    with pytest.raises(piq.PhysicsIQError, match=r"has 4 frames.*first 6.*at least 6"):
        piq.compare(view, clip[:4], 8, EXACT, "the generated video")
    with pytest.raises(piq.PhysicsIQError, match="the generated video has no frames"):
        piq.compare(view, clip[:0], 8, EXACT, "the generated video")
    with pytest.raises(piq.PhysicsIQError, match="no frames"):
        piq.real_view(clip[:0], 8, EXACT)


def test_a_generated_video_at_another_size_gets_masks_at_its_own_size():
    """Masks come from the video at its own resolution, then are resized (the reference's
    order): a 96 px video of the same motion as a 48 px clip gives the clip's masks."""

    clip = moving_square(frames=6, size=48)
    big = np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_NEAREST) for f in clip])
    options = piq.Options(lossy_masks=False)
    view = piq.real_view(clip, 8, options)
    ours = piq.prepare(big, view.size, 8, options)
    assert ours.frames.shape[1:3] == (12, 12) and ours.masks.shape == view.real.masks.shape
    own = piq.motion_masks(big)  # masks of the big video itself, resized after
    assert np.array_equal(ours.masks, piq.resize_frames(own.astype(np.uint8) * 255, (12, 12)) > 127)


def test_decoded_mask_channels_are_equal_so_one_channel_is_the_reference_iou(tmp_path):
    """The reference IoUs run over the 3 BGR channels OpenCV decodes from its grey mask
    videos; they are equal, so an IoU over one channel is the same number."""

    masks = piq.motion_masks(moving_square(frames=8, size=64))
    path = str(tmp_path / "m.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 8, (64, 64), isColor=False)
    for mask in masks:
        writer.write(mask.astype(np.uint8) * 255)
    writer.release()
    capture, frames = cv2.VideoCapture(path), []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    decoded = np.stack(frames)
    assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 0] == decoded[..., 2]).all()
    three = decoded > 127
    one = three[..., 0]
    assert piq.spatiotemporal_iou(three, three[::-1]) == piq.spatiotemporal_iou(one, one[::-1])


def test_parity_with_the_reference_code(tmp_path):
    """Per-view metrics and the score on a synthetic set (3 scenarios x 3 views: takes at
    8 fps with 44 frames, widths whose quarter is not round(w/4), a generated video at
    another size, a static one) equal what the reference code printed for the same files
    (how they were produced: tests/physics_iq_synthetic.py)."""
    expected = json.loads(
        (Path(__file__).parent / "data" / "physics_iq_reference.json").read_text()
    )
    real, generated_dir = synthetic.write_set(tmp_path)
    options = piq.Options()  # the reference settings
    generated, variance, scenarios, views = [], [], [], []
    for s, scenario in enumerate(synthetic.SCENARIOS):
        for v, view_name in enumerate(synthetic.VIEWS):
            take1 = synthetic.read_video(real / synthetic.real_name(s, v, "take-1"))
            take2 = synthetic.read_video(real / synthetic.real_name(s, v, "take-2"))
            ours = synthetic.read_video(generated_dir / synthetic.generated_name(s, v))
            view = piq.real_view(take1, synthetic.FPS, options)
            pv, _ = piq.compare(view, take2, synthetic.FPS, options, "take 2")
            gen, _ = piq.compare(view, ours, synthetic.FPS, options, "generated")
            reference = expected["views"][f"{scenario}/{view_name}"]
            assert gen.st == pytest.approx([round(x, 4) for x in reference["st"]], abs=1e-12)
            assert gen.mse == pytest.approx([round(x, 4) for x in reference["mse"]], abs=1e-12)
            assert pv.st == pytest.approx([round(x, 4) for x in reference["pv_st"]], abs=1e-12)
            assert pv.mse == pytest.approx([round(x, 4) for x in reference["pv_mse"]], abs=1e-12)
            for key, ours_value in (("s", gen.s), ("ws", gen.ws), ("pv_s", pv.s), ("pv_ws", pv.ws)):
                assert ours_value == pytest.approx(reference[key], abs=1e-9), key
            generated.append(gen)
            variance.append(pv)
            scenarios.append(scenario)
            views.append(view_name)
    scores = piq.aggregate(generated, variance, scenarios, views)
    assert scores.score == expected["score"]
    pv_all = round(scores.pv_st + scores.pv_s + scores.pv_ws - scores.pv_mse, 4)
    assert pv_all == expected["physical_variance_all_metrics"]


def test_aggregate_refuses_mismatched_or_degenerate_input():
    record = piq.ViewMetrics(st=[1.0], s=0.0, ws=0.0, mse=[0.0])
    with pytest.raises(ValueError, match="one physical-variance record"):
        piq.aggregate([record], [])
    with pytest.raises(ValueError, match="must be positive"):
        piq.aggregate([record], [record])


def test_the_reference_procedure_on_files_matches_the_reference_and_the_pipeline(tmp_path):
    """The bench's baseline (evaluate/physics_iq_files.py: mask videos written, then every
    file decoded again frame by frame) gives the numbers the reference code printed, and
    `score_view` (what the evaluation stage runs) gives the same per-view numbers."""
    expected = json.loads(
        (Path(__file__).parent / "data" / "physics_iq_reference.json").read_text()
    )
    real, generated_dir = synthetic.write_set(tmp_path)
    slow_gen, slow_pv, fast_gen, fast_pv, scenarios, views = [], [], [], [], [], []
    for s, scenario in enumerate(synthetic.SCENARIOS):
        for v, view_name in enumerate(synthetic.VIEWS):
            files = [
                real / synthetic.real_name(s, v, "take-1"),
                real / synthetic.real_name(s, v, "take-2"),
                generated_dir / synthetic.generated_name(s, v),
            ]
            masks = [tmp_path / f"{s}{v}{k}.mp4" for k in range(3)]
            for video, out in zip(files, masks, strict=True):
                piq_files.write_mask_video(video, out)
            gen, pv = piq_files.view_metrics(*files, *masks, synthetic.FPS)
            reference = expected["views"][f"{scenario}/{view_name}"]
            assert gen.st == [round(x, 4) for x in reference["st"]]
            assert pv.mse == [round(x, 4) for x in reference["pv_mse"]]
            assert gen.ws == pytest.approx(reference["ws"], abs=1e-9)
            take1, take2, ours = (synthetic.read_video(f) for f in files)
            scored = piq.score_view(
                take1, {"take2": take2, "ours": ours}, synthetic.FPS, piq.Options()
            )
            fast = scored.metrics
            assert (fast["ours"].st, fast["ours"].mse) == (gen.st, gen.mse)
            assert (fast["take2"].st, fast["take2"].mse) == (pv.st, pv.mse)
            for a, b in ((fast["ours"], gen), (fast["take2"], pv)):
                assert (a.s, a.ws) == pytest.approx((b.s, b.ws), abs=1e-12)
            slow_gen.append(gen)
            slow_pv.append(pv)
            fast_gen.append(fast["ours"])
            fast_pv.append(fast["take2"])
            scenarios.append(scenario)
            views.append(view_name)
    slow = piq.aggregate(slow_gen, slow_pv, scenarios, views)
    assert slow.score == expected["score"]
    assert piq.aggregate(fast_gen, fast_pv, scenarios, views).score == slow.score


def test_vectorised_steps_equal_their_frame_by_frame_forms():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (7, 33, 45, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 33, 45, 3), dtype=np.uint8)
    per_frame = [
        float(np.mean(((x / 255.0).astype(np.float32) - (y / 255.0).astype(np.float32)) ** 2))
        for x, y in zip(a, b, strict=True)
    ]
    assert piq.frame_mse(a, b) == per_frame  # bit for bit
    m1, m2 = rng.random((2, 6, 20, 30)) > 0.7
    m2[2] = m1[2] = False
    loop = [
        1.0 if (x | y).sum() == 0 else float((x & y).sum() / (x | y).sum())
        for x, y in zip(m1, m2, strict=True)
    ]
    assert piq.spatiotemporal_iou(m1, m2) == loop
    video = moving_square(frames=9, size=48)
    video[4:, 5:9] = 250  # a second change mid-clip
    with pytest.raises(PhysicsIQError, match="has 3 frames"):
        piq.score_view(video, {"short": video[:3]}, 8, EXACT)
    assert piq.motion_masks(video[:0]).shape == (0, 48, 48)
    noisy = np.clip(video + rng.integers(0, 30, video.shape), 0, 255).astype(np.uint8)
    for frames in (video, noisy):
        assert np.array_equal(piq.motion_masks(frames), _masks_frame_by_frame(frames))


def _masks_frame_by_frame(frames, threshold=10):
    masks, average = np.zeros(frames.shape[:3], bool), None
    for t, frame in enumerate(frames):
        grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        if average is None:
            average = grey.astype(np.float64)
            continue
        cv2.accumulateWeighted(grey, average, 0.3)
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(average))
        _, binary = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, motion_masks.KERNEL)
        masks[t] = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, motion_masks.KERNEL) > 0
    return masks


def test_frames_blurred_as_channels_equal_frame_by_frame_blur():
    """More frames than one OpenCV image holds as channels (chunks), odd sizes, noise."""
    grey = np.random.default_rng(5).integers(
        0, 256, (motion_masks.MAX_CHANNELS + 23, 37, 29), np.uint8
    )
    loop = np.stack([cv2.GaussianBlur(g, (5, 5), 0) for g in grey])
    assert np.array_equal(motion_masks.blur_frames(grey), loop)


def test_single_thread_decoding_gives_the_default_decoders_pixels(tmp_path):
    """The evaluation decodes on one FFmpeg thread; the reference lets OpenCV choose."""
    rng = np.random.default_rng(6)
    path = tmp_path / "v.mp4"
    noise = rng.integers(0, 40, (24, 96, 96, 3))
    write_video(path, np.clip(moving_square(24, 96, step=3) + noise, 0, 255).astype(np.uint8), 8)
    default = piq_files.read_frames(path, 24, normalize=False)
    ours = list(opencv_frames(path))
    assert len(ours) == 24 and np.array_equal(np.stack(ours), np.stack(default))
