"""The Physics-IQ benchmark track: the folder layout, cues from a conditioning clip,
scoring a generated run (parity with the reference code's numbers) and the seed table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import physics_iq_synthetic as synthetic
import pytest

from stance import config
from stance import physics_iq_folder as folder
from stance.cues import from_video
from stance.cues import store as cue_store
from stance.evaluate import physics_iq as piq
from stance.evaluate import physics_iq_benchmark as bench
from stance.evaluate import physics_iq_scores as scores
from stance.generate.jobs import benchmark_frames

REFERENCE = json.loads((Path(__file__).parent / "data" / "physics_iq_reference.json").read_text())


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("piq")
    bench_dir, descriptions = synthetic.write_benchmark(root)
    generated = synthetic.write_set(root)[1]
    return bench_dir, descriptions, generated


def test_scan_pairs_takes_and_reads_descriptions(benchmark):
    bench_dir, descriptions, _ = benchmark
    views = folder.scan(bench_dir.parent, synthetic.FPS, descriptions)  # the parent works too
    assert len(views) == 9
    first = views[0]
    assert (first.id, first.view, first.scenario, first.take2_id) == (
        "0001",
        "perspective-left",
        "ballroll",
        "0002",
    )
    assert first.name == synthetic.generated_name(0, 0).removesuffix(".mp4")
    assert first.category == "Solid Mechanics"
    assert first.description == "A ball rolls (ballroll)."
    assert {v.category for v in views} == {"Solid Mechanics", "Fluid Dynamics"}
    plain = folder.scan(bench_dir, synthetic.FPS)
    assert plain[0].category == folder.UNKNOWN_CATEGORY
    assert plain[0].description == "ballroll."


def test_incomplete_or_misnamed_folders_are_clear_errors(benchmark, tmp_path):
    bench_dir, _, _ = benchmark
    with pytest.raises(folder.BenchmarkError, match="no split-videos"):
        folder.scan(tmp_path, 8)
    copy = tmp_path / "copy"
    shutil.copytree(bench_dir, copy)
    testing = copy / "split-videos" / "testing-videos" / "8FPS"
    with pytest.raises(folder.BenchmarkError, match="neither 12FPS nor 30FPS"):
        folder.scan(copy, 12)
    next(testing.glob("*take-2_domino.mp4")).unlink()
    with pytest.raises(folder.BenchmarkError, match="needs take-1 and take-2"):
        folder.scan(copy, 8)
    (testing / "stray.mp4").write_bytes(b"")
    with pytest.raises(folder.BenchmarkError, match=r"stray\.mp4"):
        folder.scan(copy, 8)
    with pytest.raises(folder.BenchmarkError, match="not a file"):
        folder.scan(bench_dir, 8, tmp_path / "missing.csv")


def test_resampling_follows_the_reference_fps_changer():
    """150 frames at 30 fps -> 60 at 12 fps; frame j blends floor(a), floor(a)+1 with
    a = j (150 - 1) / (60 - 1), truncated to uint8; only the first 5 s are used."""
    ramp = np.arange(200, dtype=np.float64)[:, None, None, None] * np.ones((1, 2, 2, 3))
    frames = (ramp % 256).astype(np.uint8)
    out = folder.resample(frames, 30, 12, 5)
    assert out.shape == (60, 2, 2, 3)
    for j in (0, 1, 17, 59):
        alpha = j * 149 / 59
        expected = int(
            (1 - (alpha - int(alpha))) * int(alpha)
            + (alpha - int(alpha)) * min(int(alpha) + 1, 149)
        )
        assert out[j, 0, 0, 0] == expected
    with pytest.raises(folder.BenchmarkError, match="no frames"):
        folder.resample(frames[:0], 30, 12, 5)


def test_generated_length_is_fps_times_five_from_a_4k_plus_1_sample():
    assert benchmark_frames(16) == (81, 80)  # CogVideoX-1.5 at 16 fps
    assert benchmark_frames(12) == (61, 60)
    assert benchmark_frames(8) == (41, 40)


def _moving_ball(frames=12, size=64, velocity=(2.0, -1.0)):
    rng = np.random.default_rng(0)
    background = rng.integers(40, 80, (size, size, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        centre = (int(12 + velocity[0] * t), int(40 + velocity[1] * t))
        cv2.circle(video[t], centre, 6, (240, 220, 90), -1)
    return video


def _settings(**from_video):
    return config.section_settings("cues", {"from_video": from_video})


def _constant_disparity(frames):
    return np.ones(frames.shape[:3], np.float32)


def test_cues_from_a_conditioning_clip_point_where_the_object_moves():
    clip = _moving_ball()
    cue = from_video.video_cue(
        clip, clip[-1], 64, _settings(min_area_px=8), _constant_disparity, {"clip_id": "x"}
    )
    cue_store.validate(cue)
    assert len(cue.instances["u"]) >= 1
    u, v = cue.instances["u"][0], cue.instances["v"][0]
    assert u == pytest.approx(2.0, abs=0.6) and v == pytest.approx(-1.0, abs=0.6)
    ys, xs = np.nonzero(cue.labels == 1)
    # the instance lies on the ball's last position (centre 12 + 2*11, 40 - 11)
    assert abs(xs.mean() - 34) < 6 and abs(ys.mean() - 29) < 6
    assert cue.cue[0, ys[0], xs[0], 0] == pytest.approx(u)
    assert cue.instances["dz"][0] == pytest.approx(0.0, abs=1e-6)  # constant depth
    assert cue.instances["mass_kg"][0] == 1.0
    assert cue.cue[0, ..., 3].max() == 0.0  # log(1 kg / 1 kg)
    assert np.isnan(cue.instances["dz_gt"]).all()
    assert cue.attrs["source"] == "physics_iq"
    assert cue.attrs["dz"]["align_to"] == "first_frame"


def test_a_static_clip_gives_an_empty_cue_and_a_short_one_an_error():
    clip = np.repeat(_moving_ball()[:1], 8, axis=0)
    cue = from_video.video_cue(clip, clip[-1], 32, _settings(), _constant_disparity, {})
    cue_store.validate(cue)
    assert len(cue.instances["u"]) == 0 and not cue.cue.any()
    assert cue.keyframe.shape == (32, 32, 3)  # squeezed to the generation size
    with pytest.raises(folder.BenchmarkError, match="at least 2"):
        from_video.video_cue(clip[:1], clip[0], 32, _settings(), _constant_disparity, {})


def test_physics_iq_cue_job_writes_one_store_per_view(benchmark, tmp_path):
    """With the tiny Depth-Anything-V2 (random weights, real architecture)."""
    from stance.depth import model as depth_model

    bench_dir, descriptions, _ = benchmark
    depth = depth_model.make_tiny(tmp_path / "depth")
    depth_settings = config.defaults().depth
    out = tmp_path / "cues"
    from_video.write_physics_iq_cues(
        bench_dir,
        descriptions,
        out,
        _settings(),
        32,
        synthetic.FPS,
        str(depth),
        depth_settings,
        "hash",
        allow_download=False,
    )
    stores = sorted(out.glob("*.zarr"))
    assert [p.stem for p in stores] == [v.name for v in folder.scan(bench_dir, synthetic.FPS)]
    cue = cue_store.read(stores[0])
    assert cue.attrs["prompt"] == "A ball rolls (ballroll)."
    assert cue.attrs["category"] == "Solid Mechanics"
    assert cue.keyframe.shape == (32, 32, 3)
    assert cue.keyframe_disparity.shape == (32, 32)
    assert (out / f"{stores[0].stem}.cue.png").exists()


def test_scoring_a_run_in_the_benchmark_layout_gives_the_reference_numbers(benchmark, tmp_path):
    """The parity set laid out as the benchmark (takes found by name, generated videos by
    the reference's naming): per-view metrics and the score equal what the reference code
    printed for the same files."""
    bench_dir, descriptions, generated = benchmark
    (rows,) = bench.score_runs(bench_dir, [generated], synthetic.FPS, piq.Options(), descriptions)
    assert len(rows) == 9
    for row in rows:
        reference = REFERENCE["views"][f"{row['scenario']}/{row['view']}"]
        assert row["st"] == pytest.approx([round(x, 4) for x in reference["st"]], abs=1e-12)
        assert row["pv_mse"] == pytest.approx([round(x, 4) for x in reference["pv_mse"]], abs=1e-12)
        assert row["ws"] == pytest.approx(reference["ws"], abs=1e-9)
    path = bench.write_run(
        rows,
        tmp_path / "rgb_only" / "run_01.parquet",
        {"variant": "rgb_only", "run": 1, "reference": True},
    )
    frame, run = bench.read_run(path)
    assert run["variant"] == "rgb_only"
    assert bench.run_scores(frame)["all"][scores.LEGACY] == REFERENCE["score"]


def test_seeds_scored_together_equal_seeds_scored_alone(benchmark, tmp_path):
    """One job scores all of a variant's runs, preparing each view's takes once: every
    run's rows are those of scoring it on its own."""
    bench_dir, descriptions, generated = benchmark
    other = tmp_path / "run_02"  # a second seed: each view gets another view's video
    other.mkdir()
    videos = sorted(generated.glob("*.mp4"))
    for path, source in zip(videos, videos[1:] + videos[:1], strict=True):
        shutil.copy(source, other / path.name)
    together = bench.score_runs(
        bench_dir, [generated, other], synthetic.FPS, piq.Options(), descriptions
    )
    for run, rows in zip((generated, other), together, strict=True):
        alone = bench.score_runs(bench_dir, [run], synthetic.FPS, piq.Options(), descriptions)
        assert rows == alone[0]
    assert together[0] != together[1]


def test_a_missing_generated_video_is_a_clear_error(benchmark, tmp_path):
    bench_dir, _, generated = benchmark
    partial = tmp_path / "partial"
    shutil.copytree(generated, partial)
    next(partial.glob("0001_*.mp4")).unlink()
    with pytest.raises(piq.PhysicsIQError, match=r"0001_perspective-left_ballroll\.mp4 is missing"):
        bench.score_runs(bench_dir, [partial], synthetic.FPS, piq.Options())


def _rows(seed: int):
    """Synthetic per-view metrics of two categories (scores differ between seeds)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (scenario, category) in enumerate([("a", "Optics"), ("b", "Optics"), ("c", "Solid")]):
        for view in ("perspective-left", "perspective-right"):
            st = list(np.round(rng.uniform(0.2, 0.9, 5), 4))
            rows.append(
                {
                    "id": f"{k:04d}",
                    "view": view,
                    "scenario": scenario,
                    "category": category,
                    "st": st,
                    "s": float(rng.uniform(0.3, 0.9)),
                    "ws": float(rng.uniform(0.3, 0.9)),
                    "mse": [0.01] * 5,
                    "pv_st": [0.8] * 5,
                    "pv_s": 0.9,
                    "pv_ws": 0.85,
                    "pv_mse": [0.005] * 5,
                }
            )
    return rows


def test_table_is_mean_and_sample_std_over_runs_per_category(tmp_path):
    paths = []
    for run in (1, 2, 3):
        paths.append(
            bench.write_run(
                _rows(run),
                tmp_path / "runs" / "rgb_only" / f"rgb_only-op-run_{run:02d}.parquet",
                {"variant": "rgb_only", "run": run, "reference": True, "track": "verified"},
            )
        )
    single = bench.write_run(
        _rows(9),
        tmp_path / "runs" / "backbone" / "backbone-op-run_01.parquet",
        {"variant": "backbone", "run": 1, "reference": True, "track": "verified"},
    )
    table = bench.gather([*paths, single], tmp_path / "out", fps=8)
    per_run = [bench.run_scores(bench.read_run(p)[0]) for p in paths]

    def row(variant, category, score):
        pick = table[(table.variant == variant) & (table.category == category)]
        return pick[pick.score == score].iloc[0]

    for score in (scores.VERIFIED, scores.ORIGINAL, scores.STABLE):
        values = [100 * r["all"][score] for r in per_run]
        assert row("rgb_only", "all", score)["mean"] == pytest.approx(np.mean(values))
        assert row("rgb_only", "all", score)["std"] == pytest.approx(np.std(values, ddof=1))
    legacy = [r["all"][scores.LEGACY] for r in per_run]  # already 0-100
    assert row("rgb_only", "all", scores.LEGACY)["mean"] == pytest.approx(np.mean(legacy))
    first = row("rgb_only", "all", scores.VERIFIED)
    assert first.runs == 3 and first.views == 6 and first.track == "verified"
    assert first.prompts == "unknown"  # runs that did not record their prompts
    optics = row("rgb_only", "Optics", scores.VERIFIED)
    assert optics["mean"] == pytest.approx(
        np.mean([100 * r["Optics"][scores.VERIFIED] for r in per_run])
    )
    assert np.isnan(row("backbone", "all", scores.VERIFIED)["std"])
    text = (tmp_path / "out" / "physics_iq_benchmark.md").read_text()
    assert text.index("Verified (final_score_view)") < text.index("Original (final_score_orig)")
    assert "±" in text and "Optics" in text and "Solid" in text and "47.62" in text
    assert "31.8 ± 1.5" in text  # the leaderboard's CogVideoX-5B, in the notes
    assert (tmp_path / "out" / "physics_iq_benchmark.csv").exists()
    assert (tmp_path / "out" / "physics_iq_benchmark.png").stat().st_size > 1000


@pytest.mark.parametrize("track", ["original", None])
def test_other_runs_head_with_the_papers_protocol(tmp_path, track):
    """Original-track runs (and runs that did not record a track) head with the paper's
    protocol; only an Original-track table draws the paper's number."""
    record = {"variant": "rgb_only", "run": 1, "reference": True}
    path = bench.write_run(
        _rows(1),
        tmp_path / "rgb_only" / "rgb_only-op-run_01.parquet",
        record | ({"track": track} if track else {}),
    )
    table = bench.gather([path], tmp_path / "out", fps=8)
    assert set(table.track) == {track or "unknown"}
    text = (tmp_path / "out" / "physics_iq_benchmark.md").read_text()
    assert "Original, the paper's protocol (calculate_iq_score) per category" in text


def test_a_scenario_missing_a_view_is_refused_as_the_reference_refuses_it():
    rows = _rows(1)[:-1]  # scenario c without its right view
    frame = pd.DataFrame(rows)
    with pytest.raises(piq.PhysicsIQError, match="scenario c has the views"):
        bench.run_scores(frame)


def test_a_parquet_that_is_not_a_benchmark_run_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "other.parquet"
    pq.write_table(pa.Table.from_pylist([{"a": 1}]), path)
    with pytest.raises(piq.PhysicsIQError, match="not a Physics-IQ benchmark run"):
        bench.read_run(path)
