"""A small synthetic Physics-IQ set in the reference benchmark's folder layout: what the
parity tests score, and what the reference code scored for their expected numbers
(docs/evaluation.md gives the commands).

Three scenarios x three views; takes 1 and 2 of a moving ball (take 2 slightly perturbed),
a generated video per view that moves differently. The set exercises what the reference
does that a naive port gets wrong: 8 fps x 5 s = 40 of 44 frames are scored, widths whose
quarter is not round(w / 4) (see SIZES), a generated video at another resolution than its
real one (masks at its own size), and a static generated video (an empty mask).

tests/data/physics_iq_reference.json holds what google-deepmind/physics-IQ-benchmark's
code (code/ at commit e457754: binary_mask_generator.generate_mask on every video,
calculate_and_write_metrics_to_csv.process_videos with fps=8, calculate_iq_score.
calculate_iq_score on its CSV) printed for this set, written by `write_set` with
opencv-python-headless as pinned in requirements/. The reference code itself stays outside
this repository.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stance import physics_iq_folder

FPS = 8
FRAMES = 44  # more than FPS x 5: the reference scores the first 40
VIEWS = ("perspective-left", "perspective-center", "perspective-right")
SCENARIOS = ("ballroll", "domino", "pendulum")
SIZES = {
    "perspective-left": (134, 98),
    "perspective-center": (118, 90),
    "perspective-right": (126, 102),
}


def _ball(size, frames, start, velocity, radius, seed, shade=230):
    w, h = size
    rng = np.random.default_rng(seed)
    background = rng.integers(30, 90, (h, w, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        x, y = start[0] + velocity[0] * t, start[1] + velocity[1] * t
        cv2.circle(video[t], (int(x), int(y)), radius, (shade, 200, 60), -1)
    return video


def videos(scenario: int, view: int) -> dict[str, np.ndarray]:
    """{'take-1', 'take-2', 'generated'}: (T,H,W,3) uint8 BGR frames."""
    name = VIEWS[view]
    size = SIZES[name]
    start = (15 + 5 * view, 20 + 7 * scenario)
    velocity = (1.5 + 0.3 * scenario, 0.6 + 0.2 * view)
    take1 = _ball(size, FRAMES, start, velocity, 9, seed=10 * scenario + view)
    take2 = _ball(
        size,
        FRAMES,
        (start[0] + 2, start[1]),
        (velocity[0] * 0.93, velocity[1]),
        9,
        seed=10 * scenario + view,
    )
    if scenario == 2 and view == 0:  # a static generated video: its masks are empty
        generated = np.repeat(take1[:1], FRAMES, axis=0)
    else:
        gen_size = (size[0] + 26, size[1] + 18) if scenario == 1 else size
        scale = gen_size[0] / size[0]
        generated = _ball(
            gen_size,
            FRAMES + 4,
            (start[0] * scale, start[1] * scale),
            (velocity[0] * (0.7 + 0.2 * view) * scale, -0.4 * velocity[1] * scale),
            round(9 * scale),
            seed=10 * scenario + view,
        )
    return {"take-1": take1, "take-2": take2, "generated": generated}


def write_video(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def read_video(path: Path) -> np.ndarray:
    """RGB frames as the pipeline holds them (the reference reads BGR: same metrics)."""
    return physics_iq_folder.read_rgb(path)


def real_name(scenario: int, view: int, take: str, fps: int = FPS) -> str:
    number = 100 * scenario + 10 * view + (1 if take == "take-1" else 2)
    return f"{number:04d}_testing-videos_{fps}FPS_{VIEWS[view]}_{take}_{SCENARIOS[scenario]}.mp4"


def generated_name(scenario: int, view: int) -> str:
    number = 100 * scenario + 10 * view + 1
    return f"{number:04d}_{VIEWS[view]}_{SCENARIOS[scenario]}.mp4"


def write_set(root: Path) -> tuple[Path, Path]:
    """(real folder, generated folder) in the reference layout."""
    real, generated = root / "real", root / "generated"
    real.mkdir(parents=True, exist_ok=True)
    generated.mkdir(parents=True, exist_ok=True)
    for s in range(len(SCENARIOS)):
        for v in range(len(VIEWS)):
            clips = videos(s, v)
            write_video(real / real_name(s, v, "take-1"), clips["take-1"])
            write_video(real / real_name(s, v, "take-2"), clips["take-2"])
            write_video(generated / generated_name(s, v), clips["generated"])
    return real, generated


CONDITIONING_FRAMES = 24  # 3 s at 8 fps before the switch frame


def conditioning(scenario: int, view: int) -> np.ndarray:
    """The 3 s before take 1 of a view: the same ball on the same path, BGR."""
    size = SIZES[VIEWS[view]]
    start = (15 + 5 * view, 20 + 7 * scenario)
    velocity = (1.5 + 0.3 * scenario, 0.6 + 0.2 * view)
    before = (
        start[0] - velocity[0] * CONDITIONING_FRAMES,
        start[1] - velocity[1] * CONDITIONING_FRAMES,
    )
    return _ball(size, CONDITIONING_FRAMES, before, velocity, 9, seed=10 * scenario + view)


def write_benchmark(root: Path, fps: int = FPS, track: str = "original") -> tuple[Path, Path]:
    """The parity set in the benchmark's own layout + a descriptions CSV; (benchmark
    folder, descriptions). Original: physics-IQ-benchmark/ with split testing and
    conditioning clips in the <fps>FPS folders; Verified: physics-IQ-benchmark-verified/
    with split testing clips, full take-1 videos (conditioning + testing) and the real
    takes' motion masks shipped as the reference writes them. Written at `fps`; the DAG
    resamples 30 fps as the reference does."""
    from stance.evaluate.physics_iq import motion_masks

    verified = track == physics_iq_folder.VERIFIED
    bench = root / physics_iq_folder.FOLDERS[track]
    split = "testing" if verified else "testing-videos"
    testing = bench / "split-videos" / split / f"{fps}FPS"
    conditioning_dir = bench / "split-videos" / "conditioning-videos" / f"{fps}FPS"
    full_dir = bench / "full-videos" / "take-1" / f"{fps}FPS"
    masks_dir = bench / "video-masks" / "real" / f"{fps}FPS"
    switch = bench / "switch-frames"
    folders = (
        (testing, full_dir, masks_dir, switch) if verified else (testing, conditioning_dir, switch)
    )
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    rows = ["scenario,description,category,generated_video_name"]
    for s, scenario in enumerate(SCENARIOS):
        for v, view in enumerate(VIEWS):
            clips = videos(s, v)
            number = f"{100 * s + 10 * v + 1:04d}"
            for take in ("take-1", "take-2"):
                name = real_name(s, v, take, fps)
                write_video(testing / name, clips[take], fps)
                if verified:
                    masks = motion_masks(clips[take][:, :, :, ::-1].copy(), 10)
                    mask_name = name.replace("_testing-videos_", "_video-masks_")
                    write_masks(masks_dir / mask_name, masks, fps)
            before = conditioning(s, v)
            if verified:
                full = np.concatenate([before, clips["take-1"]])
                write_video(
                    full_dir / f"{number}_full-videos_{fps}FPS_{view}_take-1_{scenario}.mp4",
                    full,
                    fps,
                )
            else:
                write_video(
                    conditioning_dir
                    / f"{number}_conditioning-videos_{fps}FPS_{view}_take-1_{scenario}.mp4",
                    before,
                    fps,
                )
            cv2.imwrite(
                str(switch / f"{number}_switch-frames_anyFPS_{view}_{scenario}.jpg"), before[-1]
            )
            category = "Solid Mechanics" if s < 2 else "Fluid Dynamics"
            rows.append(
                f"{number}_{view}_take-1_{scenario}.mp4,A ball rolls ({scenario}).,{category},"
                f"{generated_name(s, v)}"
            )
    descriptions = root / "descriptions.csv"
    descriptions.write_text("\n".join(rows) + "\n")
    return bench, descriptions


def write_masks(path: Path, masks: np.ndarray, fps: int) -> None:
    """A motion-mask video as the reference writes it: grey mp4v at the video's size."""
    h, w = masks.shape[1:]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), False)
    for mask in masks:
        writer.write((mask * 255).astype(np.uint8))
    writer.release()
