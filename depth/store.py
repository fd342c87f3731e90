"""Depth store format, one zarr v3 group per clip, `results/depth/{split}/{shard}/<clip_id>.zarr`:

| array     | dtype   | shape   | meaning                                                  |
|-----------|---------|---------|----------------------------------------------------------|
| disparity | float32 | (T,H,W) | relative inverse depth as predicted, at the clip's size  |

The disparity is affine-invariant: valid up to an unknown scale and shift per frame.

Attributes: `format`/`version` (checked by readers), clip_id, `model` (hub id or path),
`input_size` (model input, pixels), `preprocessing` (the processor's settings),
`device`, `dtype`, `code_hash`, `render_code_hash` (of the clip it was computed from).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stance import stores

FORMAT = "stance.depth.clip"
VERSION = 1
PRODUCER = "the depth stage (stance depth shard)"


def write_depth(path: str | Path, disparity: np.ndarray, attrs: Mapping[str, Any]) -> Path:
    if disparity.dtype != np.float32 or disparity.ndim != 3:
        raise stores.StoreError(
            f"disparity: expected float32 (T,H,W), got {disparity.dtype} {disparity.shape}"
        )

    def fill(root):
        root.create_array("disparity", data=disparity, chunks=stores.per_frame_chunks(disparity))

    return stores.write_group(path, fill, attrs, FORMAT, VERSION)


def read_depth(
    path: str | Path, frames: slice | list[int] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Disparity (all frames, or a slice / list of frame indices) and the store's attrs."""
    root = stores.open_checked(path, FORMAT, VERSION, PRODUCER)
    window = slice(None) if frames is None else frames
    with stores.reading(path, PRODUCER):
        return root["disparity"].oindex[window], dict(root.attrs)
