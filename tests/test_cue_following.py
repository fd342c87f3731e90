"""Cue-following metrics on synthetic videos with known motion: tracked displacements,
motion error, the cue-flip reversal, their aggregation, and the reversed cue map."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import clip_arrays

from stance import config, generated, video
from stance.cues import store as cue_store
from stance.evaluate import metrics, motion, tables
from stance.generate import sampling as generate
from stance.render import store

T, S = 9, 48


def squares(velocities, starts, T=T, size=S, seed=0):
    """A textured background with one 8x8 square per velocity (px/frame); keyframe labels."""
    rng = np.random.default_rng(seed)
    background = (rng.random((size, size)) * 40 + 30).astype(np.uint8)
    frames = np.repeat(np.repeat(background[None, ..., None], T, 0), 3, -1)
    labels = np.zeros((size, size), np.uint16)
    colours = [(220, 60, 60), (60, 200, 80), (70, 90, 230)]
    for i, ((vx, vy), (x0, y0)) in enumerate(zip(velocities, starts, strict=True)):
        for t in range(T):
            x, y = round(x0 + vx * t), round(y0 + vy * t)
            frames[t, y : y + 8, x : x + 8] = colours[i]
            frames[t, y + 2 : y + 4, x + 2 : x + 4] = 255
            if t == 0:
                labels[y : y + 8, x : x + 8] = i + 1
    return frames, labels


def test_tracked_displacements_match_the_known_motion():
    velocities = [(1.5, 0.0), (0.0, -1.0), (-1.0, 0.5)]
    frames, labels = squares(velocities, [(4, 4), (30, 34), (34, 8)])
    measured = motion.instance_displacements(frames, labels, 3)
    expected = np.array(velocities) * (T - 1)
    np.testing.assert_allclose(measured, expected, atol=0.75)


def discs_on_a_textured_floor(objects, seed):
    """What the renders look like at 48 px: a pixel-noise grey floor and uniformly
    coloured, low-contrast discs at sub-pixel positions (drawn 4x larger, area-averaged
    down); objects = (x0, y0, vx, vy, radius, colour). -> frames, keyframe labels."""
    supersample = 4
    rng = np.random.default_rng(seed)
    floor = np.repeat((150 + rng.normal(0, 8, (S, S))).clip(0, 255)[..., None], 3, -1)
    floor = cv2.resize(floor, (S * supersample, S * supersample), interpolation=cv2.INTER_NEAREST)

    def draw(t, canvas, value):
        for i, (x0, y0, vx, vy, radius, colour) in enumerate(objects):
            centre = (round((x0 + vx * t) * supersample), round((y0 + vy * t) * supersample))
            cv2.circle(canvas, centre, round(radius * supersample), value(i, colour), -1)
        return canvas

    frames = np.stack(
        [
            cv2.resize(draw(t, floor.copy(), lambda i, c: c), (S, S), interpolation=cv2.INTER_AREA)
            for t in range(T)
        ]
    )
    big_labels = draw(0, np.zeros((S * supersample,) * 2, np.uint16), lambda i, c: i + 1)
    centre = supersample // 2  # each pixel's label is the one at its centre
    return frames.clip(0, 255).astype(np.uint8), big_labels[
        centre::supersample, centre::supersample
    ]


def test_uniform_objects_on_a_textured_floor_are_tracked_the_whole_way():
    """A box-window Farneback flow bleeds the floor's zero into the edges of a uniform
    object: over these ten floors it reads 0.83, 0.82 and 0.92 of the three motions, the
    Gaussian window 0.92, 0.95 and 0.99 (at least 0.89 over any ten other floors)."""
    objects = [
        (12, 12, 0.75, 0.0, 4, (120, 150, 60)),
        (30, 34, 0.0, -0.75, 1.6, (120, 140, 70)),  # about 3 px across, a small object
        (36, 10, -0.5, 0.5, 2.5, (150, 110, 170)),
    ]
    truth = np.array([(vx * (T - 1), vy * (T - 1)) for _, _, vx, vy, _, _ in objects])
    read = []
    for seed in range(10):
        frames, labels = discs_on_a_textured_floor(objects, seed)
        measured = motion.instance_displacements(frames, labels, len(objects))
        read.append(motion.along(measured, truth) / np.linalg.norm(truth, axis=1))
    assert (np.mean(read, axis=0) >= 0.88).all(), np.mean(read, axis=0)


def test_an_instance_too_small_in_the_keyframe_is_not_measured():
    frames, labels = squares([(1.0, 0.0)], [(4, 4)])
    labels[labels > 0] = 0
    labels[4, 4:7] = 1  # 3 pixels < MIN_MASK_PX
    assert np.isnan(motion.instance_displacements(frames, labels, 1)).all()


def test_motion_error_and_flip_reversal():
    truth = np.array([[8.0, 0.0], [0.0, -6.0], [0.2, 0.1]])  # the third barely moves
    keep = motion.moving(truth)
    assert keep.tolist() == [True, True, False]
    follows = truth + 0.5
    np.testing.assert_allclose(motion.motion_errors(follows, truth, keep), [0.7071] * 2, 1e-3)
    assert motion.reversed_by_flip(follows, -follows, truth, keep).tolist() == [True, True]
    ignores = motion.reversed_by_flip(follows, follows, truth, keep)
    assert ignores.tolist() == [False, False]
    unmeasured = np.array([[np.nan, np.nan], [1.0, -3.0], [0.0, 0.0]])
    assert len(motion.motion_errors(unmeasured, truth, keep)) == 1


def write_clip(path, velocities, starts):
    frames, labels = squares(velocities, starts)
    seg = np.zeros((T, S, S), np.uint16)
    seg[0] = labels
    arrays = clip_arrays(frames, seg)
    n = len(velocities)
    tracks = {name: np.zeros((n, T, *tail), dtype) for name, (dtype, tail) in store.TRACKS.items()}
    for i, ((vx, vy), (x0, y0)) in enumerate(zip(velocities, starts, strict=True)):
        t = np.arange(T)
        tracks["image_positions"][i] = np.stack([x0 + 4 + vx * t, y0 + 4 + vy * t], -1)
    attrs = {
        "clip_id": path.stem,
        "instances": [{"mass": 1.0, "dynamic": True}] * n,
        "render": {"fps": 12},
    }
    store.write_clip(path, arrays, tracks, attrs)
    return frames


def test_response_gain_and_follows_on_known_displacements():
    truth = np.array([4.0, 8.0, 2.0])
    a, b = np.array([4.0, 4.0, -1.0]), np.array([-4.0, 0.0, -1.0])
    # full follow both ways; half as far one way, still the other; arrow ignored
    np.testing.assert_allclose(motion.directional_response(a, b, truth), [1.0, 0.25, 0.0])
    np.testing.assert_allclose(motion.motion_gain(a, truth), [1.0, 0.5, -0.5])
    share, p_value, n = motion.follows_share(a, b)
    assert (share, n) == (2 / 3, 3) and p_value == pytest.approx(0.5)  # P(X >= 2 | 3, 0.5)
    share, p_value, _ = motion.follows_share(np.ones(20), np.zeros(20))
    assert share == 1.0 and p_value == pytest.approx(0.5**20)
    assert motion.follows_share(a, a)[0] == 0.0  # ties (no cues) never follow
    assert np.isnan(motion.follows_share([], [])[0])


def test_placebo_donors_are_a_seeded_derangement():
    ids = [f"test-{k:08d}" for k in range(7)]
    donors = generate.placebo_donors(ids, seed=0)
    assert sorted(donors) == ids and sorted(donors.values()) == ids
    assert all(donor != clip for clip, donor in donors.items())
    assert donors == generate.placebo_donors(ids, seed=0)
    assert donors != generate.placebo_donors(ids, seed=1)
    assert generate.placebo_donors(ids[:1], seed=0) == {}  # no other clip to borrow from


def test_cue_conditions_sample_reversed_and_borrowed_cue_maps():
    def clip(value):
        cue = np.full((1, 4, 4, 4), value, np.float32)
        return cue_store.CueClip(
            cue, np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint16), {}, {}
        )

    own, other = clip(1.0), clip(2.0)
    conditions = generate.cue_conditions(own, other, flip=True)
    assert list(conditions) == ["", "placebo", "flipped", "placebo.flipped"]
    assert sorted(conditions) == sorted(generated.CONDITIONS)
    assert conditions["placebo"].cue[0, 0, 0].tolist() == [2.0] * 4
    assert conditions["placebo.flipped"].cue[0, 0, 0].tolist() == [-2.0, -2.0, -2.0, 2.0]
    assert conditions["placebo"].keyframe is own.keyframe  # only the cue map is borrowed
    assert list(generate.cue_conditions(own, None, flip=False)) == [""]
    assert generated.video_path(Path("g"), "c", "placebo.flipped", aux=True) == Path(
        "g/c.placebo.flipped.aux.mp4"
    )


def test_a_clip_row_scores_following_and_reversed_generations(tmp_path):
    velocities, starts = [(1.5, 0.0), (0.0, 1.0)], [(14, 30), (36, 14)]
    truth_frames = write_clip(tmp_path / "test-00000001.zarr", velocities, starts)
    generated = tmp_path / "generated"
    generated.mkdir()
    video.write_mp4(generated / "test-00000001.mp4", truth_frames, 12)
    backwards = [(-vx, -vy) for vx, vy in velocities]
    flipped, _ = squares(backwards, starts)  # same keyframe, arrows reversed
    video.write_mp4(generated / "test-00000001.flipped.mp4", flipped, 12)
    settings = config.section_settings("evaluate", {"pv_source": "deterministic", "scale": 1.0})
    row, _, _ = metrics.evaluate_clip(
        tmp_path / "test-00000001.zarr", "v", settings, generated, None, "none"
    )
    assert row["has_flip"]
    assert len(row["instance_motion_error_px"]) == 2
    assert max(row["instance_motion_error_px"]) < 1.5  # mp4 compression, tracking
    assert row["instance_flip_reversed"] == [True, True]
    copy, _, _ = metrics.evaluate_clip(
        tmp_path / "test-00000001.zarr",
        "copy_first_frame",
        settings,
        None,
        None,
        "none",
    )
    # no motion at all: the error is the rendered displacement itself
    np.testing.assert_allclose(sorted(copy["instance_motion_error_px"]), [8.0, 12.0], atol=0.5)
    assert copy["has_flip"] and copy["instance_flip_reversed"] == [False, False]
    assert copy["instance_along_px"] == copy["instance_along_flipped_px"] == [0.0, 0.0]
    # moving pixels: the following video's match the clip's, a still video has none
    assert row["generated_motion_px"] == pytest.approx(row["real_motion_px"], rel=0.15)
    assert row["real_motion_px"] > 0 and copy["generated_motion_px"] == 0.0


def test_control_measures_from_clips_with_known_motion(tmp_path):
    """A model that follows the arrow both ways scores response ~1, gain ~1 and follows
    every instance; its placebo (another clip's cues: here it stays still) ~0. A variant
    without cues is scored on its own video for every condition: response exactly 0."""
    velocities, starts = [(1.5, 0.0), (0.0, 1.0)], [(14, 30), (36, 14)]
    clips, rows = ["test-00000001", "test-00000002"], {"follows": [], "backbone": []}
    settings = config.section_settings("evaluate", {"pv_source": "deterministic", "scale": 1.0})
    for k, clip_id in enumerate(clips):
        shifted = [(x + 2 * k, y) for x, y in starts]
        truth_frames = write_clip(tmp_path / f"{clip_id}.zarr", velocities, shifted)
        folder = tmp_path / "follows"
        folder.mkdir(exist_ok=True)
        reversed_frames, _ = squares([(-vx, -vy) for vx, vy in velocities], shifted)
        still = np.repeat(truth_frames[:1], T, axis=0)
        for condition, frames in {
            "": truth_frames,
            "flipped": reversed_frames,
            "placebo": still,
            "placebo.flipped": still,
        }.items():
            video.write_mp4(generated.video_path(folder, clip_id, condition), frames, 12)
        (tmp_path / "backbone").mkdir(exist_ok=True)
        video.write_mp4(generated.video_path(tmp_path / "backbone", clip_id), truth_frames, 12)
        for name, takes_cues in (("follows", True), ("backbone", False)):
            row, _, _ = metrics.evaluate_clip(
                tmp_path / f"{clip_id}.zarr",
                name,
                settings,
                tmp_path / name,
                None,
                "none",
                takes_cues,
            )
            rows[name].append({**row, "small_object_split": False})
    follows = tables.cue_control(pd.DataFrame(rows["follows"]), bootstrap=100)
    assert follows["directional_response"] == pytest.approx(1.0, abs=0.1)
    assert follows["motion_gain"] == pytest.approx(1.0, abs=0.1)
    assert abs(follows["placebo_response"]) < 0.05
    assert follows["follows_share"] == 1.0 and follows["follows_p_value"] == 0.5**4
    assert follows["still_error_px"] == pytest.approx(10.0, abs=0.1)  # |truth| 12 and 8
    backbone = tables.cue_control(pd.DataFrame(rows["backbone"]), bootstrap=100)
    assert backbone["directional_response"] == 0.0 and backbone["placebo_response"] == 0.0
    assert backbone["directional_response_ci95"] == "[0.00, 0.00]"
    assert backbone["follows_share"] == 0.0 and backbone["motion_gain"] > 0.9
    table = tables.table1(pd.DataFrame(rows["follows"] + rows["backbone"]), bootstrap=50)
    out = tables.cue_following(table, {"backbone": {"cue_mode": "none"}})
    assert {"directional_response", "placebo_response", "follows_p_value"} <= set(out)
    tables.plot_cue_following(out, tmp_path / "cue_following.png")
    assert (tmp_path / "cue_following.png").stat().st_size > 10_000


def test_instance_means_pool_instances_and_bootstrap_over_clips():
    per_clip = pd.Series([[1.0, 3.0], [], [2.0], [6.0, 6.0, 6.0]])
    mean, interval, count = tables.instance_mean(per_clip, bootstrap=200)
    assert mean == pytest.approx(24 / 6) and count == 6
    low, high = (float(x) for x in interval.strip("[]").split(","))
    assert low <= mean <= high and low < high
    assert tables.instance_mean(pd.Series([[], []]), 10) == (
        pytest.approx(np.nan, nan_ok=True),
        "n/a",
        0,
    )
    rate, _, n = tables.instance_mean(pd.Series([[True, False], [True, True]]), 50)
    assert rate == 0.75 and n == 4


def test_cue_following_table_relates_each_method_to_the_no_cue_variant():
    table = pd.DataFrame(
        [
            {
                "method": m,
                "split": "all",
                "clips": 4,
                "moving_instances": 8,
                "motion_error_px": e,
                "motion_error_ci95": "",
                "cue_flip_reversal": r,
                "cue_flip_ci95": "",
                "cue_flip_instances": 8 if r == r else 0,
            }
            for m, e, r in (("backbone", 4.0, np.nan), ("rgb_only", 2.0, 0.9))
        ]
    )
    variants = {"backbone": {"cue_mode": "none"}, "rgb_only": {"cue_mode": "dense_rope"}}
    out = tables.cue_following(table, variants).set_index("method")
    assert out.loc["rgb_only", "error_vs_no_cues"] == 0.5
    assert out.loc["backbone", "error_vs_no_cues"] == 1.0


def test_reversed_arrows_negate_the_direction_and_keep_the_mass():
    cue = np.zeros((1, 4, 4, 4), np.float32)
    cue[0, 1:3, 1:3] = [1.5, -0.5, 0.2, 0.7]
    clip = cue_store.CueClip(
        cue=cue,
        keyframe=np.zeros((4, 4, 3), np.uint8),
        labels=np.zeros((4, 4), np.uint16),
        instances={},
        attrs={},
    )
    out = generate.reversed_arrows(clip)
    assert cue_store.CHANNELS == ("u", "v", "dz", "mass")
    np.testing.assert_array_equal(out.cue[0, 1, 1], np.float32([-1.5, 0.5, -0.2, 0.7]))
    assert out.cue.dtype == np.float32 and clip.cue[0, 1, 1, 0] == 1.5  # input untouched


def test_a_value_not_measured_says_why_under_its_table(tmp_path):
    table1 = pd.DataFrame(
        {
            "method": ["rgb_only", "rgb_seg"],
            "split": ["all", "all"],
            "physics_iq": [70.0, 71.0],
            "fvd": [np.nan, np.nan],
            "fvd_ci95": ["n/a (no I3D weights configured)"] * 2,
            "trajectory_error_px": [np.nan, 2.5],
        }
    )
    tables.write_all({"table1": table1}, tmp_path, notes=[])
    text = (tmp_path / "tables.md").read_text()
    assert "n/a in fvd: no I3D weights configured." in text
    assert "n/a in trajectory_error_px: measured for RGB+Seg variants only" in text
    assert "n/a in physics_iq" not in text and " nan " not in text
