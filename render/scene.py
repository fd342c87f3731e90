"""Scene specifications sampled in plain Python: no Blender, no PyBullet.

A `SceneSpec` fully determines a clip: the worker builds it in Kubric, simulates and
renders it. Sampling is a pure function of (seed, attempt, settings), so a clip is
reproducible from its seed and a rejected attempt is resampled deterministically.

Conventions: metres, seconds, kilograms; z up; the floor top is the plane z = 0.
`size` is the half-extent of an object's bounding box along its largest axis, so a
cube of size s spans 2s per side and a sphere of size s has radius s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stance.settings import Collisions, Composite, Render

FAMILIES = ("collisions", "composite")
SHAPES = ("cube", "sphere", "cylinder", "cone", "capsule", "torus")
# Materials as in Kubric's MOVi workers (densities in kg/m^3 scaled to unit-size scenes:
# MOVi uses mass = 2.7 * size^3 for metal and 1.1 * size^3 for rubber).
MATERIALS = {
    "metal": {
        "density": 2.7,
        "friction": 0.4,
        "restitution": 0.3,
        "roughness": 0.2,
        "metallic": 1.0,
        "ior": 2.5,
    },
    "rubber": {
        "density": 1.1,
        "friction": 0.8,
        "restitution": 0.7,
        "roughness": 0.7,
        "metallic": 0.0,
        "ior": 1.25,
    },
}
FLOOR = {"friction": 0.3, "restitution": 0.5}


@dataclass
class ObjectSpec:
    shape: str
    size: float
    material: str
    color: tuple[float, float, float]
    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]  # (w, x, y, z)
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    dynamic: bool = True  # launched (True) or at rest (clutter)

    @property
    def volume(self) -> float:
        return shape_volume(self.shape, self.size)

    @property
    def density(self) -> float:
        return MATERIALS[self.material]["density"]

    @property
    def mass(self) -> float:
        return self.density * self.volume

    @property
    def friction(self) -> float:
        return MATERIALS[self.material]["friction"]

    @property
    def restitution(self) -> float:
        return MATERIALS[self.material]["restitution"]


@dataclass
class LightSpec:
    kind: str  # "sun" | "area" | "point"
    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    intensity: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: float = 1.0


@dataclass
class SceneSpec:
    seed: int
    attempt: int
    family: str
    small_objects: bool
    camera_position: tuple[float, float, float]
    camera_look_at: tuple[float, float, float]
    focal_length_mm: float
    sensor_width_mm: float
    floor_color: tuple[float, float, float]
    floor_checker: tuple[float, float, float] | None  # second checker colour, or plain
    backdrop_color: tuple[float, float, float] | None  # composite scenes: a back wall
    ambient: float
    lights: list[LightSpec]
    objects: list[ObjectSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Shape geometry ---------------------------------------------------------------------------
# Proportions for each shape relative to `size` (the largest half-extent).
CYLINDER_RADIUS = 0.8  # radius = 0.8 size, half-height = size
CONE_RADIUS = 1.0  # radius = size, half-height = size
CAPSULE_RADIUS = 0.5  # radius = 0.5 size, total half-length = size
TORUS_MINOR = 0.35  # major radius + minor radius = size, minor = 0.35 size


def shape_volume(shape: str, size: float) -> float:
    """Closed-form volume of a shape of a given size (the mesh converges to it)."""
    s = size
    if shape == "cube":
        return 8.0 * s**3
    if shape == "sphere":
        return 4.0 / 3.0 * math.pi * s**3
    if shape == "cylinder":
        return math.pi * (CYLINDER_RADIUS * s) ** 2 * 2.0 * s
    if shape == "cone":
        return math.pi * (CONE_RADIUS * s) ** 2 * 2.0 * s / 3.0
    if shape == "capsule":
        r = CAPSULE_RADIUS * s
        return math.pi * r**2 * 2.0 * (s - r) + 4.0 / 3.0 * math.pi * r**3
    if shape == "torus":
        minor = TORUS_MINOR * s
        major = s - minor
        return 2.0 * math.pi**2 * major * minor**2
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def resting_height(shape: str, size: float) -> float:
    """Height of the centre above the floor when resting upright (default pose)."""
    if shape == "torus":
        return TORUS_MINOR * size
    if shape == "cone":  # meshes are centred on the centre of mass, a quarter up a cone
        return 0.5 * size
    return size


# Sampling ---------------------------------------------------------------------------------
def scene_rng(seed: int, attempt: int, stream: int = 0) -> np.random.Generator:
    """Independent generator per (seed, attempt, stream): twins reuse stream 0's scene."""
    return np.random.default_rng(np.random.SeedSequence([seed, attempt, stream]))


