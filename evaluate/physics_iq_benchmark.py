"""Physics IQ on the benchmark's real videos: a variant's generated runs (one per seed)
scored against the testing takes (`score_runs`), runs gathered into mean +- std over seeds
and per category (`gather`), as the leaderboard's rules ask (4 runs, mean and sample
standard deviation). The takes of a view are decoded and their masks computed once for all
runs (the reference recomputes them for every run), the videos of a view in parallel.

Per view the numbers are `physics_iq.score_view` with the configured options (the
reference's by default): take 1 and take 2 of the benchmark at render.fps (resampled from
30FPS as the reference's fps_changer when that rate is not in the download) and the
generated `<ID>_<view>_<scenario>.mp4`. Real motion masks are computed from the takes the
way the reference computed its video-masks/ folder (at the video's own size, through an
mp4v file), so that folder is not read. The dataset score is `physics_iq.aggregate` over
all views (scenario and view grouping as calculate_iq_score.py); a category's score is the
same formula over its views only, with that category's physical variance.
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
from stance.evaluate import physics_iq, tables

log = logging.getLogger(__name__)
RUN_KEY = b"stance.physics_iq_run"


def score_runs(
    benchmark: Path,
    runs: Sequence[Path],
    fps: int,
    options: physics_iq.Options,
    descriptions: Path | None = None,
) -> list[list[dict[str, Any]]]:
    """Per run folder, one row per view: its per-view metrics against take 1 (the run's
    video and take 2). Each view's takes are prepared once for all runs."""
    root = folder.root_of(benchmark)
    rows: list[list[dict[str, Any]]] = [[] for _ in runs]
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        for item in tqdm(folder.scan(root, fps, descriptions), desc="physics-iq", unit="view"):
            for k, view_rows in enumerate(score_item(root, item, runs, fps, options, pool)):
                rows[k].append(view_rows)
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
    take1, take2 = (future.result() for future in takes)
    generated = {key: future.result() for key, future in runs_read.items()}
    scored = physics_iq.score_view(
        take1,
        {"take2": take2, **generated},
        fps,
        options,
        pool=pool,
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


def run_scores(frame: pd.DataFrame) -> dict[str, float]:
    """{"all": score, <category>: score, ...} of one run."""
    out = {}
    for name, part in [("all", frame), *frame.groupby("category", sort=True)]:
        scores = physics_iq.aggregate(
            tables.records(part),
            tables.records(part, "pv_"),
            list(part["scenario"]),
            list(part["view"]),
        )
        out[name] = scores.score
    return out


def summary(runs: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """variant -> its run parquets  =>  one row per variant and column (all, categories):
    mean, sample std over runs, and the run count."""
    rows = []
    for variant, paths in sorted(runs.items()):
        per_run = []
        for path in paths:
            frame, run = read_run(path)
            per_run.append(
                {"views": len(frame), "reference": run["reference"], **run_scores(frame)}
            )
        table = pd.DataFrame(per_run)
        for column in [c for c in table.columns if c not in ("views", "reference")]:
            values = table[column].dropna()
            rows.append(
                {
                    "variant": variant,
                    "category": column,
                    "physics_iq_mean": float(values.mean()),
                    "physics_iq_std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                    "runs": len(values),
                    "views": int(table["views"].iloc[0]),
                    "reference_settings": bool(table["reference"].all()),
                }
            )
    return pd.DataFrame(rows)


def gather(paths: Sequence[Path], out_dir: Path, fps: int) -> pd.DataFrame:
    """results/evaluate/physics_iq/<variant>/run_<k>.parquet files -> the benchmark table
    (physics_iq_benchmark.md / .csv in `out_dir`)."""
    runs: dict[str, list[Path]] = {}
    for path in paths:
        runs.setdefault(Path(path).parent.name, []).append(Path(path))
    table = summary(runs)
    wide = table.assign(
        cell=[
            f"{m:.2f}" if np.isnan(s) else f"{m:.2f} ± {s:.2f}"
            for m, s in zip(table["physics_iq_mean"], table["physics_iq_std"], strict=True)
        ]
    ).pivot(index="variant", columns="category", values="cell")
    wide = wide[["all", *[c for c in wide.columns if c != "all"]]].reset_index()
    counts = table[table["category"] == "all"].set_index("variant")
    wide.insert(1, "runs", [int(counts.loc[v, "runs"]) for v in wide["variant"]])
    wide.insert(2, "views", [int(counts.loc[v, "views"]) for v in wide["variant"]])
    reference = bool(table["reference_settings"].all())
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "physics_iq_benchmark.csv", index=False)
    settings = (
        "the reference benchmark's settings"
        if reference
        else "NON-REFERENCE settings (not comparable with published scores)"
    )
    lines = [
        "# Physics IQ on the Physics-IQ benchmark",
        "",
        f"Image-to-video track: each view's switch frame, {fps} fps x 5 s generated per run "
        f"(seeds generate.seed + run - 1), scored with {settings}. Cells: mean ± sample "
        "standard deviation over runs (as the leaderboard asks); a category column scores "
        "that category's views only.",
        "",
        wide.to_markdown(index=False),
        "",
        "Published (STANCE, arXiv 2510.14588): "
        + ", ".join(f"{label} {value:.2f}" for label, value, _ in tables.PUBLISHED),
        "",
    ]
    (out_dir / "physics_iq_benchmark.md").write_text("\n".join(lines))
    plot(table, out_dir / "physics_iq_benchmark.png")
    log.info("physics-iq benchmark table: %d variants -> %s", len(runs), out_dir)
    return table


def plot(table: pd.DataFrame, path: Path) -> None:
    """Physics IQ per variant and category: bars at the mean, error bars one sample
    standard deviation over runs, the paper's STANCE number as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = table.pivot(index="category", columns="variant", values="physics_iq_mean")
    stds = table.pivot(index="category", columns="variant", values="physics_iq_std")
    order = ["all", *[c for c in means.index if c != "all"]]
    means, stds = means.loc[order], stds.loc[order].fillna(0.0)
    ax = means.plot.bar(yerr=stds, capsize=3, figsize=(max(6, 1.2 * len(order)), 3.5), rot=20)
    stance = next(value for label, value, _ in tables.PUBLISHED if label.startswith("STANCE"))
    ax.axhline(stance, color="grey", linestyle="--", linewidth=1, label=f"STANCE paper {stance}")
    ax.set(ylabel="Physics IQ (mean ± std over runs)", xlabel="", title="Physics-IQ benchmark")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    plt.close(ax.figure)
