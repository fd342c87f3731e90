"""Training runs of one configuration pooled (stance/evaluate/replicates.py): values and
two-level bootstrap intervals over runs and clips, on synthetic evaluation rows."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import clip_rows, run_cli, shifted

from stance import config
from stance.errors import UserError
from stance.evaluate import physics_iq_intervals as intervals
from stance.evaluate import replicates, tables

CLIPS = 24
SMALL_BOOTSTRAP = config.section_settings("evaluate", {"bootstrap": 50})
IDENTITY = {
    "backbone": ("none", "none"),
    "rgb_only": ("none", "dense_rope"),
    "rgb_depth": ("depth", "dense_rope"),
    "rgb_seg": ("seg", "dense_rope"),
}


def variant_rows(name: str, quality: float, gain: float, run: int = 0) -> list[dict]:
    """A variant's rows on CLIPS clips: Physics IQ parts around `quality`, two moving
    instances per clip that move `gain` x their 4 px truth along it with the cues as given,
    and as far back with them reversed (a variant without cues: its reversed video is its
    own video, as the evaluation records it)."""
    rng = np.random.default_rng(run)
    aux, mode = IDENTITY[name]
    rows = clip_rows(name, CLIPS, quality)
    for row in rows:
        moved = list(4 * gain + 0.4 * rng.standard_normal(2))
        row |= {
            "aux": aux,
            "cue_mode": mode,
            "motion_tokens": 32,
            "instance_truth_px": [4.0, 4.0],
            "instance_along_px": moved,
            "instance_along_flipped_px": moved if mode == "none" else [-m for m in moved],
            "instance_along_placebo_px": [0.1, -0.1],
            "instance_along_placebo_flipped_px": [0.1, -0.1],
        }
    return rows


def frame(*runs: list[dict]) -> pd.DataFrame:
    """Rows of several runs, each a list of variant rows, tagged with their run."""
    return pd.concat(
        [pd.DataFrame(rows).assign(run=k) for k, rows in enumerate(runs)], ignore_index=True
    )


def test_two_identical_runs_pool_to_the_runs_own_values_and_clip_intervals():
    rows = variant_rows("rgb_only", 0.5, 0.6)
    both = frame(rows, rows)
    pooled, per_run = replicates.pool(both, ["rgb_only"], bootstrap=200, seed=4)
    one = pd.DataFrame(rows)
    draws = intervals.clip_draws(one["clip_id"], 200, seed=4)
    np.testing.assert_allclose(pooled[("rgb_only", "physics_iq")], intervals.scores(one, draws))
    piq = tables.physics_iq.aggregate(tables.records(one), tables.records(one, "pv_"))
    assert per_run[("rgb_only", "physics_iq")] == [pytest.approx(piq.score, abs=0.011)] * 2
    gains = np.concatenate([np.array(r["instance_along_px"]) / 4 for r in rows])
    assert per_run[("rgb_only", "motion_gain")] == [pytest.approx(gains.mean())] * 2
    responses = per_run[("rgb_only", "directional_response")]
    assert responses == [pytest.approx(gains.mean())] * 2  # reversed moves as far back
    assert per_run[("rgb_only", "follows_share")] == [1.0, 1.0]
    assert per_run[("rgb_only", "placebo_response")] == [pytest.approx(0.0)] * 2


def test_the_spread_between_runs_widens_the_interval_around_their_mean():
    low, high = variant_rows("rgb_only", 0.5, 0.3), variant_rows("rgb_only", 0.5, 0.7)
    table, _, _ = replicates.table(frame(low, high), "rgb_only", bootstrap=400)
    row = table.set_index("variant").loc["rgb_only"]
    assert row["motion_gain"] == pytest.approx(0.5, abs=0.03)
    per_run = [float(v) for v in row["motion_gain_per_run"].split(" / ")]
    assert per_run == [pytest.approx(0.3, abs=0.05), pytest.approx(0.7, abs=0.05)]
    pooled_low, pooled_high = tables.parse_interval(row["motion_gain_ci95"])
    single, _, _ = replicates.table(frame(low, low), "rgb_only", bootstrap=400)
    one_low, one_high = tables.parse_interval(single["motion_gain_ci95"].iloc[0])
    assert pooled_high - pooled_low > 3 * (one_high - one_low)  # the runs' spread dominates
    assert pooled_low < 0.35 and pooled_high > 0.65


def test_a_variant_better_on_every_clip_of_every_run_is_above_in_every_draw():
    runs = []
    for run in range(3):
        base = variant_rows("rgb_only", 0.3 + 0.05 * run, 0.5, run)
        better = [r | {"aux": "depth"} for r in shifted(base, "rgb_depth", 0.1)]
        runs.append(base + better)
    table, _, _ = replicates.table(frame(*runs), "rgb_only", bootstrap=300)
    row = table.set_index("variant").loc["rgb_depth"]
    assert row["above_reference_share"] == 1.0
    assert row["physics_iq_minus_reference"] > 0
    assert tables.parse_interval(row["physics_iq_minus_reference_ci95"])[0] > 0


def test_the_papers_order_is_counted_over_draws_of_runs_and_clips():
    def run(seed: int, depth: float, seg: float) -> list[dict]:
        base = variant_rows("rgb_only", 0.3, 0.5, seed)
        return (
            base
            + [r | {"aux": "depth"} for r in shifted(base, "rgb_depth", depth)]
            + [r | {"aux": "seg"} for r in shifted(base, "rgb_seg", seg)]
        )

    _, order, share = replicates.table(frame(run(0, 0.2, 0.1), run(1, 0.2, 0.1)), "rgb_only", 200)
    assert order == ["rgb_depth", "rgb_seg", "rgb_only"] and share == 1.0
    _, _, share = replicates.table(frame(run(0, 0.1, 0.2), run(1, 0.1, 0.2)), "rgb_only", 200)
    assert share == 0.0


def write_run(folder, rows: list[dict]) -> None:
    for name, part in pd.DataFrame(rows).groupby("method"):
        out = folder / name / "test"
        out.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), out / "00000.parquet")


def test_the_command_writes_the_table_page_and_plot(tmp_path):
    folders = []
    for run in range(2):
        folders.append(tmp_path / f"run{run}" / "results" / "evaluate")
        write_run(
            folders[-1],
            variant_rows("backbone", 0.4, 0.05, run) + variant_rows("rgb_only", 0.3, 0.5, run),
        )
    out = tmp_path / "pooled"
    run_cli(
        "evaluate",
        "replicates",
        *map(str, folders),
        "--reference",
        "rgb_only",
        "--bootstrap",
        "50",
        "--out",
        str(out),
    )
    table = pd.read_csv(out / "replicates.csv")
    assert set(table["variant"]) == {"backbone", "rgb_only"}
    assert table.set_index("variant").loc["backbone", "directional_response"] == 0.0
    page = (out / "replicates.md").read_text()
    assert "2 runs" in page and "## Cue following" in page
    assert (out / "replicates.png").stat().st_size > 10_000


def test_runs_scored_by_different_evaluation_code_are_pooled_with_a_warning(tmp_path):
    rows = variant_rows("rgb_only", 0.4, 0.5)
    same = frame(*([r | {"evaluation_code": "a1"} for r in rows],) * 2)
    assert replicates.scoring_warning(same) == ""
    assert replicates.scoring_warning(frame(rows, rows)) == ""  # neither recorded: unknown
    other = frame([r | {"evaluation_code": "a1"} for r in rows], rows)
    warning = replicates.scoring_warning(other)
    assert "run 0: a1; run 1: unrecorded" in warning and "remove its results/evaluate" in warning
    replicates.write(other, tmp_path, "rgb_only", "2 runs", bootstrap=20)
    assert warning in (tmp_path / "replicates.md").read_text()


def test_bad_folders_are_named_and_each_variant_pools_the_runs_that_have_it(tmp_path):
    with pytest.raises(UserError, match="two or more"):
        replicates.read_runs([tmp_path])
    empty, other = tmp_path / "empty", tmp_path / "other"
    (empty / "results" / "evaluate").mkdir(parents=True)
    other.mkdir()
    with pytest.raises(UserError, match="given twice"):
        replicates.read_runs([empty, tmp_path / "." / "empty"])
    with pytest.raises(UserError, match=r"empty: no evaluation rows .*\(its results/evaluate\?\)"):
        replicates.read_runs([empty, other])
    with pytest.raises(UserError, match="missing does not exist"):
        replicates.read_runs([tmp_path / "missing", other])
    both = variant_rows("rgb_only", 0.4, 0.5)
    partial = frame(both + variant_rows("backbone", 0.4, 0.1), both)
    table, _, _ = replicates.table(partial, "rgb_only", bootstrap=50)
    assert table.set_index("variant")["runs"].to_dict() == {"rgb_only": 2, "backbone": 1}
    other_clips = [r | {"clip_id": r["clip_id"] + "x"} for r in both]
    with pytest.raises(UserError, match="other test clips"):
        replicates.check_runs(frame(both, other_clips))
    untrained = [r | {"method": "twin", "aux": None} for r in both]
    with pytest.raises(UserError, match="nothing to pool"):
        replicates.check_runs(frame(untrained, untrained))


def one_run_with_replicates() -> pd.DataFrame:
    """One run's rows: rgb_only trained with seeds 0, 2 and 1 (as rgb_only, rgb_only_b,
    rgb_only_a), rgb_depth and backbone once each."""
    rows = []
    for name, seed, gain in (("rgb_only", 0, 0.4), ("rgb_only_b", 2, 0.6), ("rgb_only_a", 1, 0.5)):
        rows += [
            r | {"method": name, "train_seed": seed} for r in variant_rows("rgb_only", 0.4, gain)
        ]
    rows += [r | {"train_seed": 0} for r in variant_rows("rgb_depth", 0.5, 0.5)]
    rows += [r | {"train_seed": 0} for r in variant_rows("backbone", 0.5, 0.0)]
    return pd.DataFrame(rows)


def test_variants_alike_but_for_their_seed_are_pooled_as_runs_of_the_first():
    rows = one_run_with_replicates()
    groups = replicates.replicate_groups(rows, "rgb_only")
    assert groups == {"rgb_only": ["rgb_only", "rgb_only_a", "rgb_only_b"]}
    runs = replicates.as_runs(rows, groups)
    assert sorted(runs["method"].unique()) == ["backbone", "rgb_depth", "rgb_only"]
    table, _, _ = replicates.table(runs, "rgb_only", bootstrap=100)
    pooled = table.set_index("variant")
    assert pooled.loc["rgb_only", "runs"] == 3 and pooled.loc["rgb_depth", "runs"] == 1
    assert pooled.loc["rgb_only", "replicates"] == "rgb_only / rgb_only_a / rgb_only_b"
    gains = [float(v) for v in pooled.loc["rgb_only", "motion_gain_per_run"].split(" / ")]
    assert gains == [pytest.approx(g, abs=0.05) for g in (0.4, 0.5, 0.6)]  # in seed order
    same_seed = rows.assign(train_seed=0)
    assert replicates.replicate_groups(same_seed, "rgb_only") == {}
    assert replicates.replicate_groups(rows.drop(columns="train_seed"), "rgb_only") == {}


def test_a_group_is_named_by_the_reference_and_a_repeated_seed_counts_once(caplog):
    rows = one_run_with_replicates()
    groups = replicates.replicate_groups(rows, "rgb_only_b")  # the reference: seed 2
    assert groups == {"rgb_only_b": ["rgb_only", "rgb_only_a", "rgb_only_b"]}
    table, _, _ = replicates.table(replicates.as_runs(rows, groups), "rgb_only_b", 50)
    assert "physics_iq_minus_reference_ci95" in table  # the reference is found
    again = rows[rows["method"] == "rgb_only_a"].assign(method="rgb_only_again")
    rows = pd.concat([rows, again], ignore_index=True)  # seed 1 twice
    groups = replicates.replicate_groups(rows, "rgb_only")
    assert groups == {"rgb_only": ["rgb_only", "rgb_only_a", "rgb_only_b"]}
    assert "rgb_only_again" in caplog.text
    runs = replicates.as_runs(rows, groups)
    assert "rgb_only_again" not in set(runs["replicate"])
    assert runs.groupby(["method", "run"])["clip_id"].apply(lambda c: c.is_unique).all()


def test_runs_pair_by_run_id_and_a_missing_reference_is_named():
    a = [variant_rows("rgb_only", 0.4, 0.3 + 0.2 * k, k) for k in range(3)]
    b = [[r | {"method": "rgb_depth", "aux": "depth"} for r in rows] for rows in a]
    names = ["rgb_only", "rgb_depth"]
    same = frame(*(a[k] + b[k] for k in range(3)))  # both variants score alike in each run
    pooled, _ = replicates.pool(same, names, bootstrap=100, seed=1)
    assert np.array_equal(pooled[("rgb_only", "motion_gain")], pooled[("rgb_depth", "motion_gain")])
    rows = frame(a[0], a[1] + b[1], a[2] + b[2])  # rgb_depth in runs 1 and 2 only
    pooled, _ = replicates.pool(rows, names, bootstrap=100, seed=1)
    assert not np.array_equal(
        pooled[("rgb_only", "motion_gain")], pooled[("rgb_depth", "motion_gain")]
    )
    with pytest.raises(UserError, match="'rgb_seg' is not among the pooled variants"):
        replicates.table(rows, "rgb_seg", 20)
    other = [r | {"motion_tokens": 16} for r in a[1]]
    with pytest.raises(UserError, match="rgb_only is a different variant in different runs"):
        replicates.check_runs(frame(a[0], other))


def test_the_results_tables_pool_replicates_and_say_so(tmp_path):
    settings = config.section_settings("evaluate", {"bootstrap": 50})
    rows = one_run_with_replicates()
    note = tables.replicates_note(rows, tmp_path, settings)
    assert "rgb_only: rgb_only, rgb_only_a, rgb_only_b" in note[0]
    page = (tmp_path / "replicates.md").read_text()
    assert "| rgb_only  |      3 | rgb_only / rgb_only_a / rgb_only_b" in page
    assert (tmp_path / "replicates.png").exists()
    single = rows[~rows["method"].isin(["rgb_only_a", "rgb_only_b"])]
    assert tables.replicates_note(single, tmp_path, settings) == []
    assert not (tmp_path / "replicates.md").exists()  # an earlier configuration's, removed
    elsewhere = config.section_settings("evaluate", {"bootstrap": 50, "stance_variant": "gone"})
    note = tables.replicates_note(rows, tmp_path, elsewhere)  # the tables still get written
    assert "not pooled: the reference variant 'gone'" in note[0]


def test_the_results_page_shows_the_pooled_plot_only_when_there_is_one(tmp_path):
    from stance.report import results

    assert results.pooled_section(tmp_path) == []
    note = tables.replicates_note(one_run_with_replicates(), tmp_path, SMALL_BOOTSTRAP)
    assert note and "../evaluate/replicates.png" in results.pooled_section(tmp_path)[0]