def _random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    hue = rng.uniform()
    sat = rng.uniform(0.5, 1.0)
    val = rng.uniform(0.5, 1.0)
    return _hsv_to_rgb(hue, sat, val)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (float(r), float(g), float(b))


def _random_yaw(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Upright pose rotated about z (shapes rest stably on the floor)."""
    angle = rng.uniform(0, 2 * math.pi)
    return (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))


def _camera(rng: np.random.Generator, family: str):
    if family == "collisions":  # MOVi-B: random point 7-9 units away, upper hemisphere
        distance, elevation = rng.uniform(7.0, 9.0), rng.uniform(35.0, 65.0)
        look_at = (0.0, 0.0, 0.0)
    else:  # composite: lower, varied viewpoints looking into the clutter
        distance, elevation = rng.uniform(6.5, 9.5), rng.uniform(20.0, 45.0)
        look_at = (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5)), 0.0)
    azimuth = rng.uniform(0, 2 * math.pi)
    elev = math.radians(elevation)
    position = (
        look_at[0] + distance * math.cos(elev) * math.cos(azimuth),
        look_at[1] + distance * math.cos(elev) * math.sin(azimuth),
        distance * math.sin(elev),
    )
    return position, look_at


def _lights(rng: np.random.Generator, family: str) -> tuple[list[LightSpec], float]:
    if family == "collisions":  # CLEVR-like key / fill / back lights, jittered
        jitter = lambda: rng.normal(0.0, 1.0, 3)  # noqa: E731
        base = [
            ("sun", (11.6, -0.7, 18.0), 0.45 * 4, 0.5),
            ("area", (-4.7, 1.0, 3.3), 50.0, 0.5),
            ("area", (-2.0, 8.2, 6.6), 30.0, 0.5),
            ("area", (-1.6, -10.0, 5.5), 100.0, 0.5),
        ]
        lights = [
            LightSpec(
                kind,
                tuple(float(v) for v in np.add(pos, jitter())),
                (0.0, 0.0, 0.0),
                intensity,
                size=size,
            )
            for kind, pos, intensity, size in base
        ]
        return lights, 0.05
    sun_azimuth = rng.uniform(0, 2 * math.pi)
    sun_elevation = rng.uniform(math.radians(30), math.radians(75))
    sun_pos = (
        10 * math.cos(sun_elevation) * math.cos(sun_azimuth),
        10 * math.cos(sun_elevation) * math.sin(sun_azimuth),
        10 * math.sin(sun_elevation),
    )
    # Colour temperature: warm light loses blue, cool light loses red.
    warmth = float(rng.uniform(-0.15, 0.15))
    tint = (1.0, 1.0 - warmth / 2, 1.0 - warmth) if warmth > 0 else (1.0 + warmth, 1.0, 1.0)
    lights = [
        LightSpec(
            "sun",
            sun_pos,
            (0.0, 0.0, 0.0),
            float(rng.uniform(1.5, 4.0)),
            tint,
        ),
        LightSpec(
            "area",
            (float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)), 6.0),
            (0.0, 0.0, 0.0),
            float(rng.uniform(30, 120)),
            size=2.0,
        ),
    ]
    return lights, float(rng.uniform(0.05, 0.4))


def _place(
    rng, objects: list[ObjectSpec], size: float, region: float, clearance: float
) -> tuple[float, float, None] | None:
    """Rejection-sample an xy position whose bounding circle clears every placed object."""
    for _ in range(200):
        x, y = rng.uniform(-region, region, 2)
        if all(
            math.hypot(x - o.position[0], y - o.position[1]) > size + o.size + clearance
            for o in objects
        ):
            return (float(x), float(y), None)
    return None


def _aim_velocity(rng, source, target, speed) -> tuple[float, float, float]:
    direction = np.array(target[:2]) - np.array(source[:2])
    direction /= max(np.linalg.norm(direction), 1e-6)
    angle = rng.normal(0.0, math.radians(5.0))  # slightly off-centre hits
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]
    return (float(dx * speed), float(dy * speed), 0.0)


def _new_object(rng, size: float, position, dynamic: bool) -> ObjectSpec:
    shape = str(rng.choice(SHAPES))
    z = resting_height(shape, size) if position[2] is None else position[2]
    return ObjectSpec(
        shape=shape,
        size=float(size),
        material=str(rng.choice(list(MATERIALS))),
        color=_random_color(rng),
        position=(position[0], position[1], float(z)),
        quaternion=_random_yaw(rng),
        dynamic=dynamic,
    )


def sample_scene(
    seed: int,
    attempt: int,
    settings: Render,
    family: str | None = None,
    small_objects: bool | None = None,
    split: str = "test",
) -> SceneSpec:
    """Sample a scene of the given family (or draw the family from `family_mix`); whether
    its dynamic objects are small is drawn with the split's fraction unless given."""
    rng = scene_rng(seed, attempt)
    # Family and small-object flag are drawn from a generator that ignores the attempt,
    # so a resampled clip keeps its family and stays in its split.
    identity = scene_rng(seed, 0, stream=1)
    mix = settings.family_mix
    weights = np.array([mix[f] for f in FAMILIES], dtype=float)
    drawn_family = str(identity.choice(FAMILIES, p=weights / weights.sum()))
    drawn_small = bool(identity.uniform() < small_fraction(settings, split))
    family = family or drawn_family
    small_objects = drawn_small if small_objects is None else small_objects
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r}; expected one of {FAMILIES}")
    scale = settings.small_objects.size_scale if small_objects else 1.0

    camera_position, look_at = _camera(rng, family)
    lights, ambient = _lights(rng, family)
    spec = SceneSpec(
        seed=seed,
        attempt=attempt,
        family=family,
        small_objects=small_objects,
        camera_position=camera_position,
        camera_look_at=look_at,
        focal_length_mm=35.0,
        sensor_width_mm=32.0,
        floor_color=_random_color(rng) if family == "composite" else (0.5, 0.5, 0.5),
        floor_checker=None,
        backdrop_color=None,
        ambient=ambient,
        lights=lights,
    )
    if family == "collisions":
        _populate_collisions(rng, spec, settings.collisions, scale)
    else:
        spec.floor_checker = _random_color(rng) if rng.uniform() < 0.5 else None
        spec.backdrop_color = _random_color(rng)
        _populate_composite(rng, spec, settings.composite, scale)
    return spec


