"""Physics IQ on the benchmark's real videos: a variant's generated runs (one per seed)
scored against the testing takes (`score_runs`), runs gathered into mean +- std over seeds
and per category (`gather`), as the leaderboard's rules ask (4 runs, mean and sample
standard deviation). The takes of a view are decoded and their masks computed once for all
runs (the reference recomputes them for every run), the videos of a view in parallel.

Per view the numbers are `physics_iq.score_view` with the configured options (the
reference's by default): take 1 and take 2 of the benchmark at render.fps (resampled from
30FPS as the reference's fps_changer when that rate is not in the download) and the
generated `<ID>_<view>_<scenario>.mp4`. Real motion masks are the download's
video-masks/real/<fps>FPS files where that folder exists, read as the reference reads
them, else computed from the takes the way the reference computes missing ones (at the
video's own size, through an mp4v file). A run's scores are every score the reference
reports (`physics_iq_scores`); a category's are the same formulas over its views only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from stance import physics_iq_folder as folder
from stance.evaluate import physics_iq, physics_iq_scores, tables

log = logging.getLogger(__name__)
RUN_KEY = b"stance.physics_iq_run"


def score_runs(
    benchmark: Path,
    runs: Sequence[Path],
    fps: int,
    options: physics_iq.Options,
    descriptions: Path | None = None,
    track: str = "auto",
) -> list[list[dict[str, Any]]]:
    """Per run folder, one row per view: its per-view metrics against take 1 (the run's
    video and take 2). Each view's takes are prepared once for all runs, with the
    download's real masks where it ships them (either track, as the reference)."""
    root = folder.root_of(benchmark, track)
    rows: list[list[dict[str, Any]]] = [[] for _ in runs]
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        views = folder.scan(root, fps, descriptions, generation_inputs=False)
        for item in tqdm(views, desc="physics-iq", unit="view"):
            for k, row in enumerate(score_item(root, item, runs, fps, options, pool)):
                rows[k].append(row)
    return rows


def score_item(root: Path, item, runs: Sequence[Path], fps: int, options, pool) -> list[dict]:
    """One view's row per run; its videos decoded and prepared in the pool's threads."""
    paths = {f"run{k}": run / f"{item.name}.mp4" for k, run in enumerate(runs)}
    for path in paths.values():
        if not path.exists():
            raise physics_iq.PhysicsIQError(
                f"{path} is missing: every benchmark view needs a generated video named "
                "<ID>_<view>_<scenario>.mp4; rerun the physics_iq_generate job"
            )
    # the takes at fps (resampled where the download lacks that rate), runs as generated
    takes = [
        pool.submit(folder.read_at, folder.testing_path(root, item, k, fps), fps) for k in (1, 2)
    ]
    runs_read = {key: pool.submit(folder.read_rgb, path) for key, path in paths.items()}
    mask_paths = {f"take{k}": folder.real_mask_path(root, item, k, fps) for k in (1, 2)}
    masks_read = {
        key: pool.submit(folder.read_mask_video, path) for key, path in mask_paths.items() if path
    }
    take1, take2 = (future.result() for future in takes)
    generated = {key: future.result() for key, future in runs_read.items()}
    masks = {key: future.result() for key, future in masks_read.items()}
    scored = physics_iq.score_view(
        take1,
        {"take2": take2, **generated},
        fps,
        options,
        pool=pool,
        shipped_masks=masks,
        names={
            "take1": f"{item.name} take 1",
            "take2": f"{item.name} take 2",
            **{key: str(path) for key, path in paths.items()},
        },
    )
    pv = scored.metrics["take2"]
    view = {
        "id": item.id,
        "view": item.view,
        "scenario": item.scenario,
        "category": item.category,
    }
    return [{**view, **scored.metrics[f"run{k}"].columns(pv)} for k in range(len(runs))]


