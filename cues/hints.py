"""Inference-time cues from user hints: keyframe + masks + arrows + mass (+ dz).

A hint file (YAML or JSON; paths relative to it):

    keyframe: keyframe.png
    depth: depth.png                      # optional: keyframe disparity, brighter = nearer
    instances:
      - mask: masks/ball.png              # PNG, non-zero = inside ...
        arrow: [2.0, -0.5]                # (dx, dy) px/frame, x right, y down ...
        mass: 1.2                         # kg
        dz: 0.0                           # optional, + = away; cues.dz.units: relative
                                          # = fraction of its depth per frame, absolute = m/frame
      - mask: {rle: {size: [H, W], counts: [5, 3, ...]}}   # ... or COCO uncompressed RLE
        arrow: {direction_deg: 90, speed: 1.5}             # ... or angle (0 = +x, 90 = +y)
        mass: 0.4

`depth` (grey 8/16-bit PNG or a .npy float array, keyframe size) is what RGB+Depth
variants condition their depth stream on; without it they cannot generate from the hints.
It is rasterised by the same `store.paint` and mass normalisation as rendered clips, so
a hint cue and a training cue of the same motion are identical arrays.

Hint files are user files, read as data only. Paths are relative to the hint file; a
path may leave its folder only to an existing regular file that decodes as the expected
kind (an image for keyframe and masks, an image or .npy array for depth), so nothing else
is ever read into an output. Images larger than MAX_PIXELS (16.8 megapixels, 4096x4096)
are refused before they are decoded; arrows longer than the keyframe per frame and |dz|
above MAX_DZ are refused. Every problem is a HintError naming the file, field and fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from stance.cues import mass as mass_channel
from stance.cues import store
from stance.errors import UserError
from stance.settings import Mass, as_dict

INSTANCE_KEYS = {"mask", "arrow", "mass", "dz"}
MAX_PIXELS = 4096 * 4096  # keyframe, masks, depth: refused above this, before decoding
MAX_INSTANCES = 255  # the label map and cue tokens of one keyframe
MAX_HINT_BYTES = 64 * 2**20  # inline RLE masks of a 4096x4096 keyframe fit easily
MAX_DZ = 10.0  # m/frame or x depth/frame: far beyond any rigid-body motion in the data
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "TIFF"}


class HintError(UserError, ValueError):
    """A hint file is malformed; the message names the instance and the fix."""


@dataclass
class Instance:
    mask: np.ndarray  # (H,W) bool
    arrow: tuple[float, float]  # px/frame
    mass_kg: float
    dz: float


def rle_decode(rle: Mapping[str, Any], shape: tuple[int, int] | None = None) -> np.ndarray:
    """COCO uncompressed RLE (column-major runs, starting with background) -> (H,W) bool.
    With `shape`, a size other than the keyframe's is refused before anything is decoded."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = [int(c) for c in rle["counts"]]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise HintError(
            "an RLE mask needs size: [H, W] and counts: [run, ...] (uncompressed COCO RLE)"
        ) from exc
    if shape is not None and (height, width) != tuple(shape):
        raise HintError(
            f"RLE mask is {height}x{width} but the keyframe is {shape[0]}x{shape[1]};"
            " masks must match the keyframe size"
        )
    if height <= 0 or width <= 0 or height * width > MAX_PIXELS:
        raise HintError(f"RLE size {height}x{width} must be positive and at most {MAX_PIXELS} px")
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise HintError(
            f"RLE counts sum to {sum(counts)}, but size {height}x{width} needs "
            f"{height * width} (and no run may be negative)"
        )
    values = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return values.reshape((width, height)).T.copy()


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """(H,W) bool -> COCO uncompressed RLE (the inverse of rle_decode)."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": list(mask.shape), "counts": runs}


def user_file(spec: Any, base: Path, what: str) -> Path:
    """A path from a hint file: relative to it, an existing regular file (not a folder,
    device or pipe). Leaving the hint's folder is allowed; the caller then only accepts
    the file if it decodes as the expected kind."""
    if not isinstance(spec, str) or not spec.strip():
        raise HintError(f"{what} must be a file path (relative to the hint file), got {spec!r}")
    path = base / spec
    try:
        regular = path.is_file()
    except (OSError, ValueError) as exc:  # names too long, NUL bytes
        raise HintError(f"{what}: {spec!r} is not a usable file name ({exc})") from exc
    if not regular:
        state = "is not a regular file" if path.exists() else "does not exist"
        raise HintError(f"{what} {path} {state}; paths are relative to the hint file")
    return path


def open_image(path: Path, what: str) -> Image.Image:
    """Open an image file, refusing other files and images above MAX_PIXELS before they
    are decoded (PIL reads only the header here)."""
    try:
        image = Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise HintError(f"{what} {path} is not an image PIL can read ({exc})") from exc
    if image.format not in IMAGE_FORMATS:
        raise HintError(f"{what} {path} is a {image.format} file; use PNG, JPEG or WebP")
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise HintError(
            f"{what} {path} is {width}x{height} ({width * height / 1e6:.1f} MP), above the"
            f" limit of {MAX_PIXELS / 1e6:.1f} MP; resize it (e.g. to 1360x768)"
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise HintError(f"{what} {path} is truncated or corrupt ({exc})") from exc
    return image


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise HintError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise HintError(f"{what} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise HintError(f"{what} is {number}: it must be a finite number")
    return number


def parse_arrow(arrow: Any, where: str) -> tuple[float, float]:
    if isinstance(arrow, Mapping):
        unknown = set(arrow) - {"direction_deg", "speed"}
        if unknown or len(arrow) != 2:
            raise HintError(
                f"{where}: arrow as a mapping needs exactly direction_deg and "
                f"speed (got {sorted(arrow)})"
            )
        angle = math.radians(_finite(arrow["direction_deg"], f"{where}: arrow.direction_deg"))
        speed = _finite(arrow["speed"], f"{where}: arrow.speed")
        if speed < 0:
            raise HintError(
                f"{where}: arrow.speed is {speed}; use a positive speed and turn "
                "the direction instead"
            )
        return speed * math.cos(angle), speed * math.sin(angle)
    if isinstance(arrow, list | tuple) and len(arrow) == 2:
        return (_finite(arrow[0], f"{where}: arrow dx"), _finite(arrow[1], f"{where}: arrow dy"))
    raise HintError(
        f"{where}: arrow must be [dx, dy] in px/frame or {{direction_deg, speed}}, got {arrow!r}"
    )


def check_arrow(arrow: tuple[float, float], shape: tuple[int, int], where: str) -> None:
    """An arrow is a speed in px/frame: one that crosses more than the keyframe per frame
    is a typo or a unit error (and cannot be drawn)."""
    length, limit = math.hypot(*arrow), max(shape)
    if length > limit:
        raise HintError(
            f"{where}: arrow ({arrow[0]:g}, {arrow[1]:g}) is {length:g} px/frame, longer than"
            f" the keyframe ({limit} px); arrows are speeds in px/frame"
        )


def _load_mask(spec: Any, base: Path, shape: tuple[int, int], where: str) -> np.ndarray:
    if isinstance(spec, Mapping) and "rle" in spec:
        mask = rle_decode(spec["rle"], shape)
    elif isinstance(spec, str):
        path = user_file(spec, base, f"{where}: mask file")
        mask = np.asarray(open_image(path, f"{where}: mask file").convert("L")) > 0
    else:
        raise HintError(f"{where}: mask must be a PNG path or {{rle: {{size, counts}}}}")
    if mask.shape != shape:
        raise HintError(
            f"{where}: mask is {mask.shape[0]}x{mask.shape[1]} but the keyframe "
            f"is {shape[0]}x{shape[1]}; masks must match the keyframe size"
        )
    return mask


def parse_instances(
    items: Any, base: Path, shape: tuple[int, int], mass_params: Mass
) -> list[Instance]:
    if not isinstance(items, list) or not items:
        raise HintError("instances must be a non-empty list of {mask, arrow, mass[, dz]}")
    if len(items) > MAX_INSTANCES:
        raise HintError(f"{len(items)} instances; at most {MAX_INSTANCES} are supported")
    parsed = []
    for k, item in enumerate(items):
        where = f"instance {k}"
        if not isinstance(item, Mapping):
            raise HintError(f"{where}: expected a mapping with mask, arrow, mass[, dz]")
        missing, unknown = {"mask", "arrow", "mass"} - set(item), set(item) - INSTANCE_KEYS
        if missing or unknown:
            raise HintError(
                f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}; "
                f"allowed keys: {sorted(INSTANCE_KEYS)}"
            )
        mask = _load_mask(item["mask"], base, shape, where)
        if not mask.any():
            raise HintError(
                f"{where}: the arrow sits on an empty mask (no pixel is inside); "
                "check the mask file or drop the instance"
            )
        mass_kg = _finite(item["mass"], f"{where}: mass")
        if mass_kg < 0 or (mass_kg == 0 and mass_params.normalization == "log"):
            raise HintError(f"{where}: mass is {mass_kg} kg; it must be positive")
        arrow = parse_arrow(item["arrow"], where)
        check_arrow(arrow, shape, where)
        dz = _finite(item.get("dz", 0.0), f"{where}: dz")
        if abs(dz) > MAX_DZ:
            raise HintError(f"{where}: dz is {dz:g} per frame; expected |dz| <= {MAX_DZ:g}")
        parsed.append(Instance(mask, arrow, mass_kg, dz))
    return parsed


def labels_from_masks(masks: list[np.ndarray]) -> np.ndarray:
    """Label map (instance k -> k+1); overlapping masks are an error, not a silent choice."""
    stacked = np.stack(masks)
    overlap = stacked.sum(axis=0) > 1
    if overlap.any():
        pairs = [
            (i, j)
            for i in range(len(masks))
            for j in range(i + 1, len(masks))
            if (masks[i] & masks[j]).any()
        ]
        raise HintError(
            f"masks of instances {pairs} overlap on {int(overlap.sum())} pixels; "
            "each pixel may belong to one instance only"
        )
    labels = np.zeros(stacked.shape[1:], dtype=np.uint16)
    for k, mask in enumerate(masks):
        labels[mask] = k + 1
    return labels


def load_disparity(spec: Any, base: Path, shape: tuple[int, int]) -> np.ndarray:
    """`depth:` of a hint file -> (H,W) float32 disparity (brighter / larger = nearer)."""
    path = user_file(spec, base, "depth file")
    if path.suffix == ".npy":
        try:  # memory-mapped: the header's shape is checked before any data is read
            values = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise HintError(f"depth file {path} is not a readable .npy array: {exc}") from exc
        if values.shape != shape or values.dtype.kind not in "fiu":
            raise HintError(
                f"depth file {path} must be a numeric {shape[0]}x{shape[1]} array (the"
                f" keyframe size), got {values.dtype} {values.shape}"
            )
    else:
        image = open_image(path, "depth file")
        values = np.asarray(image if image.mode in ("I", "I;16", "F") else image.convert("L"))
    values = np.asarray(values, np.float32)
    if values.shape != shape or not np.isfinite(values).all():
        raise HintError(
            f"depth file {path} must be a finite {shape[0]}x{shape[1]} single-channel "
            f"image or array (the keyframe size), got shape {values.shape}"
        )
    return values


def rasterise(
    keyframe: np.ndarray,
    instances: list[Instance],
    mass_params: Mass,
    attrs: Mapping[str, Any],
    disparity: np.ndarray | None = None,
) -> store.CueClip:
    """Hints -> the same cue store content the render path produces."""
    labels = labels_from_masks([i.mask for i in instances])
    mass_kg = np.array([i.mass_kg for i in instances])
    norm = mass_channel.normalise(mass_kg, mass_params)
    values = np.column_stack(
        [
            [i.arrow[0] for i in instances],
            [i.arrow[1] for i in instances],
            [i.dz for i in instances],
            norm,
        ]
    )
    nan = np.full(len(instances), np.nan)
    columns = {
        "u": values[:, 0],
        "v": values[:, 1],
        "dz": values[:, 2],
        "mass_kg": mass_kg,
        "mass_channel": norm,
        "area_px": np.bincount(labels.ravel(), minlength=len(instances) + 1)[1:],
        "dz_gt": nan,
        "dz_centre": nan,
        "dz_literal": nan,
    }
    return store.CueClip(
        cue=store.paint(labels, values.astype(np.float32)),
        keyframe=keyframe,
        labels=labels,
        instances={k: np.asarray(v, dtype=np.float32) for k, v in columns.items()},
        attrs={"source": "hints", "mass": as_dict(mass_params), **attrs},
        keyframe_disparity=disparity,
    )


def load(path: str | Path, mass_params: Mass) -> store.CueClip:
    """Parse and rasterise a hint file."""
    path = Path(path)
    if not path.is_file():
        raise HintError(f"hint file {path} does not exist (or is not a file)")
    if path.stat().st_size > MAX_HINT_BYTES:
        raise HintError(f"hint file {path} is over {MAX_HINT_BYTES // 2**20} MiB; not a hint file?")
    try:
        text = path.read_text()
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise HintError(
            f"{path} is not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {exc}"
        ) from exc
    if not isinstance(spec, Mapping) or not {"keyframe", "instances"} <= set(spec) <= {
        "keyframe",
        "instances",
        "depth",
    }:
        raise HintError(f"{path}: expected the keys keyframe, instances and optionally depth")
    keyframe_path = user_file(spec["keyframe"], path.parent, "keyframe")
    keyframe = np.asarray(open_image(keyframe_path, "keyframe").convert("RGB"))
    instances = parse_instances(spec["instances"], path.parent, keyframe.shape[:2], mass_params)
    disparity = None
    if "depth" in spec:
        disparity = load_disparity(spec["depth"], path.parent, keyframe.shape[:2])
    return rasterise(
        keyframe,
        instances,
        mass_params,
        {"clip_id": path.stem, "hints": str(path), "frames": [0, 1]},
        disparity,
    )


def write_store(hints_path: str | Path, out: str | Path, mass_params: Mass) -> Path:
    """Rasterise a hint file into a cue store at `out` and its picture beside it (.png)."""
    from stance.cues import visualize

    cue = load(hints_path, mass_params)
    out = store.write(out, cue)
    Image.fromarray(visualize.render_cue(cue)).save(Path(out).with_suffix(".png"))
    return out
