"""Report page for the cue stage: dz estimator agreement and a sheet of cue pictures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

log = logging.getLogger(__name__)


def cue_sheet(cue_dirs: Sequence[Path], clips: int, columns: int = 4) -> tuple[np.ndarray, list]:
    """Grid of the cue pictures the cue jobs wrote (flow colours + arrows over keyframes)."""
    pictures = sorted(p for d in cue_dirs for p in Path(d).glob("*.cue.png"))[:clips]
    if not pictures:
        raise FileNotFoundError(f"no cue pictures (*.cue.png) in {list(map(str, cue_dirs))}")
    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in pictures]
    h, w, _ = tiles[0].shape
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile[:h, :w]
    return sheet, [p.name.removesuffix(".cue.png") for p in pictures]


def write(cue_dirs: Sequence[Path], dz_report: Path, out_dir: Path, clips: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet, names = cue_sheet(cue_dirs, clips)
    Image.fromarray(sheet).save(out_dir / "cue_sheet.png")
    table = pd.read_csv(dz_report)
    lines = [
        "# Instance Cues",
        "",
        "Cue pictures (flow colour = direction, saturation = speed; arrows = motion over 4 "
        "frames) for " + ", ".join(names) + ":",
        "",
        "![cue sheet](cue_sheet.png)",
        "",
        "## dz estimators against rendered depth",
        "",
        "Correlation and sign accuracy of per-instance dz (frames 0 -> k) with the same "
        "statistic on rendered depth. `depth model` = the configured Depth-Anything-V2 "
        "(random weights in the tiny config, so no agreement is expected there); `oracle + "
        "flicker` = ground-truth disparity under per-frame scale/shift flicker and noise. "
        "The literal formula works on raw disparity (its sign is inverted by construction).",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    (out_dir / "cues.md").write_text("\n".join(lines))
    log.info("cue report -> %s", out_dir)
