"""The clip store: the render stage's output format, written and read only here.

One zarr v3 group per clip, `<clip_id>.zarr` (twins: `<clip_id>.twin.zarr`), chunked per
frame. T frames, H x W pixels, N instances (objects; instance id i+1 is object index i).

| array                     | dtype   | shape       | meaning                                    |
|---------------------------|---------|-------------|--------------------------------------------|
| rgb                       | uint8   | (T,H,W,3)   | Cycles render, sRGB                        |
| depth                     | float32 | (T,H,W)     | metres from the camera centre (sky 1e10)   |
| segmentation              | uint16  | (T,H,W)     | 0 = background, i+1 = object i (stable)    |
| forward_flow              | float32 | (T,H,W,2)   | (dx, dy) px, t to t+1; x right, y down    |
| backward_flow             | float32 | (T,H,W,2)   | (dx, dy) px, motion t-1 to t (Kubric's)    |
| tracks/positions          | float32 | (N,T,3)     | centre of mass, world metres, z up         |
| tracks/quaternions        | float32 | (N,T,4)     | (w, x, y, z), world                        |
| tracks/velocities         | float32 | (N,T,3)     | m/s                                        |
| tracks/angular_velocities | float32 | (N,T,3)     | rad/s                                      |
| tracks/image_positions    | float32 | (N,T,2)     | projected centre, (x, y) pixels            |
| tracks/visibility         | int32   | (N,T)       | visible pixels of the instance             |

Both flows point along the motion: forward_flow[t] is where a pixel of frame t moves in
frame t+1, backward_flow[t] where a pixel of frame t came from, negated (the motion from
t-1 to t, as Kubric stores it); tested against the projected tracks.
Flow is valid at both ends: the simulation runs one frame before and after the clip.
Group attributes: `format` and `version` (checked by readers), clip identity (clip_id,
split, seed, family, small_objects, twin_of, attempts), `render` settings, `code_hash`,
`camera` (pixel intrinsics K_pixels, camera-to-world matrix_world, ...), `instances`
(per-object shape, size, material, density, volume, mass, friction, restitution, initial
pose and velocities), `events` (first contact per pair: instances [i, j] with -1 = floor
or backdrop, fractional clip frame, normal force in N, world and image position),
`scene` (the full SceneSpec), `complete` (true once every array is written).

Writes are atomic: a clip is written under a temporary name and renamed at the end, so
a killed job never leaves a store that a reader would accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stance import stores
from stance.stores import StoreError

FORMAT = "stance.render.clip"
VERSION = 1
PRODUCER = "the render stage (stance render shard)"
FRAME_ARRAYS = {  # name -> (dtype, trailing shape after (T, H, W))
    "rgb": ("uint8", (3,)),
    "depth": ("float32", ()),
    "segmentation": ("uint16", ()),
    "forward_flow": ("float32", (2,)),
    "backward_flow": ("float32", (2,)),
}
TRACKS = {  # name -> (dtype, trailing shape after (N, T))
    "positions": ("float32", (3,)),
    "quaternions": ("float32", (4,)),
    "velocities": ("float32", (3,)),
    "angular_velocities": ("float32", (3,)),
    "image_positions": ("float32", (2,)),
    "visibility": ("int32", ()),
}


@dataclass
class Clip:
    arrays: dict[str, np.ndarray]
    tracks: dict[str, np.ndarray]
    attrs: dict[str, Any]

    @property
    def num_frames(self) -> int:
        return self.arrays["rgb"].shape[0]


def clip_paths(shard_dir: str | Path) -> list[Path]:
    """The clip stores of a rendered shard folder (twins excluded), sorted."""
    shard_dir = Path(shard_dir)
    paths = sorted(p for p in shard_dir.glob("*.zarr") if not p.name.endswith(".twin.zarr"))
    if not paths:
        raise StoreError(f"{shard_dir} holds no clip stores; run the render stage")
    return paths


def validate_arrays(
    arrays: Mapping[str, np.ndarray], tracks: Mapping[str, np.ndarray], num_instances: int
) -> None:
    """Assert names, dtypes and shapes of a clip's arrays (writers and readers call this)."""
    t, h, w = arrays["rgb"].shape[:3]
    for name, (dtype, tail) in FRAME_ARRAYS.items():
        a = arrays[name]
        if a.dtype != np.dtype(dtype) or a.shape != (t, h, w, *tail):
            raise StoreError(
                f"{name}: expected {dtype} {(t, h, w, *tail)}, got {a.dtype} {a.shape}"
            )
    for name, (dtype, tail) in TRACKS.items():
        a = tracks[name]
        if a.dtype != np.dtype(dtype) or a.shape != (num_instances, t, *tail):
            raise StoreError(
                f"tracks/{name}: expected {dtype} {(num_instances, t, *tail)}, "
                f"got {a.dtype} {a.shape}"
            )
    if arrays["segmentation"].max(initial=0) > num_instances:
        raise StoreError("segmentation holds ids beyond the instance table")


def write_clip(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    tracks: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> Path:
    """Write a clip store atomically; returns its path."""
    validate_arrays(arrays, tracks, len(attrs["instances"]))

    def fill(root):
        for name, data in arrays.items():
            root.create_array(name, data=data, chunks=stores.per_frame_chunks(data))
        group = root.create_group("tracks")
        for name, data in tracks.items():
            group.create_array(name, data=data)

    return stores.write_group(path, fill, attrs, FORMAT, VERSION)


def open_attrs(path: str | Path) -> dict[str, Any]:
    """Read and check a clip store's attributes only (cheap)."""
    return dict(stores.open_checked(path, FORMAT, VERSION, PRODUCER).attrs)


def read_clip(
    path: str | Path,
    names: tuple[str, ...] | None = None,
    frames: slice | list[int] | Mapping[str, slice | list[int]] | None = None,
) -> Clip:
    """Read a clip store; `names` and `frames` read a subset (per-frame chunks make a
    frame range cheap); `frames` as {array: frames} reads different frames of each named
    array in one pass. Full reads are validated against the format."""
    root = stores.open_checked(path, FORMAT, VERSION, PRODUCER)
    attrs = dict(root.attrs)
    full = names is None and frames is None
    if isinstance(frames, Mapping):
        names, windows = tuple(frames), dict(frames)
    else:
        window = slice(None) if frames is None else frames
        names = FRAME_ARRAYS if names is None else names
        windows = dict.fromkeys(names, window)
    with stores.reading(path, PRODUCER):
        arrays = {name: root[name].oindex[windows[name]] for name in names}
        tracks = {name: root["tracks"][name][...] for name in TRACKS}
    if full:
        validate_arrays(arrays, tracks, len(attrs["instances"]))
    return Clip(arrays, tracks, attrs)
