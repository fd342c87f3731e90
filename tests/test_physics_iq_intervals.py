"""Physics IQ's bootstrap intervals over clips, paired differences between methods and the
share of resamplings in which the paper's ablation order holds, on synthetic per-clip
metrics."""

import numpy as np
import pandas as pd
import pytest
from helpers import clip_rows, shifted

from stance.evaluate import physics_iq, tables
from stance.evaluate import physics_iq_intervals as intervals


def test_a_resampled_set_scores_as_the_reference_aggregate_scores_it():
    frame = pd.DataFrame(clip_rows("a", 16, 0.4))
    ids = np.array(sorted(frame["clip_id"]))
    draws = np.vstack([ids[None], intervals.clip_draws(ids, 30, seed=3)])
    scores = intervals.scores(frame, draws)
    by_clip = frame.set_index("clip_id")
    for draw, score in zip(draws, scores, strict=True):
        part = by_clip.loc[list(draw)].reset_index()
        expected = physics_iq.aggregate(
            tables.records(part), tables.records(part, "pv_"), refuse_degenerate=False
        ).score
        assert score == pytest.approx(expected, abs=0.011)  # both rounded to 0.01
    assert len(set(scores.round(2))) > 5  # resampling moves the score


def test_clips_of_different_lengths_pool_the_twins_frames_as_the_reference_does():
    rows = clip_rows("a", 10, 0.4)
    for k, row in enumerate(rows):  # 3 to 7 frames, the twin's MSE list longer than its ST
        n = 3 + k % 5
        row.update(st=row["st"][:n] * 2, mse=row["mse"][:n], pv_st=row["pv_st"][:n])
        row["pv_mse"] = (row["pv_mse"] * 3)[: n + 2]
    frame = pd.DataFrame(rows)
    draws = intervals.clip_draws(frame["clip_id"], 20, seed=5)
    by_clip = frame.set_index("clip_id")
    for draw, score in zip(draws, intervals.scores(frame, draws), strict=True):
        part = by_clip.loc[list(draw)].reset_index()
        expected = physics_iq.aggregate(
            tables.records(part), tables.records(part, "pv_"), refuse_degenerate=False
        ).score
        assert score == pytest.approx(expected, abs=0.011)


def test_draws_are_seeded_and_independent_of_row_order():
    ids = [f"c{k}" for k in range(10)]
    first = intervals.clip_draws(ids, 50, seed=1)
    assert first.shape == (50, 10) and set(first.ravel()) <= set(ids)
    np.testing.assert_array_equal(first, intervals.clip_draws(ids[::-1], 50, seed=1))
    assert not np.array_equal(first, intervals.clip_draws(ids, 50, seed=2))


def test_a_copy_of_the_reference_differs_by_zero_and_a_better_one_always_scores_higher():
    reference = clip_rows("rgb_only", 24, 0.4)
    rows = pd.DataFrame(
        reference + shifted(reference, "copy", 0.0) + shifted(reference, "better", 0.03)
    )
    draws = intervals.bootstrap_scores(rows, tables.SPLITS, bootstrap=100)
    assert set(draws) == {(m, s) for m in ("rgb_only", "copy", "better") for s in tables.SPLITS}
    copy = intervals.paired_difference(draws, "copy", "rgb_only", "all")
    assert copy == {"difference_ci95": "[0.00, 0.00]", "above_share": 0.5}
    better = intervals.paired_difference(draws, "better", "rgb_only", "all")
    low, high = tables.parse_interval(better["difference_ci95"])
    assert 0 < low < high and better["above_share"] == 1.0
    # unpaired, the two methods' own intervals overlap: pairing is what separates them
    own = {
        m: tables.parse_interval(intervals.interval(draws[(m, "all")]))
        for m in ("rgb_only", "better")
    }
    assert own["better"][0] < own["rgb_only"][1]


def test_a_method_missing_clips_is_not_paired():
    reference = clip_rows("rgb_only", 12, 0.4)
    rows = pd.DataFrame(reference + shifted(reference, "partial", 0.1)[:-3])
    draws = intervals.bootstrap_scores(rows, {"all": None}, bootstrap=40)
    assert np.isnan(draws[("partial", "all")]).mean() > 0.9  # nearly every draw names one
    assert intervals.paired_difference(draws, "partial", "rgb_only", "all") == {
        "difference_ci95": "n/a (not scored on the same clips)",
        "above_share": pytest.approx(np.nan, nan_ok=True),
    }
    assert np.isnan(intervals.order_share(draws, ["partial", "rgb_only"]))
    assert intervals.paired_difference(draws, "rgb_only", "absent", "all") == {
        "difference_ci95": "n/a (no absent row)",
        "above_share": pytest.approx(np.nan, nan_ok=True),
    }
    repeated = pd.DataFrame(reference + reference[:1])
    with pytest.raises(ValueError, match="one row per clip"):
        intervals.scores(repeated, intervals.clip_draws(repeated["clip_id"], 2))


