"""A synthetic Physics-IQ set in the Verified track's layout, full size in count (66
scenarios x 3 views x 2 takes: the reference's evaluator refuses fewer than 198 views) but
tiny in pixels: what the Verified parity test scores, and what the reference code scored
for its expected numbers (tests/data/physics_iq_verified_reference.json; docs/evaluation.md
gives the commit and the commands).

Each view: a ball on a static textured background that rolls, falls, stays still or is
absent (empty masks in both takes), take 2 slightly faster; two generated runs at another
resolution (160x120 against 128x96) that follow take 1 closely, reverse, freeze, or lag
with a brightness drift (an MSE error), in a different mix per run.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FPS = 8
FRAMES = FPS * 5
REAL_SIZE, GENERATED_SIZE = (128, 96), (160, 120)
VIEWS = ("left", "center", "right")
SCENES = 66
RUNS = ("synthmodel-bpp-run_01", "synthmodel-bpp-run_02")
FOLDER = "physics-IQ-benchmark-verified"


def _background(seed: int) -> np.ndarray:
    w, h = REAL_SIZE
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 90 + 40 * (xx / w) + 20 * (yy / h)
    image = np.stack([base, base * 0.9 + 10, base * 0.8 + 20], -1)
    image += rng.normal(0, 2.0, image.shape)  # texture, the same in every frame
    return np.clip(image, 0, 255).astype(np.uint8)


def _path(kind: str, view: int, speed: float, x0: float, y0: float) -> list:
    t = np.arange(FRAMES)
    if kind == "static":
        return [(x0, y0)] * FRAMES
    if kind == "none":
        return [None] * FRAMES
    if kind == "fall":
        return [(x0 + 3 * view, y0 + 0.5 * speed * (i / FRAMES) ** 2 * 60) for i in t]
    if kind == "reverse":
        return [(x0 + 100 - speed * i, y0) for i in t]
    return [(x0 + 4 * view + speed * i, y0 + 5 * np.sin(i / 6.0)) for i in t]


def _draw(background: np.ndarray, path: list, colour, scale: tuple[float, float] = (1, 1)):
    frames = []
    for point in path:
        frame = background.copy()
        if point is not None:
            x, y = (round(float(point[0] * scale[0])), round(float(point[1] * scale[1])))
            cv2.circle(frame, (x, y), round(7 * scale[0]), colour, -1)
        frames.append(frame)
    return frames


def _write(path: Path, frames) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _real_kind(scene: int) -> str:
    if scene % 22 == 11:
        return "none"  # nothing moves: empty masks in both takes
    return "static" if scene % 11 == 0 else ("fall" if scene % 3 == 0 else "roll")


def _generated_motion(scene: int, run: int, kind: str, speed: float):
    """(kind, speed, x offset, brightness drift) of a generated run's view."""
    mode = (scene + run) % 4
    if mode == 0:  # close to take 1
        return kind, speed * 1.02, 1, False
    if mode == 1:  # the wrong way
        return ("roll" if kind == "none" else "reverse"), speed, 0, False
    if mode == 2:  # frozen
        return "static", speed, 0, False
    return kind, speed * (0.6 if run == 1 else 1.4), 3, True  # too slow or fast, drifting


def write_set(root: Path) -> tuple[Path, list[Path], Path]:
    """(benchmark folder, generated run folders, descriptions CSV) under `root`. The
    30FPS folder holds the same files under 30FPS names: the reference requires it."""
    bench = root / FOLDER
    testing = bench / "split-videos" / "testing" / f"{FPS}FPS"
    names_only = bench / "split-videos" / "testing" / "30FPS"
    switch = bench / "switch-frames"
    runs = [root / "generated" / name for name in RUNS]
    for folder in (testing, names_only, switch, *runs):
        folder.mkdir(parents=True, exist_ok=True)
    rows = []
    scale = (GENERATED_SIZE[0] / REAL_SIZE[0], GENERATED_SIZE[1] / REAL_SIZE[1])
    for s in range(SCENES):
        scene, kind = f"trimmed-synth-scene-{s:02d}", _real_kind(s)
        speed, colour = 1.5 + (s % 5) * 0.4, ((40 + 3 * s) % 255, 200, 255 - s)
        for v, view in enumerate(VIEWS):
            background = _background(1000 * s + v)
            ids = {1: 3 * s + v + 1, 2: 198 + 3 * s + v + 1}
            for take in (1, 2):
                path = _path(
                    kind, v, speed * (1.0 if take == 1 else 1.07), 8 + 2 * take, 30 + 8 * v
                )
                frames = _draw(background, path, colour)
                name = (
                    f"{ids[take]:04d}_testing-videos_{FPS}FPS_perspective-{view}_"
                    f"take-{take}_{scene}.mp4"
                )
                _write(testing / name, frames)
                link = names_only / name.replace(f"_{FPS}FPS_", "_30FPS_")
                if not link.is_symlink():
                    link.symlink_to(testing / name)
                if take == 1:
                    switch_name = (
                        f"{ids[1]:04d}_switch-frames_anyFPS_perspective-{view}_{scene}.jpg"
                    )
                    cv2.imwrite(str(switch / switch_name), frames[0])
                rows.append(
                    f"{ids[take]:04d}_perspective-{view}_take-{take}_{scene}.mp4,"
                    f"Synthetic scene {s} ({kind}).,Solid Mechanics,"
                    f"{ids[take]:04d}_perspective-{view}_{scene}.mp4"
                )
            big = cv2.resize(background, GENERATED_SIZE, interpolation=cv2.INTER_LINEAR)
            for r, run in enumerate(runs, start=1):
                motion, run_speed, dx, drift = _generated_motion(s, r, kind, speed)
                frames = _draw(big, _path(motion, v, run_speed, 10 + dx, 30 + 8 * v), colour, scale)
                if drift:  # a global brightness drift: an error only MSE sees
                    frames = [
                        np.clip(f.astype(np.int16) + k // 8, 0, 255).astype(np.uint8)
                        for k, f in enumerate(frames)
                    ]
                _write(run / f"{ids[1]:04d}_perspective-{view}_{scene}.mp4", frames)
    descriptions = root / "descriptions.csv"
    header = "scenario,description,category,generated_video_name"
    descriptions.write_text("\n".join([header, *sorted(rows)]) + "\n")
    return bench, runs, descriptions
