"""Physics-IQ the reference benchmark's way, file by file: the baseline of `stance bench
evaluate` (the fast path is `physics_iq.score_view`, which must give identical numbers).

The reference (google-deepmind/physics-IQ-benchmark, code/) runs in two passes over mp4
files. Pass 1 (binary_mask_generator) decodes every video and writes its motion masks as
an mp4v video. Pass 2 (calculate_and_write_metrics_to_csv) decodes, per view, take 1 once
to learn its size and again for its frames, take 2 and the generated video, each resized
to a quarter and divided by 255 as float64 frame by frame, decodes the three mask videos
(three BGR channels each), and computes IoUs and MSEs frame by frame in Python. This
module follows those steps one by one, so that the bench measures what the reference
costs on the same files; it is not used by the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stance.evaluate.physics_iq import ViewMetrics
from stance.motion_masks import KERNEL


def write_mask_video(video: Path, out: Path, threshold: int = 10) -> None:
    """Pass 1 for one video: masks frame by frame, written at the video's (even-cropped)
    size and rounded fps."""
    capture = cv2.VideoCapture(str(video))
    fps = round(capture.get(cv2.CAP_PROP_FPS))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    size = (width - width % 2, height - height % 2)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size, isColor=False)
    ok, frame = capture.read()
    grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    average = grey.astype("float")
    writer.write(np.zeros_like(grey)[: size[1], : size[0]])
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        cv2.accumulateWeighted(grey, average, 0.3)
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(average))
        _, binary = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, KERNEL)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, KERNEL)
        writer.write(binary[: size[1], : size[0]])
    capture.release()
    writer.release()


def read_frames(path: Path, end: int, size=None, normalize: bool = True) -> list[np.ndarray]:
    """Frames [0, end) of a video, each resized and divided by 255 if asked; like the
    reference, the whole file is decoded whatever `end` is."""
    capture, frames, index = cv2.VideoCapture(str(path)), [], 0
    while capture.isOpened():
        ok, frame = capture.read()
        if not ok:
            break
        if index < end:
            if size:
                frame = cv2.resize(frame, size)
            frames.append(frame / 255.0 if normalize else frame)
        index += 1
    capture.release()
    return frames


def _iou_per_frame(masks1, masks2) -> list[float]:
    values = []
    for a, b in zip(masks1, masks2, strict=False):
        union = np.logical_or(a, b).sum()
        values.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
    return values


def _mse_per_frame(video1, video2) -> list[float]:
    if len(video1) != len(video2):
        raise ValueError("Videos must have the same number of frames.")
    return [
        float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
        for a, b in zip(video1, video2, strict=True)
    ]


def _ever(masks) -> np.ndarray:
    return (np.max(masks, axis=0) > 0).astype(np.uint8) * 255


def _weighted(masks) -> np.ndarray:
    return np.sum(masks, axis=0, dtype=np.uint16) / len(masks)


def _weighted_iou(w1, w2) -> float:
    union = np.maximum(w1, w2)
    valid = union > 0
    return 1.0 if valid.sum() == 0 else float(np.minimum(w1, w2)[valid].sum() / union[valid].sum())


def view_metrics(take1, take2, generated, masks1, masks2, masks_generated, fps):
    """Pass 2 for one view from its six files: (generated vs take 1, take 2 vs take 1)."""
    sample = read_frames(take1, 1, normalize=False)[0]
    size = (sample.shape[1] // 4, sample.shape[0] // 4)
    count = fps * 5
    real1 = read_frames(take1, count, size)
    ours = read_frames(generated, count, size)
    real2 = read_frames(take2, count, size)
    binary = [
        [(m > 127).astype(np.uint8) for m in read_frames(path, count, size, normalize=False)]
        for path in (masks1, masks2, masks_generated)
    ]
    m1, m2, mg = binary
    generated_metrics = ViewMetrics(
        st=[round(v, 4) for v in _iou_per_frame(m1, mg)],
        s=_iou_per_frame([_ever(m1)], [_ever(mg)])[0],
        ws=_weighted_iou(_weighted(m1), _weighted(mg)),
        mse=[round(v, 4) for v in _mse_per_frame(real1, ours)],
    )
    variance = ViewMetrics(
        st=[round(v, 4) for v in _iou_per_frame(m1, m2)],
        s=_iou_per_frame([_ever(m1)], [_ever(m2)])[0],
        ws=_weighted_iou(_weighted(m1), _weighted(m2)),
        mse=[round(v, 4) for v in _mse_per_frame(real1, real2)],
    )
    return generated_metrics, variance