def test_the_order_share_counts_resamplings_in_the_given_order():
    base = clip_rows("rgb_only", 20, 0.35)
    rows = pd.DataFrame(base + shifted(base, "rgb_seg", 0.05) + shifted(base, "rgb_depth", 0.1))
    draws = intervals.bootstrap_scores(rows, tables.SPLITS, bootstrap=50)
    assert intervals.order_share(draws, ["rgb_depth", "rgb_seg", "rgb_only"]) == 1.0
    assert intervals.order_share(draws, ["rgb_only", "rgb_seg", "rgb_depth"]) == 0.0
    assert np.isnan(intervals.order_share(draws, ["rgb_depth", "absent"]))
    tied = pd.DataFrame(base + shifted(base, "tie", 0.0))
    tie_draws = intervals.bootstrap_scores(tied, {"all": None}, bootstrap=20)
    assert intervals.order_share(tie_draws, ["tie", "rgb_only"]) == 0.0  # a tie breaks it
    assert intervals.paired_difference(tie_draws, "tie", "rgb_only", "all")["above_share"] == 0.5


def test_the_interval_is_the_middle_95_percent_of_the_draws():
    values = np.arange(1001, dtype=float)  # percentiles 2.5 and 97.5: 25 and 975
    assert intervals.interval(values) == "[25.00, 975.00]"
    assert intervals.interval(np.array([np.nan, 3.0, 3.0])) == "[3.00, 3.00]"
    assert intervals.interval(np.array([np.nan])) == "n/a"


def test_the_ablation_table_gives_intervals_differences_and_the_order_note(tmp_path):
    base = clip_rows("rgb_only", 20, 0.35)
    rows = pd.DataFrame(base + shifted(base, "rgb_seg", 0.05) + shifted(base, "rgb_depth", 0.1))
    draws = intervals.bootstrap_scores(rows, tables.SPLITS, bootstrap=50)
    table = pd.DataFrame(
        [
            {
                "method": method,
                "split": split,
                "physics_iq": physics_iq.aggregate(
                    tables.records(part), tables.records(part, "pv_")
                ).score,
                "physics_iq_ci95": intervals.interval(draws[(method, split)]),
                "fvd": np.nan,
                "cd_fvd": np.nan,
            }
            for method, frame in rows.groupby("method", sort=False)
            for split, small in tables.SPLITS.items()
            for part in [frame if small is None else frame[frame["small_object_split"] == small]]
        ]
    )
    variants = {
        "rgb_only": {"aux": "none", "cue_mode": "dense_rope", "motion_tokens": 32},
        "rgb_seg": {"aux": "seg", "cue_mode": "dense_rope", "motion_tokens": 32},
        "rgb_depth": {"aux": "depth", "cue_mode": "dense_rope", "motion_tokens": 32},
    }
    out = tables.ablation(table, variants, draws, "rgb_only").set_index("variant")
    assert (
        out.loc["rgb_depth", "physics_iq_difference"]
        > out.loc["rgb_seg", "physics_iq_difference"]
        > 0
    )
    assert out.loc["rgb_depth", "above_reference_share"] == 1.0
    assert out.loc["rgb_only", "physics_iq_difference_ci95"] == "-"
    assert out.loc["rgb_seg", "physics_iq_small-object_ci95"].startswith("[")
    assert tables.paper_order(variants, "rgb_only") == ["rgb_depth", "rgb_seg", "rgb_only"]
    note = tables.ordering_note(variants, "rgb_only", draws, 50)
    assert "rgb_depth > rgb_seg > rgb_only holds in 100% of 50" in note
    assert tables.ordering_note({"rgb_only": variants["rgb_only"]}, "rgb_only", draws, 50) is None
    tables.plot(table, tmp_path / "physics_iq.png")
    assert (tmp_path / "physics_iq.png").stat().st_size > 10_000
    bars = tables.error_bars(
        table, table.pivot(index="method", columns="split", values="physics_iq")
    )
    assert bars.shape == (3, 2, 3) and (bars >= 0).all() and bars.sum() > 0
