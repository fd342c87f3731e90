"""Instance Cues from a real video's conditioning clip (the Physics-IQ benchmark track).

A real benchmark video has no segmentation or rendered flow, so each part of the cue is
estimated from the frames before the switch frame, at the generation size (the frames
squeezed to the model's square, as generation squeezes the switch frame; scoring resizes
the generated video back to the real one's aspect):
- instances: connected components (8-connected) of the Physics-IQ motion mask at the last
  conditioning frame (`stance.motion_masks`, the benchmark's own notion of
  "moving"), at least `min_area_px` pixels, the `max_instances` largest;
- arrow (u, v): the mean Farneback optical flow inside each instance over the last
  `cue_frames` frame pairs, computed from each frame back to the one before on the later
  frame's grid and negated, so that the instance mask of the last frame is where the
  flow is read; px/frame at the benchmark's frame rate (= render.fps, the model's);
- dz: `cues.dz.estimate` on Depth-Anything-V2 disparity of the frame `cue_frames` before
  the switch frame and of the switch frame, with first-frame alignment (no ground truth
  here) and the switch frame's labels in both (the objects moved only a few pixels);
- mass: the stated default `mass_kg` for every instance, normalised as in training.
A static clip gives no instances: the cue map is all zero (the model sees "no motion").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from stance import physics_iq_folder, provenance, stores
from stance.cues import dz, mass, store, visualize
from stance.errors import UserError
from stance.motion_masks import motion_masks
from stance.settings import Cues, Depth, as_dict

log = logging.getLogger(__name__)


def squeeze(frames: np.ndarray, size: int) -> np.ndarray:
    """(T,H,W,3) or (H,W,3) uint8 -> the same at size x size (area resampling)."""
    if frames.ndim == 3:
        return cv2.resize(frames, (size, size), interpolation=cv2.INTER_AREA)
    return np.stack([squeeze(f, size) for f in frames])


def moving_instances(frames: np.ndarray, min_area_px: int, max_instances: int) -> np.ndarray:
    """(H,W) uint16 labels of the moving regions at the last frame: 0 = static, 1 = the
    largest region, ..."""
    moving = motion_masks(frames)[-1].astype(np.uint8)
    _, components, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = [k + 1 for k in np.argsort(-areas, kind="stable") if areas[k] >= min_area_px]
    labels = np.zeros(components.shape, np.uint16)
    for new, old in enumerate(keep[:max_instances], start=1):
        labels[components == old] = new
    return labels


def backward_velocity(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """(H,W,2) motion from `earlier` to `later` in px/frame, on `later`'s grid."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (later, earlier)]
    back = cv2.calcOpticalFlowFarneback(*grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return -back


def instance_velocity(frames: np.ndarray, labels: np.ndarray, pairs: int) -> np.ndarray:
    """(N, 2) mean (u, v) inside each label over the last `pairs` frame pairs."""
    n = int(labels.max(initial=0))
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    total = np.zeros((n, 2))
    for t in range(len(frames) - pairs, len(frames)):
        flow = backward_velocity(frames[t - 1], frames[t])
        for c in range(2):
            total[:, c] += np.bincount(labels.ravel(), flow[..., c].ravel(), n + 1)[1:]
    return total / np.maximum(counts, 1)[:, None] / pairs


Disparity = Callable[[np.ndarray], np.ndarray]  # (T,H,W,3) uint8 -> (T,H,W) float32


def video_cue(
    conditioning: np.ndarray,
    switch_frame: np.ndarray,
    size: int,
    settings: Cues,
    disparity: Disparity,
    attrs: Mapping[str, Any],
) -> store.CueClip:
    """The cue store content of one view: `conditioning` (T,H,W,3) uint8 at the
    benchmark's fps ending at the switch frame, `switch_frame` (H,W,3) uint8 the image
    generation starts from; `settings` is the `cues` config section."""
    video = settings.from_video
    if len(conditioning) < 2:
        raise physics_iq_folder.BenchmarkError(
            f"{attrs.get('clip_id', 'a conditioning clip')} has {len(conditioning)} frame(s); "
            "cues need at least 2"
        )
    frames = squeeze(conditioning, size)
    keyframe = squeeze(switch_frame, size)
    pairs = min(video.cue_frames, len(frames) - 1)
    labels = moving_instances(frames, video.min_area_px, video.max_instances)
    n = int(labels.max(initial=0))
    velocity = instance_velocity(frames, labels, pairs)
    first = len(frames) - 1 - pairs
    depth_pair = disparity(np.stack([frames[first], keyframe]))
    if settings.dz.units != "relative":
        raise UserError(
            "cues.dz.units is absolute (metres per frame), which a video without metric "
            "depth cannot give: set cues.dz.units: relative (and train with it) so that "
            "benchmark cues have the scale the model was trained on"
        )
    dz_params = dataclasses.replace(settings.dz, align_to="first_frame")  # no ground truth here
    dz_values = dz.estimate(depth_pair, np.stack([labels, labels]), n + 1, pairs, dz_params)[1:]
    mass_kg = np.full(n, video.mass_kg)
    mass_channel = mass.normalise(mass_kg, settings.mass)
    values = np.nan_to_num(np.column_stack([velocity, dz_values, mass_channel]))
    columns = instance_columns(labels, velocity, dz_values, mass_kg, mass_channel)
    return store.CueClip(
        cue=store.paint(labels, values.astype(np.float32).reshape(n, len(store.CHANNELS))),
        keyframe=keyframe,
        labels=labels,
        instances={k: np.asarray(v, dtype=np.float32) for k, v in columns.items()},
        keyframe_disparity=np.asarray(depth_pair[1], np.float32),
        attrs={
            "source": "physics_iq",
            "frames": [first, len(frames) - 1],
            "dz": as_dict(dz_params),
            "mass": as_dict(settings.mass),
            "from_video": as_dict(video),
            **attrs,
        },
    )


def instance_columns(labels, velocity, dz_values, mass_kg, mass_channel) -> dict:
    """The cue store's per-instance table of a video's instances; what only a render
    knows (true dz and its variants) is NaN."""
    n = len(velocity)
    unknown = np.full(n, np.nan)
    return {
        "u": velocity[:, 0],
        "v": velocity[:, 1],
        "dz": dz_values,
        "mass_kg": mass_kg,
        "mass_channel": mass_channel,
        "area_px": np.bincount(labels.ravel(), minlength=n + 1)[1:],
        "dz_gt": unknown,
        "dz_centre": unknown,
        "dz_literal": unknown,
    }


def write_physics_iq_cues(
    benchmark: Path,
    descriptions: Path | None,
    out_dir: Path,
    settings: Cues,
    size: int,
    fps: int,
    depth_source: str,
    depth_settings: Depth,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    """One cue store per benchmark view (`<ID>_<view>_<scenario>.zarr`) + a picture."""
    from stance.depth.model import estimator

    root = physics_iq_folder.root_of(benchmark)
    views = physics_iq_folder.scan(root, fps, descriptions)
    out_dir.mkdir(parents=True, exist_ok=True)
    stores.remove_partials(out_dir)
    disparity = estimator(depth_source, depth_settings, allow_download)

    start = time.perf_counter()
    for item in tqdm(views, desc="physics-iq cues", unit="view"):
        conditioning = physics_iq_folder.conditioning_frames(root, item, fps)
        switch = np.asarray(
            Image.open(physics_iq_folder.switch_frame_path(root, item)).convert("RGB")
        )
        attrs = {"clip_id": item.name, "prompt": item.description, "category": item.category}
        attrs |= {"benchmark": str(root), "fps": fps, "code_hash": code_hash}
        cue = video_cue(
            conditioning, switch, size, settings, disparity, attrs | {"depth_model": depth_source}
        )
        store.write(out_dir / f"{item.name}.zarr", cue)
        Image.fromarray(visualize.render_cue(cue)).save(out_dir / f"{item.name}.cue.png")
    provenance.write_resolved_config(
        out_dir,
        "cues",
        {
            "cues": as_dict(settings),
            "benchmark": str(root),
            "descriptions": str(descriptions) if descriptions else None,
            "size": size,
            "fps": fps,
            "depth_model": depth_source,
            "code_hash": code_hash,
            "clips": [item.name for item in views],
            "seconds": time.perf_counter() - start,
        },
    )
