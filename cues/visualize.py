"""Pictures of cues: flow colours blended over the keyframe, one arrow per instance."""

from __future__ import annotations

import cv2
import numpy as np

from stance.cues.store import CueClip

MIN_SIZE = 128  # tiny frames are upscaled (integer factor) so arrows are readable


def flow_colours(u: np.ndarray, v: np.ndarray, max_speed: float | None = None) -> np.ndarray:
    """Standard flow colour wheel: hue = direction, saturation = speed; (H,W,3) uint8 RGB."""
    speed = np.hypot(u, v)
    max_speed = max_speed or max(float(speed.max(initial=0)), 1e-6)
    hsv = np.zeros((*u.shape, 3), dtype=np.uint8)
    hsv[..., 0] = ((np.degrees(np.arctan2(v, u)) % 360) / 2).astype(np.uint8)
    hsv[..., 1] = np.clip(speed / max_speed * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def render_cue(clip: CueClip, frames_ahead: float = 4.0) -> np.ndarray:
    """(H*scale, W*scale, 3) uint8: keyframe with cue colours inside masks and arrows that
    show the motion over `frames_ahead` frames (dz as arrow thickness is not drawn: text)."""
    scale = max(1, -(-MIN_SIZE // min(clip.labels.shape)))
    key = cv2.resize(clip.keyframe, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cue = clip.cue[0]
    colours = flow_colours(cue[..., 0], cue[..., 1])
    colours = cv2.resize(colours, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    inside = cv2.resize(
        (clip.labels > 0).astype(np.uint8),
        None,
        fx=scale,
        fy=scale,
        interpolation=cv2.INTER_NEAREST,
    ).astype(bool)
    out = key.copy()
    out[inside] = (0.4 * key[inside] + 0.6 * colours[inside]).astype(np.uint8)
    for k in range(len(clip.instances["u"])):
        ys, xs = np.nonzero(clip.labels == k + 1)
        if len(xs) == 0:
            continue
        start = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) * scale
        motion = np.array([clip.instances["u"][k], clip.instances["v"][k]])
        end = start + np.nan_to_num(motion) * frames_ahead * scale
        cv2.arrowedLine(
            out,
            tuple(int(c) for c in start),
            tuple(int(c) for c in end),
            (255, 255, 255),
            1,
            tipLength=0.3,
        )
    return out


def write_picture(cue_path, out) -> None:
    """PNG of a cue store: flow colours inside the masks + one arrow per instance."""
    from PIL import Image

    from stance.cues import store

    Image.fromarray(render_cue(store.read(cue_path))).save(out)
