"""Build a SceneSpec in Kubric, simulate it with PyBullet, render it with Blender Cycles.

Fixed shape per clip (as Kubric's workers): build -> simulate one frame beyond both ends
-> reject physically broken scenes -> render -> convert to the store's arrays. Kubric's
frame f (1..T) is clip frame t = f - 1; frames 0 and T+1 exist so flow is valid at both
ends. Everything is returned in memory; `store` writes it.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stance.render import kubric_compat, meshes
from stance.render.scene import FLOOR, MATERIALS, ObjectSpec, SceneSpec
from stance.settings import Render

log = logging.getLogger(__name__)

STEP_RATE = 240
STORE_LAYERS = ("rgba", "forward_flow", "backward_flow", "depth", "segmentation")
# What kubric's own workers render and write (for `stance bench render`).
KUBRIC_DEFAULT_LAYERS = (*STORE_LAYERS, "normal", "object_coordinates")
MAX_SPEED = 12.0  # m/s: faster than any launch means the solver exploded


class PhysicsRejected(Exception):
    """The sampled scene is physically unusable; the caller resamples."""


@dataclass
class RenderedClip:
    rgb: np.ndarray  # (T,H,W,3) uint8
    depth: np.ndarray  # (T,H,W) float32, metres from the camera centre
    segmentation: np.ndarray  # (T,H,W) uint16, 0 = background, i+1 = object i
    forward_flow: np.ndarray  # (T,H,W,2) float32, (dx, dy) pixels to frame t+1
    backward_flow: np.ndarray  # (T,H,W,2) float32, (dx, dy) pixels moved from frame t-1 to t
    tracks: dict[str, np.ndarray]  # per instance and frame, see store.TRACKS
    camera: dict[str, Any]
    events: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    layers: dict[str, np.ndarray] | None = None  # kubric's raw layers, when asked for


def _add_objects(kb, scene, spec: SceneSpec, scratch: Path) -> list:
    assets = []
    for i, obj in enumerate(spec.objects):
        m = MATERIALS[obj.material]
        material = kb.PrincipledBSDFMaterial(
            color=kb.Color(*obj.color),
            metallic=m["metallic"],
            roughness=m["roughness"],
            ior=m["ior"],
        )
        common = dict(
            name=f"object_{i:02d}",
            position=obj.position,
            quaternion=obj.quaternion,
            velocity=obj.velocity,
            angular_velocity=obj.angular_velocity,
            mass=obj.mass,
            friction=obj.friction,
            restitution=obj.restitution,
            material=material,
        )
        if obj.shape == "cube":
            asset = kb.Cube(scale=obj.size, **common)
        elif obj.shape == "sphere":
            asset = kb.Sphere(scale=obj.size, **common)
        else:
            render_path, urdf_path = meshes.write_urdf(
                obj.shape, obj.size, obj.density, scratch / "meshes", f"object_{i:02d}"
            )
            asset = kb.FileBasedObject(
                asset_id=obj.shape,
                render_filename=str(render_path),
                simulation_filename=str(urdf_path),
                scale=1.0,
                **common,
            )
            asset.metadata["smooth"] = obj.shape in ("sphere", "capsule", "torus")
        scene.add(asset)
        assets.append(asset)
    return assets


def _add_environment(kb, scene, spec: SceneSpec) -> None:
    floor_material = kb.PrincipledBSDFMaterial(
        color=kb.Color(*spec.floor_color), roughness=0.8, specular=0.3
    )
    scene.add(
        kb.Cube(
            name="floor",
            scale=(12, 12, 0.1),
            position=(0, 0, -0.1),
            static=True,
            background=True,
            friction=FLOOR["friction"],
            restitution=FLOOR["restitution"],
            material=floor_material,
        )
    )
    if spec.backdrop_color is not None:
        # A back wall behind the scene, opposite the camera.
        cx, cy, _ = spec.camera_position
        azimuth = math.atan2(cy, cx) + math.pi
        pos = (7.0 * math.cos(azimuth), 7.0 * math.sin(azimuth), 3.0)
        yaw = azimuth
        scene.add(
            kb.Cube(
                name="backdrop",
                scale=(0.1, 12, 3.2),
                position=pos,
                static=True,
                background=True,
                quaternion=(math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)),
                material=kb.PrincipledBSDFMaterial(
                    color=kb.Color(*spec.backdrop_color), roughness=0.9
                ),
            )
        )
    for light in spec.lights:
        color = kb.Color(*light.color)
        if light.kind == "sun":
            asset = kb.DirectionalLight(
                color=color, intensity=light.intensity, position=light.position
            )
        elif light.kind == "area":
            asset = kb.RectAreaLight(
                color=color,
                intensity=light.intensity,
                position=light.position,
                width=light.size,
                height=light.size,
            )
        else:
            asset = kb.PointLight(color=color, intensity=light.intensity, position=light.position)
        asset.look_at(light.look_at)
        scene.add(asset)
    scene.ambient_illumination = kb.Color(spec.ambient, spec.ambient, spec.ambient)
    camera = kb.PerspectiveCamera(
        focal_length=spec.focal_length_mm,
        sensor_width=spec.sensor_width_mm,
        position=spec.camera_position,
    )
    camera.look_at(spec.camera_look_at)
    scene.camera = camera
    scene.add(camera)


def _set_floor_checker(renderer, spec: SceneSpec, scene) -> None:
    """Composite scenes: a checker texture on the floor (Blender nodes, no texture file)."""
    if spec.floor_checker is None:
        return
    floor = next(a for a in scene.assets if a.name == "floor")
    mat = floor.material.linked_objects[renderer]
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 24.0
    checker.inputs["Color1"].default_value = (*spec.floor_color, 1.0)
    checker.inputs["Color2"].default_value = (*spec.floor_checker, 1.0)
    links.new(checker.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])


def _project(camera, points: np.ndarray, resolution: int) -> np.ndarray:
    """World points (..., 3) -> pixel coordinates (..., 2) as (x right, y down)."""
    world_to_cam = np.linalg.inv(np.asarray(camera.matrix_world))
    homo = np.concatenate([points, np.ones((*points.shape[:-1], 1))], axis=-1)
    cam = homo @ world_to_cam.T
    proj = cam[..., :3] @ np.asarray(camera.intrinsics).T
    return proj[..., :2] / proj[..., 2:3] * resolution


def _check_physics(
    spec: SceneSpec,
    tracks: Mapping[str, np.ndarray],
    events,
    sim,
    assets,
    image_positions: np.ndarray,
    resolution: int,
    frames: int,
) -> None:
    """Raise PhysicsRejected for interpenetration, explosions, early exits, no contact."""
    client = sim._physics_client
    ids = [a.linked_objects[sim] for a in assets]
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            points = client.getClosestPoints(ids[i], ids[j], distance=0.0)
            if any(p[8] < -1e-3 for p in points):
                raise PhysicsRejected(f"objects {i} and {j} interpenetrate at the start")
    speed = np.linalg.norm(tracks["velocities"], axis=-1)
    if speed.max(initial=0) > MAX_SPEED or np.abs(tracks["positions"]).max(initial=0) > 30:
        raise PhysicsRejected(f"explosion: max speed {speed.max():.1f} m/s")
    if np.any(tracks["positions"][..., 2] < -0.5):
        raise PhysicsRejected("an object fell through the floor")
    dynamic = np.array([o.dynamic for o in spec.objects])
    early = image_positions[dynamic, : max(2, frames // 3)]
    inside = (early >= 0).all(-1) & (early < resolution).all(-1)
    if not inside.all():
        raise PhysicsRejected("a launched object leaves the frame at once")
    if spec.family == "collisions" and not any(min(e["instances"]) >= 0 for e in events):
        raise PhysicsRejected("no object-object collision")


def _first_contacts(collisions, assets, camera, resolution: int) -> list[dict[str, Any]]:
    """First contact per pair (object index, -1 = floor/backdrop), in clip frames."""
    index = {id(a): i for i, a in enumerate(assets)}
    seen, events = set(), []
    for c in collisions:
        pair = tuple(sorted(index.get(id(a), -1) for a in c["instances"]))
        if pair in seen or pair == (-1, -1):
            continue
        seen.add(pair)
        position = np.asarray(c["position"], dtype=float)
        events.append(
            {
                "instances": list(pair),
                "frame": float(c["frame"]) - 1.0,  # kubric run starts at frame 0 = clip frame -1
                "force": float(c["force"]),
                "position": position.tolist(),
                "image_position": _project(camera, position, resolution).tolist(),
            }
        )
    return events


def _tracks(animation, assets, frames: int) -> dict[str, np.ndarray]:
    keys = {
        "positions": "position",
        "quaternions": "quaternion",
        "velocities": "velocity",
        "angular_velocities": "angular_velocity",
    }
    # animation index k = kubric frame k; clip frame t = kubric frame t + 1
    return {
        name: np.array(
            [animation[a][key][1 : frames + 1] for a in assets], dtype=np.float32
        ).reshape(len(assets), frames, -1)
        for name, key in keys.items()
    }


def _to_store_arrays(layers: Mapping[str, np.ndarray], assets, scene) -> dict[str, np.ndarray]:
    # Segmentation: kubric gives (asset index in scene.assets) + 1; map to object index + 1.
    kubric_seg = layers["segmentation"][..., 0]
    seg = np.zeros(kubric_seg.shape, dtype=np.uint16)
    for i, asset in enumerate(assets):
        seg[kubric_seg == scene.assets.index(asset) + 1] = i + 1
    # Flow: kubric gives (d_row, d_col); the store uses (dx, dy) = (d_col, d_row).
    return {
        "rgb": np.ascontiguousarray(layers["rgba"][..., :3]),
        "depth": np.ascontiguousarray(layers["depth"][..., 0], dtype=np.float32),
        "segmentation": seg,
        "forward_flow": np.ascontiguousarray(layers["forward_flow"][..., ::-1], np.float32),
        "backward_flow": np.ascontiguousarray(layers["backward_flow"][..., ::-1], np.float32),
    }


def render_clip(
    spec: SceneSpec,
    render: Render,
    threads: int,
    check: bool = True,
    layers: tuple[str, ...] = STORE_LAYERS,
    keep_layers: bool = False,
    fast_readback: bool = True,
) -> RenderedClip:
    """Simulate and render one scene. Raises PhysicsRejected when `check` fails.

    `fast_readback=False` keeps kubric's own (slow) read-back of the rendered files.
    """
    kb = kubric_compat.load()
    resolution, frames = render.resolution, render.frames
    scratch = Path(tempfile.mkdtemp(prefix="stance-kubric-"))
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        scene, sim, renderer = _stage(kb, spec, render, threads, scratch)
        assets = _add_objects(kb, scene, spec, scratch)
        _set_floor_checker(renderer, spec, scene)
        timings["build_s"] = time.perf_counter() - start

        start = time.perf_counter()
        tracks, events = _simulate(sim, scene, assets, resolution, frames)
        timings["physics_s"] = time.perf_counter() - start
        if check:
            _check_physics(
                spec, tracks, events, sim, assets, tracks["image_positions"], resolution, frames
            )

        start = time.perf_counter()
        if fast_readback:
            renderer.postprocess = functools.partial(kubric_compat.read_rendered_layers, renderer)
        raw = renderer.render(return_layers=layers)
        timings["render_s"] = time.perf_counter() - start
        arrays = _to_store_arrays(raw, assets, scene)
        tracks["visibility"] = _visibility(arrays["segmentation"], len(assets), frames)
        camera = _camera_record(scene.camera, resolution)
        kept = raw if keep_layers else None
        return RenderedClip(
            tracks=tracks, camera=camera, events=events, timings=timings, layers=kept, **arrays
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # kubric never cleans its scratch


def _stage(kb, spec: SceneSpec, render: Render, threads: int, scratch: Path):
    """(scene, PyBullet simulator, Blender renderer) with the environment of `spec`;
    Cycles on a fixed thread count and a fixed seed (the same noise for a clip and its
    twin)."""
    from kubric.renderer.blender import Blender
    from kubric.simulator.pybullet import PyBullet

    scene = kb.Scene(
        resolution=(render.resolution, render.resolution),
        frame_start=1,
        frame_end=render.frames,
        frame_rate=render.fps,
        step_rate=STEP_RATE,
        gravity=(0, 0, -9.81),
    )
    sim = PyBullet(scene, scratch_dir=str(scratch / "bullet"))
    renderer = Blender(
        scene,
        scratch_dir=str(scratch / "blender"),
        samples_per_pixel=render.samples_per_pixel,
        use_denoising=render.denoise,
        adaptive_sampling=False,
    )
    import bpy

    bpy.context.scene.render.threads_mode = "FIXED"
    bpy.context.scene.render.threads = threads
    bpy.context.scene.cycles.seed = 0
    _add_environment(kb, scene, spec)
    return scene, sim, renderer


def _simulate(sim, scene, assets, resolution: int, frames: int):
    """(tracks with image positions, first contacts) of the simulated clip."""
    animation, collisions = sim.run(frame_start=0, frame_end=frames + 1)
    tracks = _tracks(animation, assets, frames)
    tracks["image_positions"] = _project(
        scene.camera, tracks["positions"].astype(float), resolution
    ).astype(np.float32)
    return tracks, _first_contacts(collisions, assets, scene.camera, resolution)


def _visibility(segmentation: np.ndarray, objects: int, frames: int) -> np.ndarray:
    """(objects, frames) visible pixels of each object (label k + 1) per frame."""
    counts = [(segmentation == i + 1).sum(axis=(1, 2)) for i in range(objects)]
    return np.stack(counts).astype(np.int32).reshape(objects, frames)


def _camera_record(camera, resolution: int) -> dict[str, Any]:
    k = np.asarray(camera.intrinsics, dtype=float)
    # Pixel intrinsics in the usual convention (x right, y down, z forward).
    fx = camera.focal_length / camera.sensor_width * resolution
    intrinsics = [[fx, 0.0, resolution / 2.0], [0.0, fx, resolution / 2.0], [0.0, 0.0, 1.0]]
    return {
        "K_pixels": intrinsics,
        "K_kubric_normalized": k.tolist(),
        "matrix_world": np.asarray(camera.matrix_world, dtype=float).tolist(),
        "position": list(map(float, camera.position)),
        "quaternion": list(map(float, camera.quaternion)),
        "focal_length_mm": float(camera.focal_length),
        "sensor_width_mm": float(camera.sensor_width),
        "field_of_view_rad": float(camera.field_of_view),
        "convention": "matrix_world is camera-to-world, Blender camera (looks along -z, y up)",
    }


def object_record(obj: ObjectSpec) -> dict[str, Any]:
    """Per-instance scalar metadata stored with the clip."""
    return {
        "shape": obj.shape,
        "size": obj.size,
        "material": obj.material,
        "color": list(obj.color),
        "dynamic": obj.dynamic,
        "density": obj.density,
        "volume": obj.volume,
        "mass": obj.mass,
        "friction": obj.friction,
        "restitution": obj.restitution,
        "initial_position": list(obj.position),
        "initial_quaternion": list(obj.quaternion),
        "initial_velocity": list(obj.velocity),
        "initial_angular_velocity": list(obj.angular_velocity),
    }
