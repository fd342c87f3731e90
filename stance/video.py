"""Video files: H.264 previews through PyAV (its wheels bundle libx264; no system ffmpeg)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18) -> Path:
    """Write (T,H,W,3) uint8 frames as H.264 mp4 (yuv420p), atomically."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T,H,W,3) uint8 frames, got {frames.dtype} {frames.shape}")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    # yuv420p needs even sizes: pad by edge replication rather than fail.
    _t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # one encoder thread: x264's threaded encode is not byte-reproducible
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Decode a video to (T,H,W,3) uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
