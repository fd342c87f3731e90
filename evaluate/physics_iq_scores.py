"""Every dataset score the Physics-IQ reference reports for a run, from per-view metrics,
with the reference's names (google-deepmind/physics-IQ-benchmark, physiq/
calculate_iq_score_stable.py, `IQTable.get_output_dict`), checked against numbers it
produced (tests/test_physics_iq_verified.py).

Input: per view, the generated video's metrics against take 1 and take 2's against take 1
(`physics_iq.ViewMetrics`, per-frame lists already rounded to 4 decimals as the reference
reads them back from its CSV), with each view's scenario name.

- Original (dataset level): per scenario, ST and MSE are the mean over the frames of all
  its views, S and WS the mean over its views; each is then averaged over scenarios (m).
  score_X = m(X) / m(PV_X) for the IoUs, score_mse = m(MSE) - m(PV_MSE);
  final_score_raw = (score_ST + score_S + score_WS) / 3 - score_mse,
  final_score_orig = clip(raw, 0, 1), final_score_stable = the same with every
  component clipped to [0, 1] first.
- Verified (`final_score_view`): per scenario and view, each metric's ratio to its
  physical variance (+ 1e-8), MSE's ratio inverted (a lower error is better), each
  clipped to [0, 1]; a view's score is the mean of its four; the run's score is the mean
  over every scenario and view. score_<metric>_view = the mean of that clipped ratio.
- final_score_origround: the original track's legacy score (calculate_iq_score.py, 0-100,
  physical variances rounded; `physics_iq.aggregate`), what the paper and the Original
  leaderboard report.
All scores but final_score_origround are in [0, 1] (the reference prints them x 100).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from stance.evaluate import physics_iq
from stance.evaluate.physics_iq import ViewMetrics

RATIO_EPS = 1e-8  # the reference's guard in the verified ratios
VERIFIED = "final_score_view"
ORIGINAL = "final_score_orig"
STABLE = "final_score_stable"
LEGACY = "final_score_origround"
# the reference's `_metrics.json` keys, in its order
KEYS = (
    "score_spatiotemporal",
    "score_spatial",
    "score_weighted_spatial",
    "score_mse",
    "final_score_raw",
    STABLE,
    ORIGINAL,
    "variance_mse",
    "variance_spatiotemporal_iou",
    "variance_spatial",
    "variance_weighted_spatial",
    VERIFIED,
    "score_spatiotemporal_view",
    "score_spatial_view",
    "score_weighted_spatial_view",
    "score_mse_view",
    LEGACY,
)


def reference_scores(
    generated: Sequence[ViewMetrics],
    variance: Sequence[ViewMetrics],
    scenarios: Sequence[str],
    views: Sequence[str],
) -> dict[str, float]:
    """The reference's `_metrics.json` of one run (keys `KEYS`)."""
    if not generated or not len(generated) == len(variance) == len(scenarios) == len(views):
        raise ValueError("need one physical-variance record, scenario and view per video")
    check_layout(generated, variance, scenarios, views)
    # as numpy and pandas: x/0 = inf, 0/0 = nan, a mean of nothing but NaN is NaN
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = _original(generated, variance, scenarios)
        out |= _verified(generated, variance)
        legacy = physics_iq.aggregate(
            generated, variance, list(scenarios), list(views), refuse_degenerate=False
        )
    out[LEGACY] = legacy.score
    return {key: float(out[key]) for key in KEYS}


def check_layout(generated, variance, scenarios, views) -> None:
    """What the reference refuses: a scenario without the views of the others, a view
    twice, per-frame lists of different lengths."""
    seen = {scenarios[ks[0]]: [views[k] for k in ks] for ks in physics_iq.group_indices(scenarios)}
    expected = sorted(next(iter(seen.values())))
    for scenario, names in seen.items():
        if sorted(names) != expected or len(set(names)) != len(names):
            raise physics_iq.PhysicsIQError(
                f"scenario {scenario} has the views {sorted(names)}, not each of {expected} "
                "once: every scenario needs the same views (the reference refuses others)"
            )
    lengths = {len(m.st) for m in (*generated, *variance)} | {
        len(m.mse) for m in (*generated, *variance)
    }
    if len(lengths) > 1:
        raise physics_iq.PhysicsIQError(
            f"per-frame metrics of {sorted(lengths)} frames: every video of a run must be "
            "scored on as many frames (fps x 5)"
        )


def _scenario_means(records: Sequence[ViewMetrics], scenarios: Sequence[str]) -> dict:
    """Per metric, the mean over scenarios of each scenario's value (frames of all its
    views pooled for ST and MSE, its views averaged for S and WS). Where the reference
    averages with pandas, NaN is skipped (nanmean); where with numpy, it propagates."""
    groups = physics_iq.group_indices(scenarios)
    per_scenario = {
        "st": [np.mean(np.concatenate([records[k].st for k in ks])) for ks in groups],
        "mse": [np.mean(np.concatenate([records[k].mse for k in ks])) for ks in groups],
        "s": [np.nanmean([records[k].s for k in ks]) for ks in groups],
        "ws": [np.nanmean([records[k].ws for k in ks]) for ks in groups],
    }
    return {key: np.nanmean(values) for key, values in per_scenario.items()}


def _original(generated, variance, scenarios) -> dict[str, float]:
    m, pv = _scenario_means(generated, scenarios), _scenario_means(variance, scenarios)
    score = {
        "score_spatiotemporal": m["st"] / pv["st"],
        "score_spatial": m["s"] / pv["s"],
        "score_weighted_spatial": m["ws"] / pv["ws"],
        "score_mse": m["mse"] - pv["mse"],
    }
    ious = ("score_spatiotemporal", "score_spatial", "score_weighted_spatial")
    raw = sum(score[k] for k in ious) / 3 - score["score_mse"]
    stable = sum(_clip(score[k]) for k in ious) / 3 - _clip(score["score_mse"])
    return {
        **score,
        "final_score_raw": raw,
        STABLE: _clip(stable),
        ORIGINAL: _clip(raw),
        "variance_mse": pv["mse"],
        "variance_spatiotemporal_iou": pv["st"],
        "variance_spatial": pv["s"],
        "variance_weighted_spatial": pv["ws"],
    }


def _verified(generated, variance) -> dict[str, float]:
    """Clipped per-view ratios in the reference's column order (spatial, weighted
    spatial, spatiotemporal, mse), their row means, then means over rows."""
    ratios = np.array(
        [
            [
                g.s / (v.s + RATIO_EPS),
                g.ws / (v.ws + RATIO_EPS),
                np.mean(g.st) / (np.mean(v.st) + RATIO_EPS),
                1.0 / (np.mean(g.mse) / (np.mean(v.mse) + RATIO_EPS)),
            ]
            for g, v in zip(generated, variance, strict=True)
        ]
    )
    clipped = _clip(ratios)
    rows = clipped.mean(axis=1)  # a NaN metric makes its view NaN ...
    columns = np.nanmean(clipped, axis=0)  # ... which the means over views skip (pandas')
    return {
        VERIFIED: np.nanmean(rows),
        "score_spatial_view": columns[0],
        "score_weighted_spatial_view": columns[1],
        "score_spatiotemporal_view": columns[2],
        "score_mse_view": columns[3],
    }


def _clip(value):
    return np.clip(value, 0.0, 1.0)
