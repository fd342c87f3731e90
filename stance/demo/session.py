"""What the demo does, without the web server: pick a trained variant, turn clicks into
masks and drags into arrows, rasterise them with the hints path (`cues/hints.py`, the code
`stance cues from-hints` runs), generate, and write the hint file that reproduces it.

One `Session` per page: a keyframe (an example test clip's, with its rendered instance
labels, or an upload, resized to the model's size) and the instances drawn on it.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image

from stance import config
from stance.cues import hints
from stance.cues import store as cue_store
from stance.errors import UserError
from stance.settings import Mass, Settings

FLOOD_TOLERANCE = 12  # grey levels: a click selects the connected region of similar colour
MAX_UPLOAD_BYTES = 32 * 2**20
DEFAULT_MASS_KG = 1.0


class DemoError(UserError, ValueError):
    """Bad input on the page: shown to the user as a message, never as a traceback."""


@dataclass
class Model:
    """The trained variant the demo samples with, and how it was trained."""

    trained: Path
    config_path: Path
    cfg: Settings
    record: dict[str, Any]

    @property
    def name(self) -> str:
        return self.trained.name

    @property
    def size(self) -> int:
        return self.cfg.render.resolution

    @property
    def frames(self) -> int:
        return self.cfg.render.frames

    def describe(self) -> str:
        (identity,) = self.record["variant"].values()
        cues = identity["cue_mode"]
        if cues == "dense_rope":
            cues = f"Dense RoPE, {identity['motion_tokens']} motion tokens"
        return (
            f"variant {self.name} (cues: {cues}; auxiliary stream: {identity['aux']}) of run "
            f"'{self.cfg.run_name}' ({self.config_path}): {self.record['model']} trained "
            f"{self.record['steps']} steps on {len(self.record['data'])} clips; generates "
            f"{self.frames} frames at {self.size}x{self.size} with {self.cfg.generate.steps}"
            f" sampling steps, memory profile {self.cfg.generate.memory_profile}."
        )


def reported_variant(results: Path) -> str | None:
    """The variant the results tables report as STANCE (evaluate.stance_variant, written
    to results/evaluate/published.csv), or None before the tables exist."""
    path = results / "evaluate" / "published.csv"
    if not path.exists():
        return None
    import pandas as pd

    rows = pd.read_csv(path)
    ours = rows.loc[rows["paper row"].str.startswith("STANCE"), "our row"]
    return str(ours.iloc[0]) if len(ours) and ours.iloc[0] != "-" else None


def find_model(results: Path = Path("results"), trained: Path | None = None) -> Model:
    """`trained`, or the variant the tables report as STANCE (one rule for the demo and the
    report: `evaluate.stance_variant`); before the tables exist, the first trained Dense
    RoPE variant, else the first cue variant. Its config is configs/small.yaml when it was
    trained on the small-scale stack, else config.yaml."""
    if trained is None:
        folders = sorted(p.parent.parent for p in (results / "train").glob("*/transformer/*.json"))
        cued = [f for f in folders if _variant(f)["cue_mode"] != "none"]
        if not cued:
            raise DemoError(
                f"no trained cue variant under {results / 'train'}: run `snakemake --cores 2` "
                "(tiny default) or `snakemake --cores 2 --configfile=configs/small.yaml` "
                "first, or pass --trained DIR"
            )
        reported = reported_variant(results)
        dense = [f for f in cued if _variant(f)["cue_mode"] == "dense_rope"]
        trained = min(cued, key=lambda f: (f.name != reported, f not in dense, f.name))
    record_path = trained / "train.resolved.json"
    if not record_path.exists():
        raise DemoError(f"{trained} is not a trained variant folder (no train.resolved.json)")
    record = json.loads(record_path.read_text())
    config_path = Path(config.BUILT_VIDEO_CONFIGS.get(record["model"], "config.yaml"))
    return Model(trained, config_path, config.load_settings(config_path), record)


def _variant(trained: Path) -> dict[str, Any]:
    return json.loads((trained / "transformer" / "config.json").read_text())


@dataclass
class Instance:
    mask: np.ndarray  # (H,W) bool
    arrow: tuple[float, float] = (0.0, 0.0)  # px/frame
    mass_kg: float = DEFAULT_MASS_KG
    dz: float = 0.0


@dataclass
class Session:
    keyframe: np.ndarray  # (S,S,3) uint8 at the model's size
    labels: np.ndarray | None = None  # rendered instance labels of an example keyframe
    disparity: np.ndarray | None = None  # an example's keyframe disparity (depth streams)
    note: str = ""
    instances: list[Instance] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    progress: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    lock: threading.Lock = field(default_factory=threading.Lock)
    video: bytes | None = None


def from_upload(data: bytes, size: int) -> Session:
    """An uploaded image -> a session keyframe at the model's size (with a note if resized)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise DemoError(f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MiB; use a smaller image")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > hints.MAX_PIXELS:
            raise DemoError(
                f"the image is {image.width}x{image.height}; at most 4096x4096 is accepted"
            )
        rgb = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DemoError(f"the upload is not an image PIL can read ({exc})") from exc
    note = ""
    if rgb.shape[:2] != (size, size):
        note = (
            f"resized from {rgb.shape[1]}x{rgb.shape[0]} to {size}x{size}, the size this model "
            "was trained and generates at"
        )
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return Session(keyframe=rgb, note=note)


