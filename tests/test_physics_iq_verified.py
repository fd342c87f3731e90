"""The Physics-IQ Verified track: its folder layout (track, shipped masks, conditioning
from the full videos) and every score the reference reports, against numbers the
reference code produced for tests/physics_iq_verified_synthetic.py."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import physics_iq_verified_synthetic as synthetic
import pytest
from physics_iq_synthetic import write_masks

from stance import physics_iq_folder as folder
from stance.evaluate import physics_iq as piq
from stance.evaluate import physics_iq_benchmark as bench
from stance.evaluate import physics_iq_scores as scores

REFERENCE = json.loads(
    gzip.decompress(
        (Path(__file__).parent / "data" / "physics_iq_verified_reference.json.gz").read_bytes()
    )
)
RUNS = REFERENCE["runs"]


def reference_views(run: str):
    """(generated, variance, scenarios, views) of a run as the reference's CSV holds them."""
    generated, variance, scenarios, views = [], [], [], []
    for key, row in RUNS[run]["views"].items():
        scenario, view = key.split("/")
        generated.append(piq.ViewMetrics(row["st"], row["s"], row["ws"], row["mse"]))
        variance.append(piq.ViewMetrics(row["pv_st"], row["pv_s"], row["pv_ws"], row["pv_mse"]))
        scenarios.append(scenario)
        views.append(view)
    return generated, variance, scenarios, views


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_score_equals_the_reference_on_its_own_metrics(run):
    ours = scores.reference_scores(*reference_views(run))
    expected = RUNS[run]["metrics"]
    assert list(ours) == list(scores.KEYS)
    for key in scores.KEYS:
        assert ours[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key


def test_verified_ratios_are_clipped_and_mse_inverted():
    """A generated video closer to take 1 than take 2 is scores 1, not more; a video with
    no error at all has an infinite MSE ratio, clipped to 1; an error twice the physical
    variance scores 1/2 on MSE."""
    perfect = piq.ViewMetrics([1.0, 1.0], 1.0, 1.0, [0.0, 0.0])
    noisy = piq.ViewMetrics([0.5, 0.5], 0.5, 0.5, [0.02, 0.02])
    variance = piq.ViewMetrics([0.5, 0.5], 0.5, 0.5, [0.01, 0.01])
    out = scores.reference_scores([perfect, noisy], [variance, variance], ["a", "b"], ["v", "v"])
    assert out["score_spatial_view"] == pytest.approx((1.0 + 1.0) / 2)
    assert out["score_mse_view"] == pytest.approx((1.0 + 0.5) / 2)
    assert out[scores.VERIFIED] == pytest.approx((1.0 + (1 + 1 + 1 + 0.5) / 4) / 2)
    # the original score divides dataset means and subtracts MSE: 0.75/0.5 > 1, unclipped raw
    assert out["final_score_raw"] == pytest.approx(1.5 - (0.01 - 0.01))
    assert out[scores.ORIGINAL] == 1.0 and out[scores.STABLE] == 1.0


def test_a_zero_physical_variance_leaves_the_legacy_score_undefined_not_an_error():
    still = piq.ViewMetrics([1.0], 0.0, 0.0, [0.0])
    out = scores.reference_scores([still], [still], ["a"], ["v"])
    assert np.isnan(out[scores.LEGACY])
    assert out[scores.VERIFIED] == pytest.approx((0 + 0 + 1 + 1) / 4)  # 0/(0+eps), 1/0 -> 1


def test_the_track_is_named_by_the_folder_or_set(tmp_path):
    for track, name in folder.FOLDERS.items():
        (tmp_path / name / "split-videos").mkdir(parents=True)
        assert folder.track_of(tmp_path / name) == track
        assert folder.track_of(tmp_path / name, "original") == "original"
    other = tmp_path / "my-copy"
    (other / "split-videos").mkdir(parents=True)
    assert folder.root_of(other) == other
    with pytest.raises(folder.BenchmarkError, match="physics_iq_track"):
        folder.track_of(other)
    with pytest.raises(folder.BenchmarkError, match="expected one of"):
        folder.track_of(other, "newest")


def test_shipped_masks_score_as_the_masks_they_hold(tmp_path):
    """Shipped mask files that hold the masks the reference would compute give the same
    metrics as computing them; other shipped masks change the numbers."""
    take1, take2 = (_ball(shift) for shift in (0, 2))
    generated = _ball(5)
    options = piq.Options()
    computed = piq.score_view(take1, {"take2": take2, "run": generated}, 8, options)
    shipped = {}
    for key, frames in (("take1", take1), ("take2", take2)):
        path = tmp_path / f"{key}.mp4"
        write_masks(path, piq.motion_masks(frames, options.threshold), 8)
        shipped[key] = folder.read_mask_video(path)
    same = piq.score_view(
        take1, {"take2": take2, "run": generated}, 8, options, shipped_masks=shipped
    )
    assert same.metrics == computed.metrics
    empty = {key: np.zeros_like(masks) for key, masks in shipped.items()}
    other = piq.score_view(
        take1, {"take2": take2, "run": generated}, 8, options, shipped_masks=empty
    )
    assert other.metrics["take2"].st == [1.0] * len(take1)  # both empty: IoU 1 by definition
    with pytest.raises(piq.PhysicsIQError, match="shipped mask video has 3 frames"):
        piq.score_view(
            take1, {"take2": take2}, 8, options, shipped_masks={"take1": shipped["take1"][:3]}
        )


def test_shipped_masks_are_read_from_the_channel_the_reference_thresholds(tmp_path):
    """Channel 0 of the decoded BGR frames (blue), resized, > 127: a region that is only
    red in the mask video is not motion, one that is only blue is."""
    bgr = np.zeros((8, 64, 96, 3), np.uint8)
    bgr[:, 10:30, 10:40, 0] = 255  # blue
    bgr[:, 34:60, 50:90, 2] = 255  # red
    path = tmp_path / "masks.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (96, 64))
    for frame in bgr:
        writer.write(frame)
    writer.release()
    size = (24, 16)
    prepared = piq.prepare_shipped(_ball(0, 8), folder.read_mask_video(path), size)
    expected = np.stack(
        [
            cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)[..., 0] > 127
            for f in folder.opencv_frames(path)
        ]
    )
    assert np.array_equal(prepared.masks, expected)
    assert prepared.masks[:, 5, 6].all() and not prepared.masks[:, 12, 17].any()


