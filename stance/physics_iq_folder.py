"""The Physics-IQ benchmark folder (google-deepmind/physics-IQ-benchmark), read only here:
the input format of the benchmark jobs (cues from the conditioning clips, generation from
the switch frames, scoring against the testing takes). Two tracks share one layout:

    Original  physics-IQ-benchmark/           (the first download; code/ of the repository)
    Verified  physics-IQ-benchmark-verified/  (the Hugging Face dataset
              Anates-Labs-Research/Physics-IQ-Verified; physiq/ of the repository)

    split-videos/<testing>/<F>FPS/<ID>_testing-videos_<F>FPS_<view>_take-<k>_<scenario>.mp4
    split-videos/<conditioning>/<F>FPS/<ID>_conditioning-videos_<F>FPS_<view>_take-1_<scenario>.mp4
    full-videos/take-1/<F>FPS/<ID>_full-videos_<F>FPS_<view>_take-1_<scenario>.mp4
    switch-frames/<ID>_switch-frames_anyFPS_<view>_<scenario>.jpg
    video-masks/real/<F>FPS/<ID>_video-masks_<F>FPS_<view>_take-<k>_<scenario>.mp4

<testing> is `testing` (the reference's downloaders and evaluators) or `testing-videos`
(the name in its README's trees); <conditioning> likewise. Where a download has no split
conditioning clips (the Verified dataset's documented layout lists full videos instead),
the conditioning part of a view is its full take-1 video before the switch frame: all but
the last (testing video's length) frames at the same rate (`conditioning_frames`; a
switch-frame JPEG that matches another frame is reported). The real takes' motion masks
are used as shipped where the wanted rate's video-masks/real folder exists
(`real_mask_path`, `read_mask_video`), as the reference does on both tracks; else they are
computed from the takes.

The track is named by the folder (`track_of`), or set with evaluate.physics_iq_track.

A view is one (scenario, view) pair; its take-1 ID names it, and the generated video of a
view is `<ID>_<view>_<scenario>.mp4` (the reference's naming, so a generated folder can
also be scored by the reference code). Take 2 of a view has its own ID.

Frame rates: the download ships 30FPS and usually 24/16/8FPS. When the folder of the
wanted rate is missing, the 30FPS video is resampled as the reference's fps_changer does
(`resample`): the first min(5 s, duration), frame j blends frames floor(a), floor(a) + 1
with a = j (n - 1) / (m - 1), truncated to uint8.

Descriptions: a CSV with columns scenario, description, category, generated_video_name
(the benchmark repository's descriptions/descriptions.csv, descriptions_original.csv or a
templated best_practice/ file); its rows give each view's prompt and category. Without
one, the prompt is the scenario name in words and the category "unknown".
"""

from __future__ import annotations

import csv
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stance.errors import UserError

log = logging.getLogger(__name__)

ORIGINAL, VERIFIED = "original", "verified"
FOLDERS = {ORIGINAL: "physics-IQ-benchmark", VERIFIED: "physics-IQ-benchmark-verified"}
TRACKS = ("auto", ORIGINAL, VERIFIED)
SOURCE_FPS = 30
SECONDS = 5  # the benchmark scores fps x 5 frames
CONDITIONING, TESTING = "conditioning-videos", "testing-videos"  # the kinds in file names
SPLIT_FOLDERS = {  # the split-videos/ subfolder of each kind: Original's name, Verified's
    TESTING: ("testing-videos", "testing"),
    CONDITIONING: ("conditioning-videos", "conditioning"),
}
UNKNOWN_CATEGORY = "unknown"


class BenchmarkError(UserError, ValueError):
    """The benchmark folder is missing, incomplete or not in the reference layout."""


@dataclass(frozen=True)
class View:
    id: str  # take-1 ID, e.g. "0001"
    view: str  # e.g. "perspective-left"
    scenario: str  # e.g. "trimmed-ball-and-block-fall" (no extension)
    take2_id: str
    description: str = ""
    category: str = UNKNOWN_CATEGORY

    @property
    def name(self) -> str:
        """The generated video's stem (the reference's naming)."""
        return f"{self.id}_{self.view}_{self.scenario}"