def examples(results: Path, count: int = 4) -> list[Path]:
    """Test-clip render stores whose keyframes are offered as examples."""
    return sorted((results / "render" / "test").glob("*/test-*[0-9].zarr"))[:count]


def from_example(store_path: Path, size: int) -> Session:
    """A test clip's keyframe with its rendered labels and, when its cue store exists, the
    keyframe disparity that RGB+Depth variants condition their depth stream on."""
    from stance.render import store as clip_store

    clip = clip_store.read_clip(store_path, frames={"rgb": [0], "segmentation": [0]})
    rgb, labels = clip.arrays["rgb"][0], clip.arrays["segmentation"][0]
    shard = store_path.parent
    cue_path = shard.parents[2] / "cues" / shard.parent.name / shard.name / store_path.name
    disparity = cue_store.read(cue_path).keyframe_disparity if cue_path.exists() else None
    note = ""
    if rgb.shape[:2] != (size, size):
        note = f"example resized from {rgb.shape[1]}x{rgb.shape[0]} to {size}x{size}"
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)
        if disparity is not None:
            disparity = cv2.resize(disparity, (size, size), interpolation=cv2.INTER_AREA)
    return Session(keyframe=rgb, labels=labels, disparity=disparity, note=note)


def _point(session: Session, x: float, y: float, what: str) -> tuple[int, int]:
    h, w = session.keyframe.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise DemoError(f"{what} at ({x:.0f}, {y:.0f}) is outside the {w}x{h} image")
    return int(x), int(y)


def mask_at(session: Session, x: float, y: float) -> np.ndarray:
    """The object under a click: the rendered instance of an example keyframe, else the
    connected region of similar colour (OpenCV flood fill)."""
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
    if mask.mean() > 0.5:
        raise DemoError(
            "the region under that click covers more than half the image (the background?):"
            " click on an object"
        )
    return mask


def select(session: Session, x: float, y: float) -> int:
    """Add the object under a click (or find it if already added); its index."""
    mask = mask_at(session, x, y)
    for k, inst in enumerate(session.instances):
        if (inst.mask & mask).any():
            return k
    if len(session.instances) >= hints.MAX_INSTANCES:
        raise DemoError(f"at most {hints.MAX_INSTANCES} objects")
    session.instances.append(Instance(mask))
    return len(session.instances) - 1


def set_arrow(session: Session, index: int, start, end, frames: int) -> tuple[float, float]:
    """A drag from pixel `start` to pixel `end` = where the object should be at the last
    frame: arrow (px/frame) = drag / (frames - 1)."""
    inst = _instance(session, index)
    x0, y0 = _point(session, *start, "the arrow's start")
    x1, y1 = _point(session, *end, "the arrow's end")
    arrow = ((x1 - x0) / (frames - 1), (y1 - y0) / (frames - 1))
    hints.check_arrow(arrow, session.keyframe.shape[:2], f"object {index}")
    inst.arrow = (round(arrow[0], 4), round(arrow[1], 4))
    return inst.arrow


def set_physics(session: Session, index: int, mass_kg: float, dz: float) -> None:
    inst = _instance(session, index)
    if not (np.isfinite(mass_kg) and mass_kg > 0):
        raise DemoError(f"mass {mass_kg} kg: it must be positive")
    if not (np.isfinite(dz) and abs(dz) <= hints.MAX_DZ):
        raise DemoError(f"dz {dz} m/frame: expected |dz| <= {hints.MAX_DZ:g}")
    inst.mass_kg, inst.dz = float(mass_kg), float(dz)


def _instance(session: Session, index: int) -> Instance:
    if not session.instances:
        raise DemoError("no object selected: click on an object first")
    if not 0 <= index < len(session.instances):
        raise DemoError(f"object {index} does not exist (there are {len(session.instances)})")
    return session.instances[index]


def cue_clip(session: Session, mass_params: Mass) -> cue_store.CueClip:
    """The session's hints rasterised exactly as `stance cues from-hints` does."""
    if not session.instances:
        raise DemoError("no object selected: click on an object, then drag its arrow")
    parsed = [hints.Instance(i.mask, i.arrow, i.mass_kg, i.dz) for i in session.instances]
    attrs = {"clip_id": f"demo-{session.id}", "frames": [0, 1]}
    return hints.rasterise(session.keyframe, parsed, mass_params, attrs, session.disparity)


def hint_bundle(session: Session) -> bytes:
    """A zip with hints.yaml (inline RLE masks) + keyframe.png: `stance cues from-hints
    hints.yaml` rebuilds the same cue store."""
    if not session.instances:
        raise DemoError("nothing to download yet: select an object and draw its arrow")
    spec = {
        "keyframe": "keyframe.png",
        "instances": [
            {
                "mask": {"rle": hints.rle_encode(i.mask)},
                "arrow": [float(i.arrow[0]), float(i.arrow[1])],
                "mass": float(i.mass_kg),
                "dz": float(i.dz),
            }
            for i in session.instances
        ],
    }
    image = io.BytesIO()
    Image.fromarray(session.keyframe).save(image, format="PNG")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        bundle.writestr("hints.yaml", yaml.safe_dump(spec, sort_keys=False))
        bundle.writestr("keyframe.png", image.getvalue())
    return out.getvalue()