def write_run(rows: Sequence[Mapping[str, Any]], out: Path, run: Mapping[str, Any]) -> Path:
    """The rows as parquet, with the run (variant, seed, fps, options) in its metadata."""
    table = pa.Table.from_pylist(list(rows))
    table = table.replace_schema_metadata({RUN_KEY: json.dumps(dict(run)).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    return out


def read_run(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if RUN_KEY not in metadata:
        raise physics_iq.PhysicsIQError(
            f"{path} is not a Physics-IQ benchmark run (stance evaluate physics-iq writes them)"
        )
    return table.to_pandas(), json.loads(metadata[RUN_KEY])


def run_scores(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{"all": scores, <category>: scores, ...} of one run: every score the reference
    reports (`physics_iq_scores.KEYS`)."""
    out = {}
    for name, part in [("all", frame), *frame.groupby("category", sort=True)]:
        out[name] = physics_iq_scores.reference_scores(
            tables.records(part),
            tables.records(part, "pv_"),
            list(part["scenario"]),
            list(part["view"]),
        )
    return out


def points(key: str, value: float) -> float:
    """A score on the 0-100 scale the reference prints (the legacy score already is)."""
    return value if key == physics_iq_scores.LEGACY else 100.0 * value


def summary(runs: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """variant -> its run parquets  =>  one row per variant, category and score (0-100):
    mean, sample std over runs, the run count and how the runs were made."""
    rows = []
    for variant, paths in sorted(runs.items()):
        per_run, records = [], []
        for path in paths:
            frame, run = read_run(path)
            per_run.append(run_scores(frame))
            records.append({"views": len(frame), **run})
        settings = {
            "views": int(records[0]["views"]),
            "reference_settings": all(r["reference"] for r in records),
            "track": _one(records, "track", "unknown"),
            "prompts": _one(records, "prompts", "unknown"),
        }
        for category in per_run[0]:
            for key in physics_iq_scores.KEYS:
                values = pd.Series(
                    [points(key, r[category][key]) for r in per_run if category in r]
                ).dropna()
                rows.append(
                    {
                        "variant": variant,
                        "category": category,
                        "score": key,
                        "mean": float(values.mean()) if len(values) else np.nan,
                        "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                        "runs": len(per_run),
                        "finite_runs": len(values),
                        **settings,
                    }
                )
    return pd.DataFrame(rows)


def _one(records: Sequence[Mapping[str, Any]], key: str, default: str) -> str:
    """The runs' common value of `key` (`default` for runs that did not record it)."""
    values = sorted({str(r.get(key, default)) for r in records})
    return values[0] if len(values) == 1 else "mixed: " + ", ".join(values)


def headline(tracks: Sequence[str]) -> str:
    """The headline score: Verified's leaderboard score (final_score_view) for Verified
    runs, else the paper's protocol (the legacy calculate_iq_score)."""
    verified = set(tracks) == {folder.VERIFIED}
    return physics_iq_scores.VERIFIED if verified else physics_iq_scores.LEGACY


SCORE_LABELS = {
    physics_iq_scores.VERIFIED: "Verified (final_score_view)",
    physics_iq_scores.ORIGINAL: "Original (final_score_orig)",
    physics_iq_scores.STABLE: "Stable (final_score_stable)",
    physics_iq_scores.LEGACY: "Original, the paper's protocol (calculate_iq_score)",
}
LEADERBOARDS = (
    "Leaderboards (google-deepmind/physics-IQ-benchmark README at commit 008659fe, "
    "2026-09): Verified i2v, mean ± std over runs: top 42.7 ± 0.8 (Cosmos3-Super-"
    "Image2Video), CogVideoX-5B 31.8 ± 1.5; Original i2v without best-of-N sampling: top "
    "43.8 (Cosmos3-Super), CogVideoX-5b 32.3. The paper's STANCE {stance:.2f} is an "
    "Original-protocol number: compare it with the paper's-protocol column of an "
    "Original-track run only."
)


def cell(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "n/a (undefined: 0/0 in a ratio to physical variance)"
    return f"{mean:.2f}" if np.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def gather(paths: Sequence[Path], out_dir: Path, fps: int) -> pd.DataFrame:
    """results/evaluate/physics_iq/<variant>/<run>.parquet files -> the benchmark tables
    (physics_iq_benchmark.md / .csv / .png in `out_dir`)."""
    runs: dict[str, list[Path]] = {}
    for path in paths:
        runs.setdefault(Path(path).parent.name, []).append(Path(path))
    table = summary(runs)
    table = table.assign(
        cell=[cell(m, s) for m, s in zip(table["mean"], table["std"], strict=True)]
    )
    tracks = sorted(set(table["track"]))
    main = headline(tracks)
    overall = table[table["category"] == "all"]
    scores = overall.pivot(index="variant", columns="score", values="cell")
    scores = scores[[main, *[k for k in SCORE_LABELS if k != main]]].rename(columns=SCORE_LABELS)
    first = overall.drop_duplicates("variant").set_index("variant")
    scores.insert(0, "views", [int(first.loc[v, "views"]) for v in scores.index])
    scores.insert(0, "runs", [int(first.loc[v, "runs"]) for v in scores.index])
    scores.insert(0, "prompts", [first.loc[v, "prompts"] for v in scores.index])
    categories = table[table["score"] == main].pivot(
        index="variant", columns="category", values="cell"
    )
    categories = categories[["all", *[c for c in categories.columns if c != "all"]]]
    out_dir.mkdir(parents=True, exist_ok=True)
    table.drop(columns="cell").to_csv(out_dir / "physics_iq_benchmark.csv", index=False)
    reference = bool(table["reference_settings"].all())
    settings = (
        "the reference benchmark's settings"
        if reference
        else "NON-REFERENCE settings (not comparable with published scores)"
    )
    stance = next(value for label, value, _ in tables.PUBLISHED if label.startswith("STANCE"))
    lines = [
        "# Physics IQ on the Physics-IQ benchmark",
        "",
        f"Track: {', '.join(tracks)}. Image-to-video: each view's switch frame, {fps} fps x 5 s "
        "generated per run (seeds generate.seed + run - 1), scored with "
        f"{settings}. Cells: mean ± sample standard deviation over runs, on the 0-100 "
        "scale the reference prints; the headline column is Verified's leaderboard score "
        "for Verified runs, else the paper's protocol.",
        "",
        scores.reset_index().to_markdown(index=False),
        "",
        f"## {SCORE_LABELS[main]} per category",
        "",
        "A category's score is the same formula over that category's views only.",
        "",
        categories.reset_index().to_markdown(index=False),
        "",
        LEADERBOARDS.format(stance=stance),
        "",
    ]
    (out_dir / "physics_iq_benchmark.md").write_text("\n".join(lines))
    paper_line = stance if set(tracks) == {folder.ORIGINAL} else None
    plot(table[table["score"] == main], out_dir / "physics_iq_benchmark.png", main, paper_line)
    log.info("physics-iq benchmark table: %d variants -> %s", len(runs), out_dir)
    return table


def plot(table: pd.DataFrame, path: Path, score: str, stance: float | None) -> None:
    """The headline score per variant and category: bars at the mean, error bars one
    sample standard deviation over runs; the paper's STANCE number as a line when given
    (Original-track runs scored with the paper's protocol)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = table.pivot(index="category", columns="variant", values="mean")
    stds = table.pivot(index="category", columns="variant", values="std")
    order = ["all", *[c for c in means.index if c != "all"]]
    means, stds = means.loc[order], stds.loc[order].fillna(0.0)
    ax = means.plot.bar(yerr=stds, capsize=3, figsize=(max(6, 1.2 * len(order)), 3.5), rot=20)
    if stance is not None:
        ax.axhline(
            stance, color="grey", linestyle="--", linewidth=1, label=f"STANCE paper {stance}"
        )
    ax.set(ylabel=f"{SCORE_LABELS[score]}\n(mean ± std over runs)", xlabel="")
    ax.set_title("Physics-IQ benchmark")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    plt.close(ax.figure)
