"""Dataset card for the rendered clips: counts, statistics and a contact sheet."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from stance.palette import palette
from stance.render import store

log = logging.getLogger(__name__)
TILE = 96  # contact-sheet tile size in pixels (tiny clips are upscaled, nearest)


def summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Clips and mean statistics per split and scene family."""
    grouped = manifest.groupby(["split", "family"], sort=True)
    return pd.DataFrame(
        {
            "clips": grouped.size(),
            "small_object_split": grouped["small_object_split"].sum(),
            "mean_objects": grouped["num_objects"].mean().round(2),
            "mean_dynamic": grouped["num_dynamic"].mean().round(2),
            "mean_object_contacts": grouped["num_object_contacts"].mean().round(2),
            "mean_attempts": grouped["attempts"].mean().round(2),
            "mean_render_seconds": grouped["render_seconds"].mean().round(2),
        }
    ).reset_index()


def _tile(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((TILE, TILE), Image.NEAREST))


def contact_sheet(rows: pd.DataFrame, frames: int) -> np.ndarray:
    """One row per clip: evenly spaced RGB frames, then the first frame's segmentation."""
    lines = []
    for row in rows.itertuples():
        clip = store.read_clip(Path(row.shard_dir) / row.store)
        picks = np.linspace(0, clip.num_frames - 1, frames).round().astype(int)
        tiles = [_tile(clip.arrays["rgb"][t]) for t in picks]
        tiles.append(_tile(palette(clip.arrays["segmentation"][0])))
        lines.append(np.concatenate(tiles, axis=1))
    return np.concatenate(lines, axis=0)


def write(manifest_path: Path, out_dir: Path, sheet_clips: int, sheet_frames: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = pq.read_table(manifest_path).to_pandas()
    table = summary(manifest)
    table.to_csv(out_dir / "dataset.csv", index=False)
    shown = manifest.sort_values(["split", "clip_id"], ascending=[True, True]).head(sheet_clips)
    sheet = contact_sheet(shown, sheet_frames)
    Image.fromarray(sheet).save(out_dir / "contact_sheet.png")
    lines = [
        "# Dataset",
        "",
        f"{len(manifest)} clips rendered with Kubric (PyBullet + Blender Cycles).",
        "",
        table.to_markdown(index=False),
        "",
        "Contact sheet (rows: " + ", ".join(shown["clip_id"]) + "; columns: frames, then "
        "the first frame's instance segmentation):",
        "",
        "![contact sheet](contact_sheet.png)",
        "",
    ]
    (out_dir / "dataset.md").write_text("\n".join(lines))
    log.info("dataset report for %d clips -> %s", len(manifest), out_dir)
