"""What the demo does, without the web server: pick a trained variant, turn clicks into
masks and drags into arrows, rasterise them with the hints path (`cues/hints.py`, the code
`stance cues from-hints` runs), generate, and write the hint file that reproduces it.

One `Session` per page: a keyframe (an example test clip's, with its rendered instance
labels and cue store, or an upload fitted to the model's square size) and the instances
drawn on it, with the history that undo walks back.
"""

from __future__ import annotations

import dataclasses
import io
import math
import shlex
import threading
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image, ImageOps

from stance.cues import hints
from stance.cues import store as cue_store
from stance.demo.model import DemoError, Model
from stance.errors import UserError
from stance.settings import Mass

FLOOD_TOLERANCE = 12  # grey levels: a click selects the connected region of similar colour
# A flood-filled region is taken for the background, not an object, when it covers more
# than this share of the image ...
MAX_REGION_SHARE = 0.5
# ... or runs along more than this share of the image border (floors and walls reach the
# edges all round; an object seldom does).
MAX_BORDER_SHARE = 0.5
MAX_UPLOAD_BYTES = 32 * 2**20
UPLOAD_FORMATS = "PNG, JPEG, WebP, BMP or TIFF"  # hints.IMAGE_FORMATS, as a user reads it
# what PIL calls them; phone cameras' JPEGs with an embedded preview open as MPO
UPLOAD_IMAGE_FORMATS = hints.IMAGE_FORMATS | {"MPO"}
TRANSPARENT_BACKGROUND = (255, 255, 255)  # what shows through transparent pixels
DEFAULT_MASS_KG = 1.0
MAX_HISTORY = 200  # undo steps kept per page
# How an upload that is not square becomes the model's square keyframe.
FITS = {
    "pad": "scaled to fit and padded with its edge colour",
    "crop": "scaled to fill and centre-cropped",
}
DEFAULT_FIT = "pad"  # keeps the whole picture; the padding repeats the edge colour
# Generation settings a page may set (the config schema's bounds where it has them).
MAX_PROMPT_CHARS = 1000
MAX_SEED = 2**32 - 1
MAX_STEPS = 1000  # generate.steps' maximum in the config schema
MAX_GUIDANCE = 50.0
STRIP_FRAMES = 9  # at most this many frames, evenly spaced, in the frame strip
STRIP_GAP_PX = 2


@dataclass
class Instance:
    mask: np.ndarray  # (H,W) bool, never changed in place (undo shares it)
    arrow: tuple[float, float] = (0.0, 0.0)  # px/frame
    mass_kg: float = DEFAULT_MASS_KG
    dz: float = 0.0


@dataclass(frozen=True)
class Generation:
    """What a page sets for one generation."""

    prompt: str
    seed: int
    steps: int
    guidance_scale: float


@dataclass
class Session:
    keyframe: np.ndarray  # (S,S,3) uint8 at the model's size
    labels: np.ndarray | None = None  # rendered instance labels of an example keyframe
    disparity: np.ndarray | None = None  # keyframe disparity (depth streams), once known
    disparity_source: str = ""  # where `disparity` came from, for the page and the bundle
    truth: cue_store.CueClip | None = None  # an example's cue store: its true motion
    note: str = ""
    instances: list[Instance] = field(default_factory=list)
    history: list[list[Instance]] = field(default_factory=list)  # before each change
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    progress: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    lock: threading.Lock = field(default_factory=threading.Lock)
    video: bytes | None = None
    panels: list[np.ndarray] | None = None  # generated streams (T,H,W,3), RGB first
    generation: Generation | None = None  # the settings of the last generation


# -- keyframes --------------------------------------------------------------------------
def read_upload(data: bytes) -> np.ndarray:
    """An uploaded file -> (H,W,3) uint8 RGB, upright as a phone shows it (EXIF)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise DemoError(f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MiB; use a smaller image")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DemoError("the image is too large to open; resize it to at most 4096x4096") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DemoError(f"the upload is not an image: choose a {UPLOAD_FORMATS} file") from exc
    if image.format not in UPLOAD_IMAGE_FORMATS:
        raise DemoError(f"the upload is a {image.format} file: choose a {UPLOAD_FORMATS} image")
    if image.width * image.height > hints.MAX_PIXELS:
        raise DemoError(
            f"the image is {image.width}x{image.height}; at most 4096x4096 is accepted, resize it"
        )
    try:
        return np.asarray(_opaque(ImageOps.exif_transpose(image)))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DemoError(
            f"the {image.format} file is truncated or corrupt: save it again and upload that"
        ) from exc


def _opaque(image: Image.Image) -> Image.Image:
    """RGB, with transparent pixels over TRANSPARENT_BACKGROUND rather than whatever colour
    they happen to store (often black)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    # area averaging when shrinking (no aliasing), cubic when enlarging (no blocks)
    shrink = width * height <= rgb.shape[0] * rgb.shape[1]
    return cv2.resize(
        rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )


