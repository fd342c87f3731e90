"""The Physics-IQ benchmark's motion masks (which pixels move in a video), shared by the
Physics-IQ scoring (stance/evaluate/physics_iq.py) and the cues derived from a real video
(stance/cues/from_video.py): in the core, so that neither stage's edits rerun the other.
"""

from __future__ import annotations

import cv2
import numpy as np

KERNEL = np.ones((5, 5), np.uint8)
MAX_CHANNELS = 128  # OpenCV filters take at most this many channels in one image


def blur_frames(grey: np.ndarray) -> np.ndarray:
    """(T,H,W) uint8 -> each frame's 5x5 Gaussian blur, frames filtered as the channels of
    one image (up to MAX_CHANNELS at a time): OpenCV's 8-bit Gaussian is exact integer
    arithmetic per channel, so this equals blurring frame by frame (tested)."""
    out = np.empty_like(grey)
    for start in range(0, len(grey), MAX_CHANNELS):
        chunk = np.ascontiguousarray(grey[start : start + MAX_CHANNELS].transpose(1, 2, 0))
        blurred = cv2.GaussianBlur(chunk, (5, 5), 0)
        out[start : start + MAX_CHANNELS] = blurred.reshape(chunk.shape).transpose(2, 0, 1)
    return out


def motion_masks(frames: np.ndarray, threshold: int = 10) -> np.ndarray:
    """(T,H,W,3) uint8 RGB -> (T,H,W) bool motion masks, as the reference computes them
    frame by frame; the per-pixel steps and the blur run once over all frames (the same
    numbers: see tests), only the running average's recurrence and the morphology loop."""
    t, h, w = frames.shape[:3]
    masks = np.zeros((t, h, w), dtype=bool)
    if t == 0:
        return masks
    grey = cv2.cvtColor(np.ascontiguousarray(frames).reshape(t * h, w, 3), cv2.COLOR_RGB2GRAY)
    grey = grey.reshape(t, h, w)
    blurred = blur_frames(grey)
    average = blurred[0].astype(np.float64)
    rounded = np.empty_like(blurred)  # frame 0 keeps an empty mask
    for k in range(1, t):
        cv2.accumulateWeighted(blurred[k], average, 0.3)
        rounded[k] = cv2.convertScaleAbs(average)
    diff = cv2.absdiff(blurred[1:].reshape(-1, w), rounded[1:].reshape(-1, w))
    moving = (diff.reshape(t - 1, h, w) > threshold).astype(np.uint8) * 255
    for k in range(1, t):
        binary = cv2.morphologyEx(moving[k - 1], cv2.MORPH_OPEN, KERNEL)
        masks[k] = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, KERNEL) > 0
    return masks