def root_of(folder: str | Path, track: str = "auto") -> Path:
    """The benchmark folder itself, given it or its parent: with a track set, that
    track's folder; a parent holding both tracks needs the track named."""
    folder = Path(folder)
    if (folder / "split-videos").is_dir():
        return folder
    wanted = [FOLDERS[track]] if track in FOLDERS else list(FOLDERS.values())
    found = [folder / name for name in wanted if (folder / name / "split-videos").is_dir()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise BenchmarkError(
            f"evaluate.physics_iq_benchmark: {folder} holds both tracks "
            f"({', '.join(p.name for p in found)}); name one folder or set "
            "evaluate.physics_iq_track: original|verified"
        )
    raise BenchmarkError(
        f"evaluate.physics_iq_benchmark: {folder} holds no split-videos/ folder; download "
        f"the benchmark ({FOLDERS[VERIFIED]} from the Hugging Face dataset "
        f"Anates-Labs-Research/Physics-IQ-Verified, or {FOLDERS[ORIGINAL]} with the "
        "benchmark repository's downloader) and name that folder or its parent"
    )


def track_of(root: Path, track: str = "auto") -> str:
    """The benchmark track of a folder: `track` when set, else the folder's name."""
    if track not in TRACKS:
        raise BenchmarkError(f"evaluate.physics_iq_track {track!r}: expected one of {TRACKS}")
    if track != "auto":
        return track
    for name, folder in FOLDERS.items():
        if root.name == folder:
            return name
    raise BenchmarkError(
        f"{root}: the folder's name says neither track ({FOLDERS[ORIGINAL]} or "
        f"{FOLDERS[VERIFIED]}); rename it or set evaluate.physics_iq_track: original|verified"
    )


def _parse(path: Path, kind: str) -> tuple[str, str, str, str]:
    """(ID, view, take, scenario) of a split video's file name."""
    parts = path.stem.split("_", 5)
    if len(parts) != 6 or parts[1] != kind or not parts[4].startswith("take-"):
        raise BenchmarkError(
            f"{path.name}: expected <ID>_{kind}_<F>FPS_<view>_take-<k>_<scenario>.mp4 (the "
            "benchmark's naming); remove or rename the file"
        )
    return parts[0], parts[3], parts[4], parts[5]


def _split_folder(root: Path, kind: str) -> Path | None:
    """split-videos/<kind's folder>, by either track's name; None when neither exists."""
    for name in SPLIT_FOLDERS[kind]:
        if (root / "split-videos" / name).is_dir():
            return root / "split-videos" / name
    return None


def _rate_folder(base: Path, fps: int) -> Path | None:
    """base/<fps>FPS, else base/30FPS (resampled on reading), else None."""
    for rate in (fps, SOURCE_FPS):
        if (base / f"{rate}FPS").is_dir():
            return base / f"{rate}FPS"
    return None


def _fps_folder(root: Path, kind: str, fps: int) -> Path:
    """The split folder of `kind` at `fps`, or at 30 FPS when that rate is missing."""
    base = _split_folder(root, kind) or root / "split-videos" / SPLIT_FOLDERS[kind][0]
    folder = _rate_folder(base, fps)
    if folder is None:
        found = sorted(p.name for p in base.glob("*FPS")) if base.is_dir() else []
        raise BenchmarkError(
            f"{base} has neither {fps}FPS nor {SOURCE_FPS}FPS (found: {found or 'nothing'}); "
            "download the benchmark's 30FPS videos"
        )
    return folder


def descriptions(path: str | Path | None) -> dict[str, tuple[str, str]]:
    """Generated-video stem -> (description, category) from a descriptions CSV."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(
            f"evaluate.physics_iq_descriptions: {path} is not a file; give the benchmark "
            "repository's descriptions/descriptions.csv or null"
        )
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"description", "category", "generated_video_name"}
    if not rows or not needed <= set(rows[0]):
        raise BenchmarkError(f"{path}: expected the columns {sorted(needed)}")
    return {
        Path(row["generated_video_name"]).stem: (row["description"], row["category"])
        for row in rows
    }


def scan(
    folder: str | Path,
    fps: int,
    descriptions_csv: str | Path | None = None,
    generation_inputs: bool = True,
) -> list[View]:
    """Every view with a take 1 and a take 2, sorted by ID, and (`generation_inputs`) a
    conditioning part and a switch frame; a view missing any of them is an error naming
    the file. Scoring alone needs only the takes."""
    root = root_of(folder)
    takes: dict[tuple[str, str], dict[str, str]] = {}
    for path in sorted(_fps_folder(root, TESTING, fps).glob("*.mp4")):
        file_id, view, take, scenario = _parse(path, TESTING)
        takes.setdefault((scenario, view), {})[take] = file_id
    if not takes:
        raise BenchmarkError(f"{root}: no testing videos; the download is incomplete")
    texts = descriptions(descriptions_csv)
    views = []
    for (scenario, view), ids in takes.items():
        if "take-1" not in ids or "take-2" not in ids:
            raise BenchmarkError(
                f"{root}: {scenario} {view} has {sorted(ids)} but the score needs take-1 and "
                "take-2; complete the download"
            )
        name = f"{ids['take-1']}_{view}_{scenario}"  # View.name
        description, category = texts.get(name, (_words(scenario), UNKNOWN_CATEGORY))
        views.append(View(ids["take-1"], view, scenario, ids["take-2"], description, category))
    views.sort(key=lambda v: v.id)
    for item in views if generation_inputs else ():
        for path in (conditioning_source(root, item, fps), switch_frame_path(root, item)):
            if not path.exists():
                raise BenchmarkError(f"{path} is missing; complete the benchmark download")
    return views


def _words(scenario: str) -> str:
    return scenario.removeprefix("trimmed-").replace("-", " ") + "."


def testing_path(root: Path, item: View, take: int, fps: int) -> Path:
    folder = _fps_folder(root, TESTING, fps)
    file_id = item.id if take == 1 else item.take2_id
    rate = folder.name
    return folder / f"{file_id}_{TESTING}_{rate}_{item.view}_take-{take}_{item.scenario}.mp4"


def conditioning_path(root: Path, item: View, fps: int) -> Path:
    """The split conditioning clip (the Original download ships them)."""
    folder = _fps_folder(root, CONDITIONING, fps)
    rate = folder.name
    return folder / f"{item.id}_{CONDITIONING}_{rate}_{item.view}_take-1_{item.scenario}.mp4"


def full_video_path(root: Path, item: View, fps: int) -> Path:
    """The full take-1 recording (conditioning and testing parts; the Verified dataset)."""
    base = root / "full-videos" / "take-1"
    folder = _rate_folder(base, fps)
    if folder is None:
        raise BenchmarkError(
            f"{root} has no split conditioning clips and {base} has neither {fps}FPS nor "
            f"{SOURCE_FPS}FPS: download the benchmark's full-videos (or its conditioning clips)"
        )
    return folder / f"{item.id}_full-videos_{folder.name}_{item.view}_take-1_{item.scenario}.mp4"


def conditioning_source(root: Path, item: View, fps: int) -> Path:
    """The file a view's conditioning part is read from: its split conditioning clip
    where the download has them, else its full take-1 video."""
    if _split_folder(root, CONDITIONING) is not None:
        return conditioning_path(root, item, fps)
    return full_video_path(root, item, fps)


def conditioning_frames(root: Path, item: View, fps: int) -> np.ndarray:
    """(T,H,W,3) uint8 RGB of the view before its switch frame at `fps`: the split
    conditioning clip where the download has one, else the full take-1 video without its
    last (testing video's length) frames, both at the full video's rate."""
    if _split_folder(root, CONDITIONING) is not None:
        return read_at(conditioning_path(root, item, fps), fps)
    full_path = full_video_path(root, item, fps)
    rate_folder = full_path.parent.name
    rate = int(rate_folder.removesuffix("FPS"))
    testing = testing_path(root, item, 1, rate)
    if testing.parent.name != rate_folder:
        raise BenchmarkError(
            f"{full_path}: its testing videos at {rate} FPS are missing, so the switch "
            "frame's position is unknown; complete the download"
        )
    before = frame_count(full_path) - frame_count(testing)
    if before < 2:
        raise BenchmarkError(
            f"{full_path} has no more frames than its testing video {testing.name}: nothing"
            " precedes the switch frame; download the full videos again"
        )
    # only the part before the switch (and one frame after, to check the cut) is kept
    kept = [
        cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
        for f in itertools.islice(opencv_frames(full_path), before + 1)
    ]
    check_switch(np.stack(kept), before, switch_frame_path(root, item), full_path)
    conditioning = np.stack(kept[:before])
    return conditioning if rate == fps else resample(conditioning, rate, fps, before / rate)


def check_switch(frames: np.ndarray, before: int, switch_path: Path, full_path: Path) -> None:
    """Warn when the switch-frame JPEG looks more like another frame of the full video
    than the last one before the cut (the split assumption would not hold there)."""
    if not switch_path.exists():
        return
    switch = cv2.cvtColor(cv2.imread(str(switch_path)), cv2.COLOR_BGR2RGB)
    if switch.shape != frames.shape[1:]:
        switch = cv2.resize(switch, frames.shape[2:0:-1], interpolation=cv2.INTER_AREA)
    errors = ((frames.astype(np.float32) - switch.astype(np.float32)) ** 2).mean(axis=(1, 2, 3))
    best = int(np.argmin(errors))
    if abs(best - (before - 1)) > 1:
        log.warning(
            "%s: the switch frame matches frame %d best, not frame %d (the last before its "
            "testing part); its conditioning part may be cut in the wrong place",
            full_path.name,
            best,
            before - 1,
        )


def frame_count(path: Path) -> int:
    """Frames OpenCV decodes from a video (counted by decoding: containers may lie)."""
    if not path.exists():
        raise BenchmarkError(f"{path} is missing; complete the benchmark download")
    return sum(1 for _ in opencv_frames(path))


def read_mask_video(path: Path) -> np.ndarray:
    """(T,H,W) uint8: channel 0 of a mask video's decoded BGR frames, the channel the
    reference thresholds (a grey video's decoded channels can differ by 1)."""
    frames = [frame[..., 0] for frame in opencv_frames(path)]
    if not frames:
        raise BenchmarkError(f"{path} has no decodable frames: download it again")
    return np.stack(frames)


def real_mask_path(root: Path, item: View, take: int, fps: int) -> Path | None:
    """A real take's shipped motion-mask video at `fps`, or None where the download has
    no video-masks/real/<fps>FPS folder (the masks are then computed, as the reference
    does); a folder that lacks the view's file is an error."""
    folder = root / "video-masks" / "real" / f"{fps}FPS"
    if not folder.is_dir():
        return None
    file_id = item.id if take == 1 else item.take2_id
    path = folder / f"{file_id}_video-masks_{fps}FPS_{item.view}_take-{take}_{item.scenario}.mp4"
    if not path.exists():
        raise BenchmarkError(
            f"{path} is missing from the shipped masks; complete the download or remove "
            f"{folder} to have the masks computed from the takes"
        )
    return path


def switch_frame_path(root: Path, item: View) -> Path:
    return (
        root / "switch-frames" / f"{item.id}_switch-frames_anyFPS_{item.view}_{item.scenario}.jpg"
    )


def resample(frames: np.ndarray, source_fps: float, fps: int, max_seconds: float) -> np.ndarray:
    """The reference's fps_changer on decoded frames: the first min(max_seconds, duration)
    seconds, int(duration x fps) frames, each a linear blend of its two neighbours."""
    duration = min(max_seconds, len(frames) / source_fps)
    frames = frames[: int(duration * source_fps)]
    count, new = len(frames), int(duration * fps)
    if count == 0 or new == 0:
        raise BenchmarkError(f"a video of {duration:.2f} s has no frames at {fps} fps")
    out = np.empty((new, *frames.shape[1:]), dtype=np.uint8)
    for j in range(new):
        alpha = j * (count - 1) / (new - 1) if new > 1 else 0.0
        index = int(alpha)
        alpha -= index
        blend = (1 - alpha) * frames[index].astype(np.float32)
        blend += alpha * frames[min(index + 1, count - 1)].astype(np.float32)
        out[j] = blend.astype(np.uint8)
    return out


def opencv_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The BGR frames OpenCV's bundled FFmpeg decodes, on one decoder thread: on small
    videos FFmpeg's own threads cost more than they save, and callers run videos in
    parallel instead. FFmpeg's decoders are bit-exact whatever their thread count
    (tested), so the pixels are those of a default capture."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def read_rgb(path: str | Path) -> np.ndarray:
    """All frames of a video as (T,H,W,3) uint8 RGB, decoded by OpenCV as the reference
    decodes them (its bundled FFmpeg: the same pixels as the reference's numbers), on one
    decoder thread (`opencv_frames`)."""
    frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in opencv_frames(path)]
    if not frames:
        raise BenchmarkError(f"{path} has no decodable frames: download it again")
    return np.stack(frames)


def read_at(path: Path, fps: int, max_seconds: float = SECONDS) -> np.ndarray:
    """(T,H,W,3) uint8 RGB frames of a split video at `fps` (resampled from 30FPS, first
    `max_seconds`, when the file lies in the 30FPS folder and another rate is wanted)."""
    frames = read_rgb(path)
    if path.parent.name == f"{fps}FPS":
        return frames
    return resample(frames, SOURCE_FPS, fps, max_seconds)