def fit_square(rgb: np.ndarray, size: int, fit: str) -> tuple[np.ndarray, str]:
    """An image -> (size, size, 3) keeping its aspect ratio (a ball stays round): `pad`
    scales it to fit and repeats its edge colour into the bands; `crop` scales it to fill
    and cuts the centre. Returns the keyframe and the note that says what was done."""
    if fit not in FITS:
        raise DemoError(f"fit {fit!r}: expected one of {', '.join(FITS)}")
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb, ""
    why = "the square size this model was trained and generates at"
    if h == w:
        return _resize(rgb, size, size), f"resized from {w}x{h} to {size}x{size}, {why}"
    scale = size / (max(h, w) if fit == "pad" else min(h, w))
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = _resize(rgb, new_w, new_h)
    if fit == "pad":
        top, left = (size - new_h) // 2, (size - new_w) // 2
        square = cv2.copyMakeBorder(
            scaled, top, size - new_h - top, left, size - new_w - left, cv2.BORDER_REPLICATE
        )
    else:
        top, left = (new_h - size) // 2, (new_w - size) // 2
        square = scaled[top : top + size, left : left + size]
    other = "centre-crop" if fit == "pad" else "pad"
    note = (
        f"{w}x{h} {FITS[fit]} to {size}x{size} ({why}), keeping its proportions; "
        f"choose '{other}' to {'fill the frame' if fit == 'pad' else 'keep the whole picture'}"
    )
    return np.ascontiguousarray(square), note


def from_upload(data: bytes, size: int, fit: str = DEFAULT_FIT) -> Session:
    """An uploaded image -> a session keyframe at the model's size (with a note if fitted)."""
    keyframe, note = fit_square(read_upload(data), size, fit)
    return Session(keyframe=keyframe, note=note)


def examples(results: Path, count: int = 4) -> list[Path]:
    """Test-clip render stores whose keyframes are offered as examples."""
    return sorted((results / "render" / "test").glob("*/test-*[0-9].zarr"))[:count]


def example_cue_path(store_path: Path) -> Path:
    """results/render/<split>/<shard>/<clip>.zarr -> results/cues/<split>/<shard>/<clip>.zarr"""
    shard = store_path.parent
    return shard.parents[2] / "cues" / shard.parent.name / shard.name / store_path.name


def from_example(store_path: Path, size: int) -> Session:
    """A test clip's keyframe with its rendered labels and, when its cue store exists, its
    true motion and the keyframe disparity that RGB+Depth variants condition on."""
    from stance.render import store as clip_store

    clip = clip_store.read_clip(store_path, frames={"rgb": [0], "segmentation": [0]})
    rgb, labels = clip.arrays["rgb"][0], clip.arrays["segmentation"][0]
    cue_path = example_cue_path(store_path)
    truth = cue_store.read(cue_path) if cue_path.exists() else None
    disparity = truth.keyframe_disparity if truth is not None else None
    note = ""
    if rgb.shape[:2] != (size, size):
        note = f"example resized from {rgb.shape[1]}x{rgb.shape[0]} to {size}x{size}"
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)
        if disparity is not None:
            disparity = cv2.resize(disparity, (size, size), interpolation=cv2.INTER_AREA)
    source = f"from the clip's cue store ({cue_path})" if disparity is not None else ""
    return Session(
        keyframe=rgb,
        labels=labels,
        disparity=disparity,
        disparity_source=source,
        truth=truth,
        note=note,
    )


def keyframe_disparity(session: Session, model: Model) -> np.ndarray:
    """The keyframe's disparity: an example's from its cue store, else estimated once with
    the configured depth model (the keyframe of a session never changes)."""
    if session.disparity is None:
        session.disparity = model.estimate_disparity(session.keyframe)
        session.disparity_source = model.depth_note()
    return session.disparity


# -- objects ----------------------------------------------------------------------------
def _point(session: Session, x: float, y: float, what: str) -> tuple[int, int]:
    h, w = session.keyframe.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise DemoError(f"{what} at ({x:.0f}, {y:.0f}) is outside the {w}x{h} image")
    return int(x), int(y)


