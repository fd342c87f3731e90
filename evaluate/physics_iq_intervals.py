"""Bootstrap intervals for Physics IQ over test clips, and paired differences between methods.

Physics IQ is a dataset-level score (each metric's mean over the clips, divided by the
physical variance's), so its interval comes from re-scoring resampled sets of clips, not
from per-clip values. Every method is re-scored on the same resampled sets (drawn by clip
id from one seed), so the difference between two methods is paired: the spread that comes
from which clips happen to be in the test split is shared by both and cancels.

A resampled set is scored as `physics_iq.aggregate` scores the whole split (one view, each
clip its own scenario; the physical variance pooled over the set's frames), which a test
checks draw for draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from stance.evaluate import physics_iq

CONFIDENCE = (2.5, 97.5)  # percentiles of a 95 % interval


def clip_draws(clip_ids: Sequence[str], bootstrap: int, seed: int = 0) -> np.ndarray:
    """(bootstrap, clips) clip ids drawn with replacement; the same ids and seed give the
    same draws, whatever order the ids come in."""
    ids = np.array(sorted(set(clip_ids)), dtype=object)
    rng = np.random.default_rng(seed)
    return ids[rng.integers(len(ids), size=(bootstrap, len(ids)))]


def clip_terms(frame: pd.DataFrame) -> pd.DataFrame:
    """Per clip (indexed by clip id), the sums Physics IQ's means are made of."""

    def frame_mean(values) -> float:
        return float(np.mean(values))

    return pd.DataFrame(
        {
            "st": frame["st"].map(frame_mean).to_numpy(),
            "s": frame["s"].to_numpy(float),
            "ws": frame["ws"].to_numpy(float),
            "mse": frame["mse"].map(frame_mean).to_numpy(),
            "pv_st_sum": frame["pv_st"].map(np.sum).to_numpy(float),
            "pv_st_frames": frame["pv_st"].map(len).to_numpy(float),
            "pv_mse_sum": frame["pv_mse"].map(np.sum).to_numpy(float),
            "pv_mse_frames": frame["pv_mse"].map(len).to_numpy(float),
            "pv_s": frame["pv_s"].to_numpy(float),
            "pv_ws": frame["pv_ws"].to_numpy(float),
        },
        index=frame["clip_id"].to_numpy(),
    )


def scores(frame: pd.DataFrame, draws: np.ndarray) -> np.ndarray:
    """Physics IQ of `frame`'s clips on every draw (a row of clip ids); NaN for a draw
    naming a clip the frame does not have."""
    terms = clip_terms(frame)
    if not terms.index.is_unique:
        raise ValueError("one row per clip expected: a method's clips repeat in its rows")
    missing = ~np.isin(draws, terms.index.to_numpy())
    rows = terms.reindex(draws.ravel()).to_numpy().reshape(*draws.shape, terms.shape[1])
    means = np.nanmean(rows, axis=1)
    sums = np.nansum(rows, axis=1)
    col = {name: k for k, name in enumerate(terms.columns)}
    out = np.array(
        [
            physics_iq.score_from_means(
                m[col["st"]],
                m[col["s"]],
                m[col["ws"]],
                m[col["mse"]],
                round(float(t[col["pv_st_sum"]] / t[col["pv_st_frames"]]), 4),
                round(float(m[col["pv_s"]]), 5),
                round(float(m[col["pv_ws"]]), 4),
                round(float(t[col["pv_mse_sum"]] / t[col["pv_mse_frames"]]), 4),
            )
            for m, t in zip(means, sums, strict=True)
        ]
    )
    out[missing.any(axis=1)] = np.nan
    return out


def interval(values: np.ndarray) -> str:
    """A 95 % percentile interval of bootstrap values, "[low, high]" ("n/a" if none)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return "n/a"
    return format_interval(*np.percentile(values, CONFIDENCE))


def format_interval(low: float, high: float) -> str:
    """ "[low, high]" to two decimals, "n/a" for NaN: every interval in the tables."""
    return "n/a" if np.isnan(low) else f"[{low:.2f}, {high:.2f}]"


def bootstrap_scores(
    rows: pd.DataFrame, splits: Mapping[str, bool | None], bootstrap: int, seed: int = 0
) -> dict[tuple[str, str], np.ndarray]:
    """{(method, split): Physics IQ on each bootstrap draw}, every method of a split scored
    on the same draws of that split's clip ids."""
    out = {}
    for split, small in splits.items():
        part = rows if small is None else rows[rows["small_object_split"] == small]
        if not len(part):
            continue
        draws = clip_draws(part["clip_id"].tolist(), bootstrap, seed)
        for method, frame in part.groupby("method", sort=False):
            out[(method, split)] = scores(frame, draws)
    return out


def paired_difference(
    draws: Mapping[tuple[str, str], np.ndarray], method: str, reference: str, split: str
) -> dict[str, object]:
    """`method` minus `reference` on the same draws: the interval of the difference and the
    share of draws where `method` scores higher (a tie, as scores are rounded to 0.01,
    counts half). Only methods scored on every clip of the split are compared."""
    ours, theirs = draws.get((method, split)), draws.get((reference, split))
    if ours is None or theirs is None:
        return {"difference_ci95": f"n/a (no {reference} row)", "above_share": np.nan}
    difference = ours - theirs
    if not np.isfinite(difference).all():
        return {"difference_ci95": "n/a (not scored on the same clips)", "above_share": np.nan}
    above = float(np.mean((difference > 0) + 0.5 * (difference == 0)))
    return {"difference_ci95": interval(difference), "above_share": above}


def order_share(
    draws: Mapping[tuple[str, str], np.ndarray], order: Sequence[str], split: str = "all"
) -> float:
    """Share of bootstrap draws in which the methods score in `order` (highest first),
    strictly (a tie breaks the order); NaN when one of them has no scores on `split` or
    was not scored on every clip of it."""
    if any((m, split) not in draws for m in order):
        return np.nan
    stacked = np.stack([draws[(m, split)] for m in order])
    if not np.isfinite(stacked).all():
        return np.nan
    return float((np.diff(stacked, axis=0) < 0).all(axis=0).mean())
