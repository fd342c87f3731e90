"""Training runs of one configuration pooled: each variant's Physics IQ and cue following
with intervals over both the test clips and the training runs.

At small scale two training runs of one configuration (another `train.seed`, or only
another floating-point summation order) can differ by more than the variants differ from
each other, and one run's intervals cover the test clips only. The runs are either the
evaluation folders of several runs on the same test clips (`stance evaluate replicates`)
or, inside one run, variants trained alike but for their seed (`train.variants.<name>.seed`,
pooled by the results tables). Every variant is scored in each of its runs and pooled (the
mean over its runs), with a two-level bootstrap: every draw resamples the runs and,
independently, the test clips. The clip draw is the same for every variant
and run, so differences between variants stay paired by clip. With few runs the run level
is coarse (three runs give ten distinct multisets), so the per-run values are shown beside
the pooled ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from stance import config
from stance.errors import UserError
from stance.evaluate import motion, tables
from stance.evaluate import physics_iq_intervals as piq_intervals

log = logging.getLogger(__name__)

# measure -> (per-instance value from the along-direction lists and |truth|, conditions)
INSTANCE_MEASURES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "directional_response": (motion.directional_response, ("", "flipped")),
    "motion_gain": (motion.motion_gain, ("",)),
    "follows_share": (lambda a, b, truth: (a > b).astype(float), ("", "flipped")),
    "placebo_response": (motion.directional_response, ("placebo", "placebo.flipped")),
}
MEASURES = ("physics_iq", *INSTANCE_MEASURES)
PLOTTED = ("physics_iq", "directional_response", "motion_gain")
OUTPUTS = ("replicates.csv", "replicates.md", "replicates.png")


def read_runs(folders: Sequence[Path]) -> pd.DataFrame:
    """Every run's test-clip evaluation rows (`<method>/test/*.parquet` under each folder),
    the trained variants only, with a `run` column (the folder's position)."""
    if len(folders) < 2:
        raise UserError("pooling needs the evaluation folders of two or more training runs")
    resolved = [Path(folder).resolve() for folder in folders]
    if len(set(resolved)) < len(resolved):
        raise UserError("a folder is given twice: each run's evaluation folder once")
    frames = []
    for k, folder in enumerate(folders):
        frames.append(run_rows(Path(folder)).assign(run=k))
    return pd.concat(frames, ignore_index=True)


def run_rows(folder: Path) -> pd.DataFrame:
    """One run's trained variants' test-clip rows (`<method>/test/*.parquet`)."""
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist: give each run's results/evaluate folder")
    paths = sorted(folder.glob("*/test/*.parquet"))
    if not paths:
        hint = " (its results/evaluate?)" if (folder / "results" / "evaluate").is_dir() else ""
        raise UserError(
            f"{folder}: no evaluation rows (<method>/test/*.parquet){hint}; give a run's "
            "results/evaluate folder once `snakemake` has evaluated it"
        )
    rows = pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)
    rows = rows[rows["method"].isin(set(tables.variants_of(rows)))]
    groups = replicate_groups(rows, "")
    if groups:
        log.warning(
            "%s holds replicates of one variant (%s): across folders each is its own "
            "variant; the run's own tables pool them",
            folder,
            "; ".join(", ".join(m) for m in groups.values()),
        )
    return rows


def check_runs(rows: pd.DataFrame) -> dict[str, dict]:
    """{variant: identity} of the trained variants among the rows (`run` column: which run
    each row comes from), once each variant has one identity in every run and every
    variant in every run was evaluated on the same clips."""
    variants = tables.variants_of(rows)
    if not variants:
        raise UserError("no trained variant among the evaluation rows: nothing to pool")
    keys = [*config.VARIANT_KEYS]
    trained = rows[rows["method"].isin(variants)]
    for name, part in trained.groupby("method"):
        identities = part[keys].drop_duplicates()
        if len(identities) > 1:
            raise UserError(
                f"{name} is a different variant in different runs "
                f"({identities.to_dict('records')}): pool runs of one configuration"
            )
    expected = None
    for (name, run), part in trained.groupby(["method", "run"]):
        clips = set(part["clip_id"])
        expected = clips if expected is None else expected
        if clips != expected:
            raise UserError(
                f"{name} (run {run}) was evaluated on other test clips than the rest: pool "
                "runs of one data configuration (the same data.splits.test and seeds)"
            )
    return variants