def border_share(mask: np.ndarray) -> float:
    """The share of the image's border pixels that `mask` covers."""
    ring = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(ring.mean())


def background_reason(mask: np.ndarray) -> str | None:
    """Why a flood-filled region looks like the background rather than an object, or None."""
    area, border = float(mask.mean()), border_share(mask)
    if area > MAX_REGION_SHARE:
        return f"covers {area:.0%} of the image (more than {MAX_REGION_SHARE:.0%})"
    if border > MAX_BORDER_SHARE:
        return f"runs along {border:.0%} of the image border (more than {MAX_BORDER_SHARE:.0%})"
    return None


def mask_at(session: Session, x: float, y: float) -> np.ndarray:
    """The object under a click: the rendered instance of an example keyframe, else the
    connected region of similar colour (OpenCV flood fill), unless it looks like the
    background (`background_reason`)."""
    col, row = _point(session, x, y, "the click")
    if session.labels is not None:
        label = session.labels[row, col]
        if label == 0:
            raise DemoError("that click is on the floor or background: click on an object")
        return session.labels == label
    h, w = session.keyframe.shape[:2]
    fill = np.zeros((h + 2, w + 2), np.uint8)
    tolerance = (FLOOD_TOLERANCE,) * 3
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(session.keyframe.copy(), fill, (col, row), 0, tolerance, tolerance, flags)
    mask = fill[1:-1, 1:-1].astype(bool)
    if reason := background_reason(mask):
        raise DemoError(
            f"the region of similar colour under that click {reason}, so it looks like the "
            "background: click inside an object (a click selects the connected area within "
            f"{FLOOD_TOLERANCE} grey levels of the clicked colour)"
        )
    return mask


def _remember(session: Session) -> None:
    """Keep the objects as they are before a change, for undo."""
    session.history.append(snapshot(session))
    del session.history[:-MAX_HISTORY]


def _overlapping(session: Session, mask: np.ndarray) -> int | None:
    """The index of the object that overlaps `mask` (a click on it again), or None."""
    for k, inst in enumerate(session.instances):
        if (inst.mask & mask).any():
            return k
    return None


def _add(session: Session, mask: np.ndarray) -> int:
    """Add a new object (a change to undo); its index."""
    if len(session.instances) >= hints.MAX_INSTANCES:
        raise DemoError(f"at most {hints.MAX_INSTANCES} objects: remove one first")
    _remember(session)
    session.instances.append(Instance(mask))
    return len(session.instances) - 1


def select(session: Session, x: float, y: float) -> int:
    """Add the object under a click (or find it if already added); its index."""
    mask = mask_at(session, x, y)
    index = _overlapping(session, mask)
    return _add(session, mask) if index is None else index


def arrow_of_drag(session: Session, start, end, frames: int) -> tuple[float, float]:
    """A drag from pixel `start` to pixel `end` = where the object should be at the last
    frame: arrow (px/frame) = drag / (frames - 1)."""
    x0, y0 = _point(session, *start, "the arrow's start")
    x1, y1 = _point(session, *end, "the arrow's end")
    arrow = ((x1 - x0) / (frames - 1), (y1 - y0) / (frames - 1))
    hints.check_arrow(arrow, session.keyframe.shape[:2], "the arrow")
    return round(arrow[0], 4), round(arrow[1], 4)


def draw_arrow(session: Session, start, end, frames: int) -> int:
    """A drag from an object: select it (adding it when new) and set its arrow, as one
    change for undo. Returns its index."""
    arrow = arrow_of_drag(session, start, end, frames)
    mask = mask_at(session, *start)
    index = _overlapping(session, mask)
    if index is None:
        index = _add(session, mask)
    else:
        _remember(session)
    session.instances[index].arrow = arrow
    return index


def set_arrow(session: Session, index: int, start, end, frames: int) -> tuple[float, float]:
    """Set object `index`'s arrow from a drag (see `arrow_of_drag`)."""
    inst = _instance(session, index)
    arrow = arrow_of_drag(session, start, end, frames)
    _remember(session)
    inst.arrow = arrow
    return arrow


def set_physics(session: Session, index: int, mass_kg: float, dz: float) -> None:
    inst = _instance(session, index)
    if not (np.isfinite(mass_kg) and mass_kg > 0):
        raise DemoError(f"mass {mass_kg} kg: it must be positive")
    if not (np.isfinite(dz) and abs(dz) <= hints.MAX_DZ):
        raise DemoError(f"dz {dz} m/frame: expected |dz| <= {hints.MAX_DZ:g}")
    _remember(session)
    inst.mass_kg, inst.dz = float(mass_kg), float(dz)