def _ball(shift: int, frames: int = 40, size=(96, 64)) -> np.ndarray:
    video = np.full((frames, size[1], size[0], 3), 60, np.uint8)
    for t in range(frames):
        cv2.circle(video[t], (10 + shift + 2 * t, 30), 6, (220, 200, 40), -1)
    return video


def _view_folder(tmp_path: Path, full_frames: int, testing_frames: int) -> tuple[Path, folder.View]:
    """A Verified-layout view without conditioning clips: full take 1 and its testing
    part at 8 FPS (the ball's position encodes the frame index)."""
    root = tmp_path / folder.FOLDERS[folder.VERIFIED]
    item = folder.View("0001", "perspective-left", "trimmed-ball", "0199")
    full = _ball(0, full_frames)
    (root / "full-videos" / "take-1" / "8FPS").mkdir(parents=True)
    (root / "split-videos" / "testing" / "8FPS").mkdir(parents=True)
    synthetic._write(folder.full_video_path(root, item, 8), list(full))
    synthetic._write(folder.testing_path(root, item, 1, 8), list(full[-testing_frames:]))
    return root, item


def test_conditioning_is_the_full_video_before_its_testing_part(tmp_path):
    root, item = _view_folder(tmp_path, full_frames=64, testing_frames=40)
    conditioning = folder.conditioning_frames(root, item, 8)
    full = folder.read_rgb(folder.full_video_path(root, item, 8))
    assert len(conditioning) == 24
    assert np.array_equal(conditioning, full[:24])


def test_a_full_video_no_longer_than_its_testing_part_is_a_clear_error(tmp_path):
    root, item = _view_folder(tmp_path, full_frames=40, testing_frames=40)
    with pytest.raises(folder.BenchmarkError, match="nothing precedes the switch frame"):
        folder.conditioning_frames(root, item, 8)
    shutil.rmtree(root / "full-videos")
    with pytest.raises(folder.BenchmarkError, match="download the benchmark's full-videos"):
        folder.conditioning_frames(root, item, 8)


@pytest.mark.slow
def test_parity_with_the_reference_on_the_verified_layout(tmp_path):
    """The synthetic Verified set scored by the pipeline (layout, masks, metrics, scores)
    gives every per-frame metric and every score the reference printed for it."""
    bench_dir, runs, descriptions = synthetic.write_set(tmp_path)
    assert folder.track_of(folder.root_of(tmp_path)) == folder.VERIFIED
    rows = bench.score_runs(bench_dir, runs, synthetic.FPS, piq.Options(), descriptions)
    for run, run_rows in zip(runs, rows, strict=True):
        expected = RUNS[run.name]
        assert len(run_rows) == 198
        for row in run_rows:
            reference = expected["views"][f"{row['scenario']}/{row['view']}"]
            for key in ("st", "mse", "pv_st", "pv_mse"):
                assert row[key] == pytest.approx(reference[key], abs=1e-12), key
            for key in ("s", "ws", "pv_s", "pv_ws"):
                assert row[key] == pytest.approx(reference[key], abs=1e-9), key
        path = bench.write_run(
            run_rows, tmp_path / "out" / f"{run.name}.parquet", {"run": 1, "reference": True}
        )
        ours = bench.run_scores(bench.read_run(path)[0])["all"]
        for key in scores.KEYS:
            assert ours[key] == pytest.approx(expected["metrics"][key], abs=1e-9), key
    # the masks the reference writes for the takes (and then reads back), shipped: the
    # same numbers through the shipped-mask path
    shipped = bench_dir / "video-masks" / "real" / f"{synthetic.FPS}FPS"
    shipped.mkdir(parents=True)
    for take in sorted((bench_dir / "split-videos" / "testing" / f"{synthetic.FPS}FPS").glob("*")):
        masks = piq.motion_masks(folder.read_rgb(take), 10)
        write_masks(shipped / take.name.replace("_testing-videos_", "_video-masks_"), masks, 8)
    assert bench.score_runs(bench_dir, runs, synthetic.FPS, piq.Options(), descriptions) == rows
