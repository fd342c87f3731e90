"""Instance Cues from a rendered clip and its predicted depth (training and test data).

The flow part is the per-instance mean of the rendered forward flow over each frame's own
mask, averaged over the reference frames [first, last) (px/frame); dz comes from `dz`;
mass from the clip's instance table. Everything is painted into the keyframe's labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from stance.cues import dz, kernel, mass, store
from stance.render.store import Clip
from stance.settings import Cues, as_dict


def reference_frames(num_frames: int, reference_frame: int) -> tuple[int, int]:
    """(0, k) with k clipped into the clip: the cue summarises motion from 0 to k."""
    return 0, max(1, min(reference_frame, num_frames - 1))


def instance_flow(
    seg: np.ndarray, flow: np.ndarray, num_ids: int, frames: tuple[int, int]
) -> np.ndarray:
    """(num_ids, 2) mean flow per label over frames [first, last), NaN when never visible."""
    first, last = frames
    means, counts = kernel.mean_flow(seg[first:last], flow[first:last], num_ids)
    visible = counts > 0
    with np.errstate(invalid="ignore"):
        return np.nansum(means, axis=0) / visible.sum(axis=0)[:, None]


def centre_dz(clip: Clip, frames: tuple[int, int]) -> np.ndarray:
    """Change of each instance centre's distance to the camera, metres per frame."""
    camera = np.asarray(clip.attrs["camera"]["position"])
    dist = np.linalg.norm(clip.tracks["positions"] - camera, axis=-1)
    first, last = frames
    return (dist[:, last] - dist[:, first]) / (last - first)


def from_render(
    clip: Clip,
    depth_pair: np.ndarray,
    disparity_pair: np.ndarray,
    settings: Cues,
    sources: Mapping[str, Any],
) -> store.CueClip:
    """Compute the cue store content of one clip.

    `clip.arrays` need rgb (frame 0 at least), segmentation and forward_flow for frames
    0..k (at least); `depth_pair` (rendered) and `disparity_pair` (predicted) hold frames
    0 and k only, (2,H,W): the reference frames are `reference_frames(...)`.
    """
    seg = clip.arrays["segmentation"]
    n = len(clip.attrs["instances"])
    num_ids = n + 1
    frames = reference_frames(clip.attrs["render"]["frames"], settings.reference_frame)
    first, last = frames
    steps = last - first
    gt_depth, disparity, seg_pair = depth_pair, disparity_pair, seg[[first, last]]
    flow = instance_flow(seg, clip.arrays["forward_flow"], num_ids, frames)[1:]
    dz_params = settings.dz
    estimated = dz.estimate(disparity, seg_pair, num_ids, steps, dz_params, gt_depth)[1:]
    literal_params = dataclasses.replace(dz_params, method="literal")
    literal = dz.estimate(disparity, seg_pair, num_ids, steps, literal_params)
    truth = dz.ground_truth(
        gt_depth, seg_pair, num_ids, steps, dz_params.erode_px, dz_params.units
    )[1:]
    mass_kg = np.array([inst["mass"] for inst in clip.attrs["instances"]])
    mass_channel = mass.normalise(mass_kg, settings.mass)
    # NaN (an instance invisible in the reference frames) paints as 0: no motion evidence.
    values = np.nan_to_num(np.column_stack([flow, estimated, mass_channel]))
    labels = seg[0].astype(np.uint16)
    columns = {
        "u": flow[:, 0],
        "v": flow[:, 1],
        "dz": estimated,
        "mass_kg": mass_kg,
        "mass_channel": mass_channel,
        "area_px": np.bincount(labels.ravel(), minlength=num_ids)[1:],
        "dz_gt": truth,
        "dz_centre": centre_dz(clip, frames),
        "dz_literal": literal[1:],
    }
    return store.CueClip(
        cue=store.paint(labels, values.astype(np.float32)),
        keyframe=clip.arrays["rgb"][0],
        labels=labels,
        instances={k: np.asarray(v, dtype=np.float32) for k, v in columns.items()},
        keyframe_disparity=np.asarray(disparity[0], np.float32),
        attrs={
            "clip_id": clip.attrs["clip_id"],
            "source": "render",
            "frames": list(frames),
            "dz": as_dict(dz_params),
            "mass": as_dict(settings.mass),
            **sources,
        },
    )