def remove(session: Session, index: int) -> None:
    """Drop object `index` and its arrow."""
    _instance(session, index)
    _remember(session)
    del session.instances[index]


def clear(session: Session) -> None:
    """Drop every object and arrow (undo brings them back)."""
    if not session.instances:
        raise DemoError("nothing to clear: no object is selected")
    _remember(session)
    session.instances = []


def undo(session: Session) -> None:
    """Go back to the objects as they were before the last change."""
    if not session.history:
        raise DemoError("nothing to undo")
    session.instances = session.history.pop()


def fill_true_motion(session: Session) -> int:
    """Every object of an example keyframe with its clip's cues: the cue store's
    per-instance mean flow (px/frame over the reference frames), mass and dz, so the
    demo's cue is the one the test clip is evaluated with. Returns the object count."""
    if session.truth is None:
        raise DemoError(
            "no true motion for this keyframe: only an example test clip whose cue store "
            "exists has one (run the cue stage: `snakemake --cores 2`)"
        )
    table = session.truth.instances
    scale = session.keyframe.shape[0] / session.truth.labels.shape[0]  # px/frame at our size
    instances = []
    for k in range(len(table["u"])):
        mask = session.labels == k + 1
        u, v = float(table["u"][k]) * scale, float(table["v"][k]) * scale
        if not mask.any() or not (math.isfinite(u) and math.isfinite(v)):
            continue  # hidden in the keyframe: it has no pixel to carry a cue
        dz = float(np.nan_to_num(table["dz"][k]))
        instances.append(Instance(mask, (u, v), float(table["mass_kg"][k]), dz))
    _remember(session)
    session.instances = instances
    return len(instances)


def _instance(session: Session, index: int) -> Instance:
    if not session.instances:
        raise DemoError("no object selected: click on an object first")
    if not 0 <= index < len(session.instances):
        raise DemoError(f"object {index} does not exist (there are {len(session.instances)})")
    return session.instances[index]


# -- generation -------------------------------------------------------------------------
def _whole(value: Any, what: str, low: int, high: int) -> int:
    return int(_number(value, what, low, high, whole=True))


def _number(value: Any, what: str, low: float, high: float, whole: bool = False) -> float:
    """A form value as a number in [low, high] (`whole`: an integer), else a DemoError."""
    if whole:
        expected = f"expected a whole number from {int(low)} to {int(high)}"
    else:
        expected = f"expected a number from {low:g} to {high:g}"
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise DemoError(f"{what} is empty: {expected}")
    try:
        number = float(text)
    except ValueError:
        raise DemoError(f"{what} {text!r}: {expected}") from None
    if not (math.isfinite(number) and low <= number <= high) or (whole and number % 1):
        raise DemoError(f"{what} {text}: {expected}")
    return number


