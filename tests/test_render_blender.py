"""Real Kubric renders (PyBullet + Cycles) at 32x32, 9 frames, 1 spp: physics vs pixels.

Rendering runs through the `stance render clip` command in a subprocess, as in the DAG
(Blender also prints a harmless "Not freed memory blocks" line at process exit).
"""

import numpy as np
import pytest
import zarr
from helpers import run_cli

from stance.render import scene, store

pytestmark = pytest.mark.blender
SEEDS = ["2000000", "2000001", "2000002"]
TINY = {
    "render": {
        "resolution": 32,
        "frames": 9,
        "samples_per_pixel": 1,
        "threads": 1,
        "family_mix": {"collisions": 0.5, "composite": 0.5},
    }
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    import yaml

    root = tmp_path_factory.mktemp("render")
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    run_cli(
        "render",
        "clip",
        "--config",
        str(cfg),
        "--split",
        "test",
        "--seed",
        *SEEDS,
        "--threads",
        "1",
        "--out",
        str(root / "a"),
    )
    run_cli(
        "render",
        "clip",
        "--config",
        str(cfg),
        "--split",
        "test",
        "--seed",
        SEEDS[0],
        "--threads",
        "1",
        "--out",
        str(root / "b"),
    )
    return root


def _clips(rendered):
    return [store.read_clip(rendered / "a" / f"test-{int(s):08d}.zarr") for s in SEEDS]


def test_shard_folder_contents(rendered):
    names = {p.name for p in (rendered / "a").iterdir()}
    for seed in SEEDS:
        clip_id = f"test-{int(seed):08d}"
        assert {f"{clip_id}.zarr", f"{clip_id}.twin.zarr", f"{clip_id}.mp4"} <= names
    assert {"manifest.parquet", "render.resolved.json"} <= names
    assert not [n for n in names if "partial" in n]


def test_mean_flow_matches_projected_centre_displacement(rendered):
    checked = 0
    for clip in _clips(rendered):
        seg, flow = clip.arrays["segmentation"], clip.arrays["forward_flow"]
        centres = clip.tracks["image_positions"]
        for i in range(len(clip.attrs["instances"])):
            for t in range(clip.num_frames - 1):
                mask = seg[t] == i + 1
                inside = (centres[i, t] > 3).all() and (centres[i, t] < 29).all()
                if mask.sum() < 6 or not inside:
                    continue
                mean_flow = flow[t][mask].mean(axis=0)
                displacement = centres[i, t + 1] - centres[i, t]
                assert np.abs(mean_flow - displacement).max() < 1.0, (i, t)
                checked += 1
    assert checked >= 10


def test_backward_flow_holds_the_motion_from_the_previous_frame(rendered):
    """backward_flow[t] is the motion t-1 -> t (Kubric's convention), the same sign as the
    forward flow of frame t-1, not a vector pointing back to t-1."""
    along, against = [], []
    for clip in _clips(rendered):
        seg, flow = clip.arrays["segmentation"], clip.arrays["backward_flow"]
        centres = clip.tracks["image_positions"]
        for i in range(len(clip.attrs["instances"])):
            for t in range(1, clip.num_frames):
                mask = seg[t] == i + 1
                inside = (centres[i, t] > 3).all() and (centres[i, t] < 29).all()
                moved = centres[i, t] - centres[i, t - 1]
                if mask.sum() < 6 or not inside or np.abs(moved).max() < 0.5:
                    continue
                mean_flow = flow[t][mask].mean(axis=0)
                along.append(np.abs(mean_flow - moved).max())
                against.append(np.abs(mean_flow + moved).max())
    assert len(along) >= 5
    assert np.median(along) < 1.0 < np.median(against), (np.median(along), np.median(against))


def test_depth_at_object_centre_matches_camera_distance(rendered):
    checked = 0
    for clip in _clips(rendered):
        cam = np.array(clip.attrs["camera"]["position"])
        for i, inst in enumerate(clip.attrs["instances"]):
            if inst["shape"] == "torus":
                continue  # the ray through a torus' centre passes through its hole
            for t in range(clip.num_frames):
                x, y = np.floor(clip.tracks["image_positions"][i, t]).astype(int)
                if (
                    not (0 <= x < 32 and 0 <= y < 32)
                    or clip.arrays["segmentation"][t, y, x] != i + 1
                ):
                    continue
                distance = np.linalg.norm(clip.tracks["positions"][i, t] - cam)
                depth = clip.arrays["depth"][t, y, x]
                # the visible surface lies between the centre and one bounding radius nearer
                assert distance - inst["size"] * 1.8 - 0.05 <= depth <= distance + 0.05
                checked += 1
    assert checked >= 10


def test_masses_are_density_times_volume(rendered):
    for clip in _clips(rendered):
        for inst in clip.attrs["instances"]:
            expected = scene.MATERIALS[inst["material"]]["density"] * scene.shape_volume(
                inst["shape"], inst["size"]
            )
            assert inst["mass"] == pytest.approx(expected)


def test_initial_velocity_and_events_are_recorded(rendered):
    for clip in _clips(rendered):
        for inst in clip.attrs["instances"]:
            assert len(inst["initial_velocity"]) == 3
        pairs = [tuple(e["instances"]) for e in clip.attrs["events"]]
        assert len(pairs) == len(set(pairs))  # first contact per pair only
        if clip.attrs["family"] == "collisions":
            assert any(min(p) >= 0 for p in pairs)


def test_twins_differ_only_slightly(rendered):
    for seed in SEEDS:
        clip = store.read_clip(rendered / "a" / f"test-{int(seed):08d}.zarr")
        twin = store.read_clip(rendered / "a" / f"test-{int(seed):08d}.twin.zarr")
        assert twin.attrs["twin_of"] == clip.attrs["clip_id"]
        shift = np.abs(twin.tracks["positions"] - clip.tracks["positions"]).max()
        assert 0 < shift < 0.25
        diff = np.abs(twin.arrays["rgb"].astype(int) - clip.arrays["rgb"].astype(int)).mean()
        assert diff < 12
        assert twin.attrs["camera"] == clip.attrs["camera"]


def test_same_seed_gives_byte_identical_arrays(rendered):
    a = store.read_clip(rendered / "a" / "test-02000000.zarr")
    b = store.read_clip(rendered / "b" / "test-02000000.zarr")
    for name in store.FRAME_ARRAYS:
        assert a.arrays[name].tobytes() == b.arrays[name].tobytes(), name
    for name in store.TRACKS:
        assert a.tracks[name].tobytes() == b.tracks[name].tobytes(), name


def test_readers_refuse_other_versions_and_incomplete_stores(rendered, tmp_path):
    import shutil

    copy = tmp_path / "clip.zarr"
    shutil.copytree(rendered / "a" / "test-02000000.zarr", copy)
    group = zarr.open_group(copy, mode="r+")
    group.attrs["version"] = 99
    with pytest.raises(store.StoreError, match="version 99"):
        store.read_clip(copy)
    group.attrs["version"] = store.VERSION
    group.attrs["complete"] = False
    with pytest.raises(store.StoreError, match="incomplete"):
        store.read_clip(copy)
    with pytest.raises(store.StoreError, match="run the render stage"):
        store.read_clip(tmp_path / "missing.zarr")


def test_preview_is_h264(rendered):
    import av

    with av.open(str(rendered / "a" / "test-02000000.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 9


def test_fast_readback_equals_kubric_postprocess():
    """Run in a subprocess: Blender state stays out of the test process."""
    import subprocess
    import sys

    code = """
from stance import config
from stance.render import shard, worker
from stance.shards import Clip
r = config.section_settings("render", {"resolution": 32, "frames": 4, "samples_per_pixel": 1,
                                      "threads": 1})
spec, _ = shard.sample_valid(Clip("test", 2000001), r, 1)
a = worker.render_clip(spec, r, 1, check=False, fast_readback=True)
b = worker.render_clip(spec, r, 1, check=False, fast_readback=False)
for name in ["rgb", "depth", "segmentation", "forward_flow", "backward_flow"]:
    assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
print("EQUAL")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "EQUAL" in result.stdout, result.stderr[-2000:]


def test_cues_from_a_rendered_clip_match_its_flow_and_depth(rendered):
    from stance import config
    from stance.cues import compute

    settings = config.defaults().cues
    clip = store.read_clip(rendered / "a" / "test-02000000.zarr")
    depth = clip.arrays["depth"]
    exact = np.where(depth < 1e3, 1.0 / depth, 0.0).astype(np.float32)
    pair = list(compute.reference_frames(clip.num_frames, settings.reference_frame))
    cue = compute.from_render(clip, depth[pair], exact[pair], settings, {})
    seg, flow = clip.arrays["segmentation"], clip.arrays["forward_flow"]
    first, last = cue.attrs["frames"]
    for i in range(len(clip.attrs["instances"])):
        per_frame = [
            flow[t][seg[t] == i + 1].mean(0) for t in range(first, last) if (seg[t] == i + 1).any()
        ]
        if not per_frame or not (seg[0] == i + 1).any():
            continue
        expected_uv = np.mean(per_frame, axis=0)
        assert np.allclose(cue.cue[0][seg[0] == i + 1][:, :2], expected_uv, atol=1e-4)
    both = np.isfinite(cue.instances["dz"]) & np.isfinite(cue.instances["dz_gt"])
    assert both.any()
    assert np.allclose(cue.instances["dz"][both], cue.instances["dz_gt"][both], atol=2e-3)
    assert not cue.cue[0][seg[0] == 0].any()
