"""The cue store: the cue stage's output format, written and read only here.

One zarr v3 group per clip, `results/cues/{split}/{shard}/<clip_id>.zarr` (or wherever
`stance cues from-hints` writes). N instances; label i+1 is instance i, 0 = background.

| array                    | dtype   | shape       | meaning                                   |
|--------------------------|---------|-------------|-------------------------------------------|
| cue                      | float32 | (1,H,W,C)   | keyframe cue, channels CHANNELS; 0 outside |
| keyframe                 | uint8   | (H,W,3)     | the image the cue belongs to (frame 0)    |
| labels                   | uint16  | (H,W)       | keyframe instance labels                  |
| keyframe_disparity       | float32 | (H,W)       | optional: keyframe disparity (any affine- |
|                          |         |             | invariant inverse depth: Depth-Anything-V2|
|                          |         |             | for rendered clips, `depth:` for hints)   |
| instances/<column>       | float32 | (N,)        | per-instance table, columns INSTANCE_COLUMNS |

Channels (CHANNELS): u, v = mean flow inside the instance in px/frame (x right, y down);
dz = depth change per frame (+ = away from the camera) in `cues.dz.units`: relative (a
fraction of the instance's depth) or absolute (metres when aligned to ground truth);
mass = normalised mass (`cues.mass`). The store's attrs record the dz settings.
Instance columns: u, v, dz, mass_kg, mass_channel, area_px (keyframe pixels), and for
rendered clips the references dz_gt (same statistic on rendered depth), dz_centre
(change of the centre's camera distance) and dz_literal (the literal formula); NaN when
unknown (user hints).
Attributes: `format`/`version` (checked by readers), clip_id, source ("render", "hints"
or "physics_iq"), channels, frames (the reference pair), `dz` (method and parameters),
`mass` (normalisation), code_hash and the hashes/models of the stores it was computed
from. Stores of Physics-IQ views (`cues.from_video`, written to results/cues/physics_iq/)
also hold prompt and category (the benchmark's description of the view), fps and the
`from_video` settings; their dz is in disparity units, mass the stated default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stance import stores

FORMAT = "stance.cues.clip"
VERSION = 2
PRODUCER = "the cue stage (stance cues shard)"
CHANNELS = ("u", "v", "dz", "mass")
INSTANCE_COLUMNS = (
    "u",
    "v",
    "dz",
    "mass_kg",
    "mass_channel",
    "area_px",
    "dz_gt",
    "dz_centre",
    "dz_literal",
)


@dataclass
class CueClip:
    cue: np.ndarray  # (1,H,W,C) float32
    keyframe: np.ndarray  # (H,W,3) uint8
    labels: np.ndarray  # (H,W) uint16
    instances: dict[str, np.ndarray]  # column -> (N,) float32
    attrs: dict[str, Any]
    keyframe_disparity: np.ndarray | None = None  # (H,W) float32, or None when unknown


def validate(clip: CueClip) -> None:
    h, w = clip.labels.shape
    checks = [
        ("cue", clip.cue, np.float32, (1, h, w, len(CHANNELS))),
        ("keyframe", clip.keyframe, np.uint8, (h, w, 3)),
        ("labels", clip.labels, np.uint16, (h, w)),
    ]
    if clip.keyframe_disparity is not None:
        checks.append(("keyframe_disparity", clip.keyframe_disparity, np.float32, (h, w)))
    n = len(clip.instances["u"])
    checks += [(f"instances/{c}", clip.instances[c], np.float32, (n,)) for c in INSTANCE_COLUMNS]
    for name, array, dtype, shape in checks:
        if array.dtype != dtype or array.shape != shape:
            raise stores.StoreError(
                f"{name}: expected {np.dtype(dtype)} {shape}, got {array.dtype} {array.shape}"
            )
    if clip.labels.max(initial=0) > n:
        raise stores.StoreError("labels hold ids beyond the instance table")
    if not np.isfinite(clip.cue).all():
        raise stores.StoreError("cue holds NaN or infinite values")
    if clip.keyframe_disparity is not None and not np.isfinite(clip.keyframe_disparity).all():
        raise stores.StoreError("keyframe_disparity holds NaN or infinite values")


def write(path: str | Path, clip: CueClip) -> Path:
    validate(clip)

    def fill(root):
        root.create_array("cue", data=clip.cue, chunks=stores.per_frame_chunks(clip.cue))
        root.create_array("keyframe", data=clip.keyframe)
        root.create_array("labels", data=clip.labels)
        if clip.keyframe_disparity is not None:
            root.create_array("keyframe_disparity", data=clip.keyframe_disparity)
        table = root.create_group("instances")
        for column in INSTANCE_COLUMNS:
            table.create_array(column, data=clip.instances[column])

    attrs = {**clip.attrs, "channels": list(CHANNELS)}
    return stores.write_group(path, fill, attrs, FORMAT, VERSION)


def read(path: str | Path) -> CueClip:
    root = stores.open_checked(path, FORMAT, VERSION, PRODUCER)
    attrs: Mapping[str, Any] = dict(root.attrs)
    if tuple(attrs["channels"]) != CHANNELS:
        raise stores.StoreError(f"{path} has channels {attrs['channels']}, expected {CHANNELS}")
    with stores.reading(path, PRODUCER):
        clip = CueClip(
            cue=root["cue"][...],
            keyframe=root["keyframe"][...],
            labels=root["labels"][...],
            instances={c: root["instances"][c][...] for c in INSTANCE_COLUMNS},
            attrs=dict(attrs),
            keyframe_disparity=(
                root["keyframe_disparity"][...] if "keyframe_disparity" in root else None
            ),
        )
    validate(clip)
    return clip


def read_cue(path: str | Path) -> np.ndarray:
    """Only the cue array (1,H,W,C) of a store, format-checked: what training reads per step."""
    root = stores.open_checked(path, FORMAT, VERSION, PRODUCER)
    with stores.reading(path, PRODUCER):
        cue = root["cue"][...]
    if cue.dtype != np.float32 or cue.ndim != 4 or cue.shape[-1] != len(CHANNELS):
        raise stores.StoreError(
            f"{path}: cue is {cue.dtype} {cue.shape}, expected float32 (1,H,W,{len(CHANNELS)})"
        )
    if not np.isfinite(cue).all():
        raise stores.StoreError(f"{path}: cue holds NaN or infinite values")
    return cue


def paint(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rasterise per-instance values (N, C) densely inside each label: (1,H,W,C) float32."""
    table = np.zeros((len(values) + 1, values.shape[1]), dtype=np.float32)
    table[1:] = values
    return table[labels][None]