def small_fraction(settings: Render, split: str) -> float:
    """The share of a split's clips drawn with small dynamic objects: test_fraction for the
    test split, train_fraction (0 by default: a held-out size) for train and validation."""
    small = settings.small_objects
    return small.test_fraction if split == "test" else small.train_fraction


def _populate_collisions(rng, spec: SceneSpec, cfg: Collisions, scale: float) -> None:
    count = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for _ in range(count):
        size = float(rng.uniform(0.35, 0.7)) * scale
        position = _place(rng, spec.objects, size, 3.0 * max(scale, 0.5), 0.15)
        if position is None:
            break
        spec.objects.append(_new_object(rng, size, position, dynamic=True))
    # Every object moves toward another one (collisions happen), MOVi-style speeds.
    for i, obj in enumerate(spec.objects):
        others = [o for j, o in enumerate(spec.objects) if j != i]
        target = others[int(rng.integers(len(others)))].position if others else (0, 0, 0)
        obj.velocity = _aim_velocity(rng, obj.position, target, rng.uniform(1.5, 4.0))


def _populate_composite(rng, spec: SceneSpec, cfg: Composite, scale: float) -> None:
    statics = int(rng.integers(cfg.min_static, cfg.max_static + 1))
    for _ in range(statics):  # clutter at rest near the centre, regular size
        size = float(rng.uniform(0.3, 0.65))
        position = _place(rng, spec.objects, size, 2.0, 0.1)
        if position is not None:
            spec.objects.append(_new_object(rng, size, position, dynamic=False))
    dynamic = int(rng.integers(cfg.min_dynamic, cfg.max_dynamic + 1))
    for _ in range(dynamic):  # launched from the rim into the clutter
        size = float(rng.uniform(0.3, 0.55)) * scale
        angle = rng.uniform(0, 2 * math.pi)
        radius = rng.uniform(2.8, 3.6)
        start = (radius * math.cos(angle), radius * math.sin(angle), None)
        if any(
            math.hypot(start[0] - o.position[0], start[1] - o.position[1]) < size + o.size + 0.1
            for o in spec.objects
        ):
            continue
        obj = _new_object(rng, size, start, dynamic=True)
        clutter = [o for o in spec.objects if not o.dynamic]
        target = clutter[int(rng.integers(len(clutter)))].position if clutter else (0, 0, 0)
        obj.velocity = _aim_velocity(rng, obj.position, target, rng.uniform(3.0, 5.5))
        spec.objects.append(obj)


def perturb(
    spec: SceneSpec, seed: int, position_jitter: float, velocity_jitter: float
) -> SceneSpec:
    """A physical-variance twin: same scene, tiny changes to the launched objects' state."""
    rng = scene_rng(seed, spec.attempt, stream=2)
    twin = dataclasses.replace(spec, objects=[dataclasses.replace(o) for o in spec.objects])
    for obj in twin.objects:
        if not obj.dynamic:
            continue
        dx, dy = rng.uniform(-position_jitter, position_jitter, 2)
        obj.position = (obj.position[0] + float(dx), obj.position[1] + float(dy), obj.position[2])
        factor = 1.0 + rng.uniform(-velocity_jitter, velocity_jitter)
        obj.velocity = tuple(float(v * factor) for v in obj.velocity)
    return twin
