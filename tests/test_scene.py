"""Scene sampling in plain Python: deterministic, physical, family- and split-aware."""

import dataclasses
import math

import numpy as np
import pytest

from stance import config
from stance.render import meshes, scene

RENDER = config.defaults().render


def test_same_seed_same_scene_and_attempts_differ():
    a = scene.sample_scene(7, 0, RENDER)
    assert a.to_dict() == scene.sample_scene(7, 0, RENDER).to_dict()
    b = scene.sample_scene(7, 1, RENDER)
    assert a.to_dict() != b.to_dict()
    assert (a.family, a.small_objects) == (b.family, b.small_objects)  # identity is per seed


@pytest.mark.parametrize("family", scene.FAMILIES)
def test_family_mix_weights_select_the_family(family):
    mix = {f: float(f == family) for f in scene.FAMILIES}
    settings = dataclasses.replace(RENDER, family_mix=mix)
    assert {scene.sample_scene(s, 0, settings).family for s in range(20)} == {family}


def test_collision_scenes_aim_objects_at_each_other():
    settings = dataclasses.replace(RENDER, family_mix={"collisions": 1.0, "composite": 0.0})
    for seed in range(20):
        spec = scene.sample_scene(seed, 0, settings)
        lo, hi = RENDER.collisions.min_objects, RENDER.collisions.max_objects
        assert lo <= len(spec.objects) <= hi
        for obj in spec.objects:
            speed = math.hypot(*obj.velocity[:2])
            assert 1.5 <= speed <= 4.0 and obj.velocity[2] == 0.0
            assert obj.dynamic


def test_composite_scenes_launch_into_resting_clutter():
    settings = dataclasses.replace(RENDER, family_mix={"collisions": 0.0, "composite": 1.0})
    for seed in range(20):
        spec = scene.sample_scene(seed, 0, settings)
        assert spec.backdrop_color is not None
        for obj in spec.objects:
            assert obj.dynamic == (np.linalg.norm(obj.velocity) > 0)


def test_objects_start_apart_and_on_the_floor():
    for seed in range(30):
        spec = scene.sample_scene(seed, 0, RENDER)
        for i, a in enumerate(spec.objects):
            assert a.position[2] == pytest.approx(scene.resting_height(a.shape, a.size))
            for b in spec.objects[i + 1 :]:
                gap = math.hypot(a.position[0] - b.position[0], a.position[1] - b.position[1])
                assert gap > a.size + b.size


def test_small_objects_only_where_asked():
    small = scene.sample_scene(3, 0, RENDER, small_objects=True)
    regular = scene.sample_scene(3, 0, RENDER, small_objects=False)
    scale = RENDER.small_objects.size_scale
    for s, r in zip(small.objects, regular.objects, strict=False):
        if s.dynamic and r.dynamic and small.family == "collisions":
            assert s.size == pytest.approx(r.size * scale)


def test_each_split_draws_small_objects_with_its_own_fraction():
    mixed = dataclasses.replace(
        RENDER, small_objects=dataclasses.replace(RENDER.small_objects, train_fraction=0.5)
    )

    def small_share(settings, split):
        seeds = range(200)
        return np.mean(
            [scene.sample_scene(s, 0, settings, split=split).small_objects for s in seeds]
        )

    assert small_share(RENDER, "train") == 0.0 and small_share(RENDER, "val") == 0.0
    assert 0.4 < small_share(RENDER, "test") < 0.6  # test_fraction 0.5
    assert 0.4 < small_share(mixed, "train") < 0.6
    # a clip drawn regular is the same scene whatever the other clips' fraction
    for seed in range(40):
        before = scene.sample_scene(seed, 0, RENDER, split="train")
        after = scene.sample_scene(seed, 0, mixed, split="train")
        if not after.small_objects:
            assert after.to_dict() == before.to_dict()


@pytest.mark.parametrize("shape", ["cylinder", "cone", "capsule", "torus"])
def test_mesh_volume_matches_the_closed_form(shape):
    mesh = meshes.build_mesh(shape, 0.5)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(scene.shape_volume(shape, 0.5), rel=0.02)
    assert np.allclose(mesh.center_mass, 0.0, atol=1e-6)
    # resting height = distance from the centre of mass down to the lowest vertex
    assert -mesh.vertices[:, 2].min() == pytest.approx(scene.resting_height(shape, 0.5), rel=0.01)


def test_mass_is_density_times_volume():
    spec = scene.sample_scene(11, 0, RENDER)
    for obj in spec.objects:
        assert obj.mass == pytest.approx(
            scene.MATERIALS[obj.material]["density"] * scene.shape_volume(obj.shape, obj.size)
        )


def test_twin_perturbation_is_tiny_and_only_moves_launched_objects():
    spec = scene.sample_scene(
        5, 0, dataclasses.replace(RENDER, family_mix={"collisions": 0, "composite": 1})
    )
    twin = scene.perturb(spec, 5, 0.001, 0.01)
    assert twin.objects is not spec.objects
    for a, b in zip(spec.objects, twin.objects, strict=True):
        shift = np.subtract(a.position, b.position)
        if a.dynamic:
            assert 0 < np.abs(shift).max() <= 0.001
            ratio = np.linalg.norm(b.velocity) / np.linalg.norm(a.velocity)
            assert abs(ratio - 1) <= 0.01
        else:
            assert not shift.any() and a.velocity == b.velocity
    assert twin.camera_position == spec.camera_position and twin.lights == spec.lights


def test_torus_collision_is_a_compound_of_convex_segments(tmp_path):
    render_path, urdf = meshes.write_urdf("torus", 0.5, 1.1, tmp_path, "t")
    text = urdf.read_text()
    assert text.count("<collision>") == meshes.TORUS_SEGMENTS
    assert render_path.exists()
    mass = float(text.split('<mass value="')[1].split('"')[0])
    assert mass == pytest.approx(1.1 * scene.shape_volume("torus", 0.5), rel=0.02)


def test_unknown_shape_and_family_fail_clearly():
    with pytest.raises(ValueError, match="unknown shape"):
        scene.shape_volume("blob", 1.0)
    with pytest.raises(ValueError, match="unknown scene family"):
        scene.sample_scene(0, 0, RENDER, family="fluids")


def test_a_scene_rejected_at_every_attempt_fails_with_the_fix(monkeypatch):
    """The physics checks reject every attempt: the error names the clip, the attempts and
    the setting to raise (the render itself is replaced: only the retry loop is tested)."""
    from stance.render import shard, worker
    from stance.shards import Clip

    attempts = []

    def reject(spec, render, threads):
        attempts.append(spec)
        raise worker.PhysicsRejected("objects never touch")

    monkeypatch.setattr(worker, "render_clip", reject)
    render = config.section_settings("render", {"max_attempts": 3})
    with pytest.raises(RuntimeError, match=r"train-00000007: no physically valid scene in 3"):
        shard.sample_valid(Clip("train", 7), render, threads=1)
    assert len(attempts) == 3
    assert len({repr(spec) for spec in attempts}) == 3  # each attempt draws a new scene
