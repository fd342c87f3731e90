"""Gather per-shard metrics into the paper's tables (CSV, Markdown, LaTeX) and a plot.

Table 1: methods x metrics (Physics-IQ and its four parts, FVD (I3D) and content-debiased
FVD (VideoMAE-v2) with N, frames and bootstrap intervals, PSNR, SSIM, trajectory errors)
per split (all, regular, small-object). Ablation table: the trained variants with their
aux stream, cue mode and token budget. Cue-following table: motion error of moving
instances (against the variant without cues) and the cue-flip reversal rate, with
bootstrap intervals over clips. The paper's published numbers are shown in their
own, labelled table, beside ours where a row maps to one of the paper's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from stance.errors import UserError
from stance.evaluate import fvd, motion, physics_iq
from stance.evaluate import physics_iq_intervals as piq_intervals
from stance.settings import Evaluate, Generate, Train

log = logging.getLogger(__name__)

# STANCE (arXiv 2510.14588), Physics IQ; the row names of our variants they correspond to.
PUBLISHED = [
    ("STANCE (Table 1)", 47.62, "stance_variant"),
    ("SG-I2V", 15.42, "SG-I2V"),
    ("DragAnything", 24.86, "DragAnything"),
    ("VLIPP", 36.40, "VLIPP"),
    ("RGB-only (ablation)", 46.89, "rgb_only"),
    ("RGB+Depth (ablation)", 49.03, "rgb_depth"),
    ("RGB+Seg (ablation)", 47.96, "rgb_seg"),
]
SPLITS = {"all": None, "regular": False, "small-object": True}
# Fréchet distances in the tables: column -> the feature network behind it.
FEATURE_NETWORKS = {"fvd": "I3D", "cd_fvd": "VideoMAE-v2"}


def records(frame: pd.DataFrame, prefix: str = "") -> list[physics_iq.ViewMetrics]:
    return [
        physics_iq.ViewMetrics(
            list(r[f"{prefix}st"]), r[f"{prefix}s"], r[f"{prefix}ws"], list(r[f"{prefix}mse"])
        )
        for _, r in frame.iterrows()
    ]


def instance_stats(
    per_clip: pd.Series, bootstrap: int, seed: int = 0
) -> tuple[float, float, float, int]:
    """(mean over all instances, 95 % bootstrap interval's low and high over clips,
    instance count) of per-clip lists of instance values (numbers, or booleans for a rate)."""
    lists = [np.asarray(v, dtype=float) for v in per_clip if v is not None and len(v)]
    if not lists:
        return np.nan, np.nan, np.nan, 0
    values = np.concatenate(lists)
    rng = np.random.default_rng(seed)
    means = [
        np.concatenate([lists[i] for i in rng.integers(len(lists), size=len(lists))]).mean()
        for _ in range(bootstrap)
    ]
    low, high = np.percentile(means, [2.5, 97.5]) if means else (np.nan, np.nan)
    return float(values.mean()), float(low), float(high), len(values)


def instance_mean(per_clip: pd.Series, bootstrap: int, seed: int = 0) -> tuple[float, str, int]:
    """(mean over all instances, 95% bootstrap interval over clips, instance count)."""
    mean, low, high, count = instance_stats(per_clip, bootstrap, seed)
    return mean, piq_intervals.format_interval(low, high), count


def per_instance(frame: pd.DataFrame, measure, *conditions: str) -> pd.Series:
    """Per-clip lists of `measure(*along-direction lists, |truth|)` over the rows whose
    videos cover every named cue condition ([] where one is missing)."""
    columns = [motion.along_column(c) for c in conditions]

    def clip(row):
        lists = [np.asarray(row[c], dtype=float) for c in columns]
        if any(len(v) == 0 for v in lists):
            return []
        return measure(*lists, np.asarray(row["instance_truth_px"], dtype=float)).tolist()

    return frame.apply(clip, axis=1) if len(frame) else pd.Series([], dtype=object)


def cue_control(frame: pd.DataFrame, bootstrap: int) -> dict[str, Any]:
    """Directional response (cues as given and placebo), motion gain, the share of
    instances that follow the arrow with its one-sided binomial p-value, the placebo's
    reversal rate (reversal's measured chance level) and a still video's motion error."""
    out: dict[str, Any] = {}
    for name, conditions in (
        ("directional_response", ("", "flipped")),
        ("placebo_response", ("placebo", "placebo.flipped")),
    ):
        mean, low, high, n = instance_stats(
            per_instance(frame, motion.directional_response, *conditions), bootstrap
        )
        out |= {
            name: mean,
            f"{name}_ci95": piq_intervals.format_interval(low, high),
            f"{name}_instances": n,
        }
    mean, low, high, _ = instance_stats(per_instance(frame, motion.motion_gain, ""), bootstrap)
    out |= {"motion_gain": mean, "motion_gain_ci95": piq_intervals.format_interval(low, high)}
    lists = per_instance(frame, lambda a, b, t: a - b, "", "flipped")
    a_minus_b = np.concatenate([np.asarray(v, float) for v in lists if len(v)] or [[]])
    share, p_value, _ = motion.follows_share(a_minus_b, np.zeros_like(a_minus_b))
    out |= {"follows_share": share, "follows_p_value": p_value}
    flips = per_instance(
        frame, lambda a, b, t: np.sign(a) * np.sign(b) < 0, "placebo", "placebo.flipped"
    )
    out["placebo_reversal"] = instance_stats(flips, 0)[0]
    out["still_error_px"] = instance_stats(frame["instance_truth_px"], 0)[0]
    return out


def summarise(frame: pd.DataFrame, bootstrap: int) -> dict[str, Any]:
    scores = physics_iq.aggregate(records(frame), records(frame, "pv_"))
    row = {
        "clips": len(frame),
        "frames": int(frame["frames"].min()),
        "physics_iq": scores.score,
        "physics_iq_per_sample": round(scores.per_sample, 2),
        "st_iou": scores.st,
        "s_iou": scores.s,
        "ws_iou": scores.ws,
        "mse": scores.mse,
        "pv_st": scores.pv_st,
        "pv_s": scores.pv_s,
        "pv_ws": scores.pv_ws,
        "pv_mse": scores.pv_mse,
        "psnr": frame["psnr"].replace(np.inf, np.nan).mean(),
        "ssim": frame["ssim"].mean(),
        "trajectory_error_px": frame["trajectory_error"].mean(),
        "motion_centroid_error_px": frame["motion_centroid_error"].mean(),
        "real_motion_px": frame["real_motion_px"].mean(),
        "generated_motion_px": frame["generated_motion_px"].mean(),
    }
    error, error_ci, moving = instance_mean(frame["instance_motion_error_px"], bootstrap)
    flip, flip_ci, flipped = instance_mean(frame["instance_flip_reversed"], bootstrap)
    row.update(
        motion_error_px=error,
        motion_error_ci95=error_ci,
        moving_instances=moving,
        cue_flip_reversal=flip,
        cue_flip_ci95=flip_ci,
        cue_flip_instances=flipped,
        **cue_control(frame, bootstrap),
    )
    for name, network in FEATURE_NETWORKS.items():
        if f"{name}_real" in frame and len(frame) >= 2:
            real = np.stack(frame[f"{name}_real"].to_list())
            fake = np.stack(frame[f"{name}_generated"].to_list())
            row[name] = fvd.fvd_from_features(real, fake)
            row[f"{name}_ci95"] = "[{:.1f}, {:.1f}]".format(*fvd.bootstrap(real, fake, bootstrap))
        else:
            row[name], row[f"{name}_ci95"] = np.nan, f"n/a (no {network} weights configured)"
    return row


def table1(
    rows: pd.DataFrame,
    bootstrap: int = 200,
    piq_draws: Mapping[tuple[str, str], np.ndarray] | None = None,
) -> pd.DataFrame:
    """Per method and split, every measure; Physics IQ's interval from `piq_draws`
    (`physics_iq_intervals.bootstrap_scores` of the same rows; drawn here when None)."""
    if piq_draws is None:
        piq_draws = piq_intervals.bootstrap_scores(rows, SPLITS, bootstrap)
    out = []
    for method, frame in rows.groupby("method", sort=False):
        for split, small in SPLITS.items():
            part = frame if small is None else frame[frame["small_object_split"] == small]
            if len(part) == 0:
                continue
            row = {"method": method, "split": split, **summarise(part, bootstrap)}
            row["physics_iq_ci95"] = piq_intervals.interval(piq_draws[(method, split)])
            out.append(row)
    return pd.DataFrame(out)


def trained_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of trained variants (their `aux` is set; baselines and external methods
    leave it empty)."""
    return rows[rows["aux"].notna()]


def variants_of(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{variant: identity} of the trained variants among the rows."""
    if "aux" not in rows:
        return {}
    trained = trained_rows(rows).drop_duplicates("method")
    return {
        r.method: {"aux": r.aux, "cue_mode": r.cue_mode, "motion_tokens": int(r.motion_tokens)}
        for r in trained.itertuples()
    }


def ablation(
    table: pd.DataFrame,
    variants: Mapping[str, Mapping[str, Any]],
    piq_draws: Mapping[tuple[str, str], np.ndarray] | None = None,
    reference: str | None = None,
) -> pd.DataFrame:
    """The trained variants' Physics IQ per split with 95 % intervals and, against the
    `reference` variant, the paired difference on all clips: its interval and the share of
    bootstrap draws in which the variant scores higher."""
    out = []
    for name, variant in variants.items():
        row = {
            "variant": name,
            "aux": variant["aux"],
            "cue_mode": variant["cue_mode"],
            "motion_tokens": variant["motion_tokens"]
            if variant["cue_mode"] == "dense_rope"
            else "-",
        }
        for split in SPLITS:
            match = table[(table["method"] == name) & (table["split"] == split)]
            row[f"physics_iq_{split}"] = match["physics_iq"].iloc[0] if len(match) else np.nan
            row[f"physics_iq_{split}_ci95"] = (
                match["physics_iq_ci95"].iloc[0] if len(match) else "n/a"
            )
        if piq_draws is not None and reference in variants:
            row |= reference_columns(row, name, table, piq_draws, reference)
        all_rows = table[(table["method"] == name) & (table["split"] == "all")]
        for network in FEATURE_NETWORKS:
            row[network] = all_rows[network].iloc[0] if len(all_rows) else np.nan
        out.append(row)
    return pd.DataFrame(out)


def reference_columns(
    row: Mapping[str, Any],
    name: str,
    table: pd.DataFrame,
    piq_draws: Mapping[tuple[str, str], np.ndarray],
    reference: str,
) -> dict[str, Any]:
    """A variant's Physics IQ minus the reference variant's, paired over clips."""
    if name == reference:
        return {
            "reference": reference,
            "physics_iq_difference": 0.0,
            "physics_iq_difference_ci95": "-",
            "above_reference_share": np.nan,
        }
    theirs = table[(table["method"] == reference) & (table["split"] == "all")]["physics_iq"]
    paired = piq_intervals.paired_difference(piq_draws, name, reference, "all")
    return {
        "reference": reference,
        "physics_iq_difference": row["physics_iq_all"] - theirs.iloc[0] if len(theirs) else np.nan,
        "physics_iq_difference_ci95": paired["difference_ci95"],
        "above_reference_share": paired["above_share"],
    }


def paper_order(variants: Mapping[str, Mapping[str, Any]], stance_variant: str) -> list[str]:
    """The Dense RoPE variants in the paper's ablation order of Physics IQ (RGB+Depth >
    RGB+Seg > RGB-only), named as in this run; [] when one of the three is missing."""
    order = []
    for aux in ("depth", "seg", "none"):
        names = [
            n for n, v in variants.items() if v["aux"] == aux and v["cue_mode"] == "dense_rope"
        ]
        if aux == "none" and stance_variant in names:
            names = [stance_variant]
        if not names:
            return []
        order.append(names[0])
    return order


def ordering_note(
    variants: Mapping[str, Mapping[str, Any]],
    stance_variant: str,
    piq_draws: Mapping[tuple[str, str], np.ndarray],
    bootstrap: int,
) -> str | None:
    """How often the paper's ablation order holds when the test clips are resampled."""
    order = paper_order(variants, stance_variant)
    if not order:
        return None
    shares = {split: piq_intervals.order_share(piq_draws, order, split) for split in SPLITS}
    per_split = ", ".join(
        f"{split} {share:.0%}"
        for split, share in shares.items()
        if split != "all" and share == share
    )
    return (
        f"Ablation order: the paper's Physics IQ order {' > '.join(order)} holds in "
        f"{shares['all']:.0%} of {bootstrap} bootstrap resamplings of the test clips "
        f"({per_split}), every variant scored on the same resampled clips. Physics IQ "
        "intervals are 95 % bootstrap intervals over clips; an ablation row's difference "
        "from the reference variant and the share of resamplings where it scores higher "
        "(a tie counting half) are paired the same way."
    )


CUE_COLUMNS = [
    "method",
    "split",
    "clips",
    "moving_instances",
    "directional_response",
    "directional_response_ci95",
    "placebo_response",
    "placebo_response_ci95",
    "motion_gain",
    "motion_gain_ci95",
    "follows_share",
    "follows_p_value",
    "motion_error_px",
    "motion_error_ci95",
    "still_error_px",
    "cue_flip_reversal",
    "cue_flip_ci95",
    "placebo_reversal",
]


def cue_following(table: pd.DataFrame, variants: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per method and split: the control measures (directional response and its placebo,
    motion gain, follows share and p-value), motion error with its ratio to the trained
    variant without cues and a still video's error, and the cue-flip reversal with the
    placebo's reversal (its measured chance level)."""
    uncued = [name for name, v in variants.items() if v["cue_mode"] == "none"]
    out = table[[c for c in CUE_COLUMNS if c in table]].copy()
    out["error_vs_no_cues"] = np.nan
    if uncued:
        base = table[table["method"] == uncued[0]].set_index("split")["motion_error_px"]
        out["error_vs_no_cues"] = out["motion_error_px"] / out["split"].map(base)
    return out


def cue_following_note() -> str:
    return (
        f"Cue following: instances moving >= {motion.MIN_MOTION_PX:g} px in the ground truth, "
        "tracked by chained Farneback flow from their keyframe masks; a, b = displacement "
        "along the rendered direction with the cues as given and with every arrow reversed "
        "(same seed). directional_response = (a - b) / (2 |truth|) (1 = follows the arrow "
        "fully both ways; chance level 0; exactly 0 for a method without cues, whose "
        "reversed video is its own); placebo_response = the same with another test clip's "
        "cues (must be ~0); motion_gain = a / |truth| (0 = still, 1 = as far as the truth; "
        "the twin's, a re-simulation of the rendered clip, is the most this tracker reads: "
        "the measurable ceiling); "
        "follows_share = share with a > b (chance 0.5; ties count as not following), "
        "follows_p_value its one-sided binomial p-value against 0.5; motion error = "
        "|generated - rendered displacement| (chance level: still_error_px, a still "
        "video's error); cue_flip_reversal = share whose displacement along the rendered "
        "direction changes sign when the arrows are reversed (chance level: "
        "placebo_reversal, the same share under the placebo, about 0.5 for a model whose "
        "motion ignores the arrow). Intervals: 95 % bootstrap over clips. Targets: "
        "directional_response >= 0.5 (interval's low end >= 0.3), follows_share >= 0.8, "
        "motion_gain >= 0.5, error_vs_no_cues <= 0.7, placebo_response within +-0.05."
    )


def published(table: pd.DataFrame, stance_variant: str) -> pd.DataFrame:
    out = []
    for label, value, ours in PUBLISHED:
        method = stance_variant if ours == "stance_variant" else ours
        match = table[(table["method"] == method) & (table["split"] == "all")]
        out.append(
            {
                "paper row": label,
                "paper Physics IQ (published)": value,
                "our row": method if len(match) else "-",
                "our Physics IQ (this run)": match["physics_iq"].iloc[0] if len(match) else np.nan,
            }
        )
    return pd.DataFrame(out)


# What the Markdown and LaTeX tables show (the CSVs keep every column): the paper's
# Table 1 columns, and the cue-control measures without their bookkeeping columns.
SHOWN = {
    "table1": [
        "method",
        "split",
        "clips",
        "physics_iq",
        "physics_iq_ci95",
        "st_iou",
        "s_iou",
        "ws_iou",
        "mse",
        "fvd",
        "cd_fvd",
        "psnr",
        "ssim",
        "trajectory_error_px",
    ],
    "cue_following": [
        "method",
        "split",
        "moving_instances",
        "directional_response",
        "directional_response_ci95",
        "placebo_response",
        "motion_gain",
        "motion_gain_ci95",
        "follows_share",
        "follows_p_value",
        "motion_error_px",
        "error_vs_no_cues",
        "still_error_px",
        "cue_flip_reversal",
        "placebo_reversal",
    ],
}


def shown(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    columns = SHOWN.get(name)
    out = frame if columns is None else frame[[c for c in columns if c in frame]].copy()
    if "follows_p_value" in out:  # small p-values in two significant digits, not 0.00
        out["follows_p_value"] = out["follows_p_value"].map(
            lambda p: "n/a" if pd.isna(p) else f"{p:.2g}"
        )
    return out


# Why a shown column can read n/a (FVD columns carry theirs in their _ci95 column).
NOT_MEASURED = {
    "trajectory_error_px": "measured for RGB+Seg variants only (tracks come from their "
    "generated segmentation stream)",
    "follows_p_value": "no moving instance",
    "above_reference_share": "the reference variant's own row, or a variant not scored on "
    "every clip the reference was",
}


def missing_values(frame: pd.DataFrame, shown_frame: pd.DataFrame) -> list[str]:
    """One line per shown column with n/a cells, saying why they are not measured."""
    lines = []
    for column in shown_frame.columns:
        if not shown_frame[column].isna().any():
            continue
        reasons = frame.get(f"{column}_ci95", pd.Series(dtype=object)).astype(str)
        stated = sorted(
            {r.removeprefix("n/a (").rstrip(")") for r in reasons if r.startswith("n/a (")}
        )
        reason = "; ".join(stated) or NOT_MEASURED.get(column, "not measured for these rows")
        lines.append(f"n/a in {column}: {reason}.")
    return lines


def write_all(tables: Mapping[str, pd.DataFrame], out_dir: Path, notes: Sequence[str]) -> None:
    """Every table as CSV (all columns), LaTeX and Markdown (the SHOWN columns)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Results", "", *notes, ""]
    for name, frame in tables.items():
        frame.to_csv(out_dir / f"{name}.csv", index=False)
        (out_dir / f"{name}.tex").write_text(
            shown(name, frame).to_latex(index=False, float_format="%.2f", na_rep="n/a")
        )
        table = shown(name, frame).to_markdown(index=False, floatfmt=".2f")
        lines += [f"## {name}", "", table.replace(" nan ", " n/a "), ""]
        lines += [*missing_values(frame, shown(name, frame)), ""]
        if SHOWN.get(name):
            lines += [f"All columns: {name}.csv.", ""]
    (out_dir / "tables.md").write_text("\n".join(lines))


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="method", columns="split", values="physics_iq")
    ax = pivot.plot.bar(figsize=(7, 3.5), rot=30, yerr=error_bars(table, pivot), capsize=2)
    ax.axhline(100, color="grey", linestyle="--", linewidth=1)
    ax.set(
        ylabel="Physics IQ (higher = better)",
        xlabel="",
        title="Physics IQ per method (95 % bootstrap intervals over clips)",
    )
    ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    plt.close(ax.figure)


def error_bars(table: pd.DataFrame, pivot: pd.DataFrame) -> np.ndarray | None:
    """Physics IQ's intervals as matplotlib's (splits, 2, methods) distances below and above
    each bar; None when the table has no intervals."""
    if "physics_iq_ci95" not in table:
        return None
    bounds = table.set_index(["method", "split"])["physics_iq_ci95"].map(parse_interval)
    bars = np.zeros((len(pivot.columns), 2, len(pivot.index)))
    for j, split in enumerate(pivot.columns):
        for i, method in enumerate(pivot.index):
            low, high = bounds.get((method, split), (np.nan, np.nan))
            value = pivot.loc[method, split]
            bars[j, :, i] = (value - low, high - value)
    return np.nan_to_num(np.clip(bars, 0, None))


def parse_interval(text: str) -> tuple[float, float]:
    """ "[low, high]" -> (low, high); NaNs for "n/a"."""
    try:
        low, high = (float(x) for x in str(text).strip("[]").split(","))
    except ValueError:
        return np.nan, np.nan
    return low, high


CUE_PANELS = (  # column, title, chance level, target
    ("directional_response", "Directional response (a - b) / 2|truth|", 0.0, 0.5),
    ("motion_gain", "Motion gain a / |truth|", 0.0, 0.5),
    ("follows_share", "Share with a > b", 0.5, 0.8),
    ("motion_error_px", "Motion error, px (lower = better)", None, None),
)


def plot_cue_following(table: pd.DataFrame, path: Path) -> None:
    """The control measures per method (all test clips) with 95 % intervals, their
    chance levels (grey) and targets (green): directional response beside its placebo,
    motion gain, follows share, and motion error beside a still video's error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["split"] == "all"].reset_index(drop=True)
    fig, axes = plt.subplots(1, len(CUE_PANELS), figsize=(4 * len(CUE_PANELS), 3.6))
    x = np.arange(len(rows))
    for ax, (column, title, chance, target) in zip(axes, CUE_PANELS, strict=True):
        paired = {
            "directional_response": "placebo_response",
            "motion_error_px": "still_error_px",
        }.get(column)
        width = 0.4 if paired else 0.8
        bars = [(column, -width / 2 if paired else 0, "C0", "model")]
        if paired:
            label = "placebo" if paired == "placebo_response" else "still video"
            bars.append((paired, width / 2, "0.6", label))
        for name, shift, colour, label in bars:
            values = rows[name].astype(float) if name in rows else pd.Series(np.nan, x)
            ci = rows.get(f"{name}_ci95", pd.Series(["n/a"] * len(rows)))
            low, high = np.array([parse_interval(c) for c in ci]).T.reshape(2, -1)
            errors = np.abs(np.vstack([values - low, high - values]))
            ax.bar(
                x + shift,
                values.fillna(0),
                width,
                color=colour,
                label=label,
                yerr=np.nan_to_num(errors),
                capsize=3,
            )
            for k in np.flatnonzero(values.isna().to_numpy()):  # a missing bar, labelled
                ax.text(x[k] + shift, 0, "n/a", ha="center", va="bottom", fontsize=7)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="-", linewidth=1)
        if target is not None:
            ax.axhline(target, color="green", linestyle="--", linewidth=1)
        ax.set_xticks(x, rows["method"], rotation=30, ha="right")
        ax.set_title(title, fontsize=9)
        if paired:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def method_note(train: Train, generate: Generate) -> str:
    """How the trained variants were trained and sampled, for the tables' notes: cue
    dropout, timestep draw and loss weighting in fine-tuning, and the classifier-free
    guidance on text and cues."""
    scale, cue = generate.guidance_scale, generate.cue_guidance
    if scale <= 1 and cue is None:
        guidance = "no classifier-free guidance"
    elif cue is None:
        guidance = (
            f"classifier-free guidance {scale:g}, joint on text and cues (the authors': the "
            "unconditional branch drops both)"
        )
    else:
        text = f"text guidance {scale:g}" if scale > 1 else "no text guidance"
        guidance = f"{text} and a separate cue guidance {cue:g}"
        if generate.cue_guidance_above > 0:
            guidance += (
                f" on the steps with timestep t >= {generate.cue_guidance_above:g} T "
                "(T the scheduler's training timesteps)"
            )
    if generate.use_dynamic_cfg and scale > 1:
        guidance += " (text scale on diffusers' dynamic cosine schedule, use_dynamic_cfg)"
    if generate.project_output_span:
        guidance += ", latents kept in the output layer's span (project_output_span)"
    draw = train.timestep_sampling
    timesteps = (
        "uniform timesteps"
        if draw.distribution == "uniform"
        else f"logit-normal timesteps (location {draw.location:g}, scale {draw.scale:g})"
    )
    loss = (
        f"loss motion weighting {train.motion_weighting:g}"
        if train.motion_weighting > 0
        else "the plain diffusion loss"
    )
    return (
        f"STANCE variants: fine-tuned with cue dropout {train.cue_dropout:g}, {timesteps}, "
        f"{loss}, auxiliary stream conditioned on its "
        f"{'own' if train.aux_keyframe == 'aux' else 'RGB'} keyframe, keyframe noise "
        f"{train.image_noise.replace('_', ' ')}; sampled with {generate.steps} steps, "
        f"{guidance}."
    )


def evaluation_note(settings: Evaluate) -> str:
    """How Physics-IQ was computed: the reference benchmark's settings, or a label saying
    which differ (such scores are not comparable with published ones)."""
    options = physics_iq.Options.from_settings(settings)
    if options.reference:
        return (
            "Physics-IQ with the reference benchmark's settings (first fps x 5 frames, "
            "a quarter of the real clip's size, masks through mp4v files)."
        )
    size = "a quarter" if options.scale == "reference" else f"{options.scale:g} x"
    return (
        f"NON-REFERENCE Physics-IQ settings (not comparable with published scores): {size} "
        f"the real clip's size, mask threshold {options.threshold}, lossy mp4v masks "
        f"{options.lossy_masks}."
    )


def replicates_note(rows: pd.DataFrame, out_dir: Path, settings: Evaluate) -> list[str]:
    """Variants trained alike but for their seed, pooled into replicates.md (the note
    that says so; none without replicates)."""
    from stance.evaluate import replicates  # which imports this module

    for stale in replicates.OUTPUTS:  # of an earlier configuration
        (out_dir / stale).unlink(missing_ok=True)
    groups = replicates.replicate_groups(rows, settings.stance_variant)
    if not groups:
        return []
    trained = trained_rows(rows)
    unknown = sorted(set(trained[trained["train_seed"].isna()]["method"]))
    if unknown:  # rows of an evaluation that did not record the seed
        log.warning("no training seed in the rows of %s: not pooled with replicates", unknown)
    listed = "; ".join(f"{group}: {', '.join(members)}" for group, members in groups.items())
    try:
        replicates.write(
            replicates.as_runs(rows, groups),
            out_dir,
            settings.stance_variant,
            f"Variants trained alike but for their seed, pooled as runs ({listed})",
            settings.bootstrap,
        )
    except UserError as error:  # the tables stand without the pooling
        return [f"Replicates ({listed}) not pooled: {error}"]
    return [
        f"Replicates (variants trained alike but for their seed): {listed}. Each group is "
        "pooled over its seeds, with intervals over seeds and clips, in replicates.md."
    ]


def gather(
    paths: Sequence[Path],
    out_dir: Path,
    settings: Evaluate,
    sampling: tuple[Train, Generate] | None = None,
) -> None:
    rows = pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)
    piq_draws = piq_intervals.bootstrap_scores(rows, SPLITS, settings.bootstrap)
    main = table1(rows, settings.bootstrap, piq_draws)
    variants = variants_of(rows)
    tables = {
        "table1": main,
        "ablation": ablation(main, variants, piq_draws, settings.stance_variant),
        "cue_following": cue_following(main, variants),
        "published": published(main, settings.stance_variant),
    }
    notes = [
        f"{rows['clip_id'].nunique()} test clips; physical variance from "
        + (
            "perturbed twin renders"
            if settings.pv_source == "twin"
            else "take 2 = take 1 (deterministic)"
        )
        + "; "
        + evaluation_note(settings),
        "Published numbers are the paper's (not reproduced here); ours come from this run's "
        "configuration: the tiny default trains random-weight models for a few steps, "
        "configs/small.yaml small models from scratch, configs/paper.yaml the paper's.",
    ]
    if sampling is not None:
        notes.append(method_note(*sampling))
    notes.append(cue_following_note())
    order = ordering_note(variants, settings.stance_variant, piq_draws, settings.bootstrap)
    if order:
        notes.append(order)
    notes += replicates_note(rows, out_dir, settings)
    if (rows["real_motion_px"] == 0).all():
        notes.append(
            "WARNING: the ground-truth clips produce no motion masks at this "
            "resolution (objects smaller than the 5x5 blur/opening), so Physics-IQ "
            "is degenerate here: a static video scores ~100. Use larger renders."
        )
    write_all(tables, out_dir, notes)
    plot(main, out_dir / "physics_iq.png")
    plot_cue_following(tables["cue_following"], out_dir / "cue_following.png")
    log.info("tables for %d methods -> %s", main["method"].nunique(), out_dir)
