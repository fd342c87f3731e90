"""Side-by-side videos for the report: ground truth | generated (| aux) (| reversed cues)
| twin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from stance import video
from stance.evaluate.metrics import fit
from stance.render import store as clip_store

MIN_HEIGHT = 128


def compose(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Frames of equal length side by side, upscaled (nearest) so tiny clips are visible."""
    frames = min(len(p) for p in panels)
    scale = max(1, -(-MIN_HEIGHT // panels[0].shape[1]))
    out = np.concatenate([p[:frames] for p in panels], axis=2)
    if scale > 1:
        out = np.stack(
            [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for f in out]
        )
    return out


def write(render_dir: Path, generated_dir: Path, out_dir: Path, clips: int, fps: int) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # <clip_id>.mp4 only: .aux.mp4 and .flipped.mp4 belong to it
    for mp4 in [p for p in sorted(generated_dir.glob("*.mp4")) if p.name.count(".") == 1][:clips]:
        clip_id = mp4.stem
        truth = clip_store.read_clip(render_dir / f"{clip_id}.zarr", names=("rgb",))
        rgb = truth.arrays["rgb"]
        panels = [rgb, fit(video.read_video(mp4), rgb)]
        aux = mp4.with_suffix(".aux.mp4")
        if aux.exists():
            panels.append(fit(video.read_video(aux), rgb))
        flipped = mp4.with_suffix(".flipped.mp4")
        if flipped.exists():
            panels.append(fit(video.read_video(flipped), rgb))
        twin = render_dir / f"{clip_id}.twin.zarr"
        if twin.exists():
            panels.append(clip_store.read_clip(twin, names=("rgb",)).arrays["rgb"])
        written.append(video.write_mp4(out_dir / f"{clip_id}.mp4", compose(panels), fps))
    return written