def replicate_groups(rows: pd.DataFrame, reference: str) -> dict[str, list[str]]:
    """{group: its variants in seed order} of one run's variants alike in aux, cue_mode and
    motion_tokens but trained with different seeds (`train_seed`). A group is named by
    `reference` when it holds it, else by its lowest-seeded variant; of variants trained
    with the same seed only one is kept (the reference, else the first by name). Rows
    without a training seed are never grouped. Empty when no two variants are replicates."""
    if "train_seed" not in rows:
        return {}
    trained = tables.trained_rows(rows).drop_duplicates("method")
    known = trained[trained["train_seed"].notna()]
    groups = {}
    for _, members in known.groupby([*config.VARIANT_KEYS], sort=False):
        members = members.assign(first=members["method"] != reference)
        members = members.sort_values(["train_seed", "first", "method"])
        kept = members.drop_duplicates("train_seed")
        if len(kept) < 2:
            continue
        dropped = sorted(set(members["method"]) - set(kept["method"]))
        if dropped:
            log.warning("%s repeat another replicate's seed: left out of the pooling", dropped)
        names = kept["method"].tolist()
        groups[reference if reference in names else names[0]] = names
    return groups


def as_runs(rows: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """One run's rows with each replicate group's variants as runs of the group (`run`:
    the training seed, so groups trained with the same seeds pair by seed; `replicate`:
    the variant's own name); every other trained variant is its own single run."""
    members = {m: group for group, names in groups.items() for m in names}
    dropped = dropped_replicates(rows, groups)
    trained = tables.trained_rows(rows)
    trained = trained[~trained["method"].isin(dropped)]
    out = trained.assign(replicate=trained["method"], run=0)
    if "train_seed" in out:
        out["run"] = out["train_seed"].fillna(0).astype(int)
    out["method"] = out["replicate"].map(lambda name: members.get(name, name))
    return out


def dropped_replicates(rows: pd.DataFrame, groups: dict[str, list[str]]) -> set[str]:
    """Variants alike a group's but left out of it (a repeated seed): not pooled at all."""
    trained = tables.trained_rows(rows).drop_duplicates("method").set_index("method")
    identity = trained[[*config.VARIANT_KEYS]].apply(tuple, axis=1)
    grouped = {identity[names[0]] for names in groups.values()}
    members = {m for names in groups.values() for m in names}
    return {m for m, key in identity.items() if key in grouped and m not in members}


def clip_totals(frame: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per clip (indexed by clip id): the sum and count of a per-instance measure."""
    function, conditions = INSTANCE_MEASURES[measure]
    lists = tables.per_instance(frame, function, *conditions)
    return pd.DataFrame(
        {
            "sum": [float(np.sum(v)) for v in lists],
            "count": [float(len(v)) for v in lists],
        },
        index=frame["clip_id"].to_numpy(),
    )


def drawn_means(totals: pd.DataFrame, draws: np.ndarray) -> np.ndarray:
    """The instance mean over each draw's clips (a row of clip ids); NaN without instances."""
    sums = totals["sum"].reindex(draws.ravel()).to_numpy().reshape(draws.shape)
    counts = totals["count"].reindex(draws.ravel()).to_numpy().reshape(draws.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums.sum(axis=1) / counts.sum(axis=1)


def run_values(frame: pd.DataFrame, measure: str, draws: np.ndarray) -> tuple[float, np.ndarray]:
    """(value on every clip, values on the clip draws) of one variant in one run: the
    whole set is scored as one more draw."""
    everything = np.array(sorted(frame["clip_id"]), dtype=object)[None]
    sets = np.vstack([everything, draws])
    if measure == "physics_iq":
        values = piq_intervals.scores(frame, sets)
    else:
        values = drawn_means(clip_totals(frame, measure), sets)
    return float(values[0]), values[1:]


def pool(
    rows: pd.DataFrame, variants: Sequence[str], bootstrap: int, seed: int = 0
) -> tuple[dict[tuple[str, str], np.ndarray], dict[tuple[str, str], list[float]]]:
    """({(variant, measure): pooled value on each two-level draw},
    {(variant, measure): [value in each of its runs]}) of `variants` (`check_runs`). Each
    variant's runs are resampled among its own; variants with the same runs (run ids) share
    the run draws, so they pair by run as all pair by clip."""
    first = rows[rows["method"] == variants[0]]
    clip_draws = piq_intervals.clip_draws(first["clip_id"].tolist(), bootstrap, seed)
    pooled, per_run = {}, {}
    for name in variants:
        frames = dict(list(rows[rows["method"] == name].groupby("run")))  # sorted by run
        rng = np.random.default_rng([seed, *map(int, frames)])  # the same runs: the same draws
        run_draws = rng.integers(len(frames), size=(bootstrap, len(frames)))
        for measure in MEASURES:
            point, drawn = zip(
                *(run_values(frame, measure, clip_draws) for frame in frames.values()),
                strict=True,
            )
            per_run[(name, measure)] = list(point)
            stacked = np.stack(drawn)  # (runs, bootstrap)
            pooled[(name, measure)] = stacked[run_draws, np.arange(bootstrap)[:, None]].mean(axis=1)
    return pooled, per_run


def table(
    rows: pd.DataFrame, reference: str, bootstrap: int, seed: int = 0
) -> tuple[pd.DataFrame, list[str], float]:
    """(one row per variant: pooled values with 95 % intervals, per-run values and Physics
    IQ against `reference`, paired by clip, and by run where both have the same runs; the
    paper's ablation order of these variants, [] without its three; the share of draws in
    which it holds)."""
    variants = check_runs(rows)
    if reference not in variants:
        raise UserError(
            f"the reference variant {reference!r} is not among the pooled variants "
            f"{sorted(variants)}: name one of them (--reference, evaluate.stance_variant)"
        )
    pooled, per_run = pool(rows, list(variants), bootstrap, seed)
    piq_draws = {(name, "all"): pooled[(name, "physics_iq")] for name in variants}
    out = []
    for name, identity in variants.items():
        row = {"variant": name, "aux": identity["aux"], "cue_mode": identity["cue_mode"]}
        row["runs"] = len(per_run[(name, "physics_iq")])
        if "replicate" in rows:
            mine = rows[rows["method"] == name].drop_duplicates("run").sort_values("run")
            row["replicates"] = " / ".join(mine["replicate"])
        for measure in MEASURES:
            values = per_run[(name, measure)]
            row[measure] = float(np.mean(values))
            row[f"{measure}_ci95"] = piq_intervals.interval(pooled[(name, measure)])
            row[f"{measure}_per_run"] = " / ".join(f"{v:.2f}" for v in values)
        if name != reference:
            paired = piq_intervals.paired_difference(piq_draws, name, reference, "all")
            row["physics_iq_minus_reference"] = row["physics_iq"] - np.mean(
                per_run[(reference, "physics_iq")]
            )
            row["physics_iq_minus_reference_ci95"] = paired["difference_ci95"]
            row["above_reference_share"] = paired["above_share"]
        out.append(row)
    order = tables.paper_order(variants, reference)
    share = piq_intervals.order_share(piq_draws, order) if order else np.nan
    return pd.DataFrame(out), order, share


def gather(
    folders: Sequence[Path], out_dir: Path, reference: str, bootstrap: int, seed: int = 0
) -> pd.DataFrame:
    """`stance evaluate replicates`: the pooled table of several runs' evaluation folders."""
    runs = ", ".join(f"{k}: {folder}" for k, folder in enumerate(folders))
    return write(
        read_runs(folders), out_dir, reference, f"{len(folders)} runs ({runs})", bootstrap, seed
    )


def write(
    rows: pd.DataFrame,
    out_dir: Path,
    reference: str,
    source: str,
    bootstrap: int,
    seed: int = 0,
) -> pd.DataFrame:
    """replicates.csv, replicates.md and replicates.png of rows with a `run` column;
    `source` says in words what the runs are."""
    frame, order, share = table(rows, reference, bootstrap, seed)
    warning = scoring_warning(rows)
    if warning:
        log.warning(warning)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, page, picture = (out_dir / name for name in OUTPUTS)
    frame.to_csv(csv, index=False)
    clips = rows["clip_id"].nunique()
    page.write_text(markdown(frame, order, share, source, reference, clips, bootstrap, warning))
    plot(frame, picture)
    log.info("%d variants pooled over their runs -> %s", len(frame), out_dir)
    return frame


def scoring_warning(rows: pd.DataFrame) -> str:
    """A warning when the runs' rows were scored by different evaluation code (their
    `evaluation_code`; rows without one count as unrecorded), else ''. A change to the
    tracker or to Physics IQ changes the values, so such runs do not pool."""
    codes = rows.get("evaluation_code", pd.Series(None, index=rows.index, dtype=object))
    per_run = (
        codes.fillna("unrecorded").groupby(rows["run"]).agg(lambda c: "/".join(sorted(set(c))))
    )
    if per_run.nunique() <= 1:
        return ""
    listed = "; ".join(f"run {run}: {code}" for run, code in per_run.items())
    return (
        f"Warning: the runs were scored by different evaluation code ({listed}), so their "
        "values may not be comparable: evaluate every run with one version of the project "
        "(remove its results/evaluate and run snakemake again) before pooling."
    )


def markdown(
    frame: pd.DataFrame,
    order: Sequence[str],
    share: float,
    source: str,
    reference: str,
    clips: int,
    bootstrap: int,
    warning: str = "",
) -> str:
    lines = [
        "# Variants pooled over training runs",
        "",
        f"{source}, {clips} test clips. Each value is the mean over a variant's runs of the "
        "run's value on all test clips; the interval is a 95 % two-level bootstrap "
        f"({bootstrap} draws, each resampling a variant's runs and, independently, the "
        "clips: the same clip "
        "draw for every variant and run); per-run values in run order. A variant with "
        "one run has an interval over clips only, and comparisons with it leave out its "
        f"training variance. Differences are taken from {reference}, paired by clip, and by "
        "run where both variants have the same runs (the same folders, or the same seeds).",
        "",
        *([warning, ""] if warning else []),
    ]
    if order:
        paper = " > ".join(order)
        runs = frame.set_index("variant")["runs"]
        single = [name for name in order if runs[name] == 1]
        caveat = f" ({', '.join(single)}: one run, clip variance only)" if single else ""
        lines += [
            f"The paper's Physics IQ order {paper} holds in {share:.0%} of the draws{caveat}.",
            "",
        ]
    first = ["variant", "runs", *(["replicates"] if "replicates" in frame else [])]
    piq = [*first, "physics_iq", "physics_iq_ci95", "physics_iq_per_run"]
    piq += [c for c in frame if c.startswith(("physics_iq_minus", "above_reference"))]
    lines += [
        "above_reference_share: the share of bootstrap draws in which the variant scores "
        "higher than the reference (a tie counts half), not a p-value. follows_share: the "
        "share of instances with a > b (displacement along the arrow with the cues as "
        "given, a, above that with them reversed, b).",
        "",
    ]
    cues = [f"{m}{suffix}" for m in INSTANCE_MEASURES for suffix in ("", "_ci95", "_per_run")]
    for title, columns in (("Physics IQ", piq), ("Cue following", ["variant", *cues])):
        shown = frame[columns].to_markdown(index=False, floatfmt=".2f")
        lines += [f"## {title}", "", shown.replace(" nan ", " n/a "), ""]
    return "\n".join(lines)


def plot(frame: pd.DataFrame, path: Path) -> None:
    """Per measure, each variant's pooled value with its interval (bar) and every run's
    value (dots); the cue measures' target of 0.5 dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4.5 * len(PLOTTED), 3.6))
    x = np.arange(len(frame))
    for ax, measure in zip(axes, PLOTTED, strict=True):
        values = frame[measure].to_numpy(float)
        low, high = np.array([tables.parse_interval(c) for c in frame[f"{measure}_ci95"]]).T
        errors = np.nan_to_num(np.abs(np.vstack([values - low, high - values])))
        single = frame["runs"].to_numpy() == 1
        for mask, label, hatch in ((~single, "pooled", None), (single, "one run", "//")):
            if mask.any():
                ax.bar(
                    x[mask],
                    values[mask],
                    0.6,
                    color="C0",
                    yerr=errors[:, mask],
                    capsize=3,
                    label=label,
                    hatch=hatch,
                    alpha=0.5 if hatch else 1.0,
                )
        for k, text in enumerate(frame[f"{measure}_per_run"]):
            runs = [float(v) for v in text.split(" / ")]
            spread = np.linspace(-0.06, 0.06, len(runs)) if len(runs) > 1 else [0.0]
            ax.plot(  # beside the bar's interval, spread so that equal values stay apart
                k + 0.25 + np.asarray(spread),
                runs,
                "o",
                color="C3",
                markersize=3,
                label="each run" if k == 0 else None,
            )
        if measure != "physics_iq":
            ax.axhline(0.5, color="green", linestyle="--", linewidth=1, label="target")
        ax.set_xticks(x, frame["variant"], rotation=30, ha="right")
        ax.set_title(measure.replace("_", " "))
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Pooled over training runs (95 % intervals over runs and clips; one run: clips)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