def generation_settings(values: Mapping[str, Any], defaults: Generation) -> Generation:
    """A page's prompt, seed, sampling steps and guidance scale, checked; a missing one
    takes the default (the config's generate section, the demo's prompt)."""
    prompt = str(values.get("prompt", defaults.prompt)).strip()
    if not prompt:
        raise DemoError(
            "the prompt is empty: describe the scene, e.g. 'objects moving on the floor.'"
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise DemoError(f"the prompt has {len(prompt)} characters: at most {MAX_PROMPT_CHARS}")
    return Generation(
        prompt=prompt,
        seed=_whole(values.get("seed", defaults.seed), "the seed", 0, MAX_SEED),
        steps=_whole(values.get("steps", defaults.steps), "sampling steps", 1, MAX_STEPS),
        guidance_scale=_number(
            values.get("guidance_scale", defaults.guidance_scale),
            "the guidance scale",
            0.0,
            MAX_GUIDANCE,
        ),
    )


def snapshot(session: Session) -> list[Instance]:
    """The objects as they are now, unaffected by later edits (a generation samples what
    was on the page when Generate was pressed)."""
    return [dataclasses.replace(inst) for inst in session.instances]


def cue_clip(
    session: Session, mass_params: Mass, instances: list[Instance] | None = None
) -> cue_store.CueClip:
    """The session's hints (or `instances` on its keyframe) rasterised exactly as `stance
    cues from-hints` does."""
    instances = session.instances if instances is None else instances
    if not instances:
        raise DemoError("no object selected: click on an object, then drag its arrow")
    parsed = [hints.Instance(i.mask, i.arrow, i.mass_kg, i.dz) for i in instances]
    attrs = {"clip_id": f"demo-{session.id}", "frames": [0, 1]}
    return hints.rasterise(session.keyframe, parsed, mass_params, attrs, session.disparity)


def strip_frames(frames: int, count: int = STRIP_FRAMES) -> list[int]:
    """At most `count` frame indices, evenly spaced, first and last included."""
    return sorted({round(t) for t in np.linspace(0, frames - 1, min(count, frames))})


def frame_strip(panels: list[np.ndarray], count: int = STRIP_FRAMES) -> np.ndarray:
    """The generated frames at a glance: `strip_frames` left to right, one row per stream
    (RGB on top, the auxiliary stream below), white gaps between them."""
    frames = strip_frames(min(len(p) for p in panels), count)
    h, w = panels[0].shape[1:3]
    gap = STRIP_GAP_PX
    out = np.full((len(panels) * (h + gap) - gap, len(frames) * (w + gap) - gap, 3), 255, np.uint8)
    for row, panel in enumerate(panels):
        for col, t in enumerate(frames):
            y, x = row * (h + gap), col * (w + gap)
            out[y : y + h, x : x + w] = panel[t]
    return out


# -- the hints bundle -------------------------------------------------------------------
def bundle_disparity(session: Session, model: Model) -> np.ndarray | None:
    """The keyframe depth for the bundle, so its hints drive every variant; None only when
    no depth model is available and this variant does not need one."""
    try:
        return keyframe_disparity(session, model)
    except UserError:
        if model.needs_disparity:
            raise
        return None


def bundle_readme(session: Session, model: Model, with_depth: bool) -> str:
    """How to turn the bundle into a video (README.txt in the bundle)."""
    gen = session.generation
    depth = f", depth.npy (keyframe disparity, {session.disparity_source})" if with_depth else ""
    prompt = f" --prompt {shlex.quote(gen.prompt)}" if gen else ""
    lines = [
        f"Hints drawn in the STANCE demo: hints.yaml (masks as inline RLE), keyframe.png{depth}.",
        "",
        "  stance cues from-hints hints.yaml --out demo.zarr",
        f"  stance generate hints demo.zarr --trained {model.trained} --config "
        f"{model.config_path}{prompt} --out demo.mp4",
        "",
    ]
    if gen:
        lines.append(
            f"The demo sampled with seed {gen.seed}, {gen.steps} sampling steps and guidance "
            f"scale {gen.guidance_scale:g}; set generate.seed, generate.steps and "
            "generate.guidance_scale in the config to the same values to sample the same way."
        )
    if not with_depth:
        lines.append(
            "No depth.npy: no depth model was available. Variants with a depth stream need "
            "`depth:` in hints.yaml (a grey PNG, brighter = nearer, or a .npy disparity)."
        )
    return "\n".join(lines) + "\n"


def hint_bundle(session: Session, model: Model) -> bytes:
    """A zip with hints.yaml (inline RLE masks) + keyframe.png + depth.npy (the keyframe
    disparity: the example's, else estimated) + README.txt: `stance cues from-hints
    hints.yaml` rebuilds the same cue store, and `stance generate hints` samples from it
    with any variant, depth streams included."""
    if not session.instances:
        raise DemoError("nothing to download yet: select an object and draw its arrow")
    disparity = bundle_disparity(session, model)
    spec: dict[str, Any] = {"keyframe": "keyframe.png"}
    if disparity is not None:
        spec["depth"] = "depth.npy"
    spec["instances"] = [
        {
            "mask": {"rle": hints.rle_encode(i.mask)},
            "arrow": [float(i.arrow[0]), float(i.arrow[1])],
            "mass": float(i.mass_kg),
            "dz": float(i.dz),
        }
        for i in session.instances
    ]
    image = io.BytesIO()
    Image.fromarray(session.keyframe).save(image, format="PNG")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        bundle.writestr("hints.yaml", yaml.safe_dump(spec, sort_keys=False))
        bundle.writestr("keyframe.png", image.getvalue())
        if disparity is not None:
            depth = io.BytesIO()
            np.save(depth, np.asarray(disparity, np.float32), allow_pickle=False)
            bundle.writestr("depth.npy", depth.getvalue())
        bundle.writestr("README.txt", bundle_readme(session, model, disparity is not None))
    return out.getvalue()
