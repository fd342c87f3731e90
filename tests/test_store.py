"""Clip store contract without Blender: round trip, validation, atomic writes."""

import numpy as np
import pytest

from stance.render import store

T, H, W, N = 3, 8, 8, 2


def _clip():
    rng = np.random.default_rng(0)
    arrays = {
        "rgb": rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8),
        "depth": rng.random((T, H, W), dtype=np.float32),
        "segmentation": rng.integers(0, N + 1, (T, H, W)).astype(np.uint16),
        "forward_flow": rng.random((T, H, W, 2), dtype=np.float32),
        "backward_flow": rng.random((T, H, W, 2), dtype=np.float32),
    }
    tracks = {
        name: rng.random((N, T, *tail)).astype(dtype)
        for name, (dtype, tail) in store.TRACKS.items()
    }
    attrs = {"clip_id": "test-00000001", "instances": [{"mass": 1.0}, {"mass": 2.0}]}
    return arrays, tracks, attrs


def test_round_trip_is_exact(tmp_path):
    arrays, tracks, attrs = _clip()
    path = store.write_clip(tmp_path / "c.zarr", arrays, tracks, attrs)
    clip = store.read_clip(path)
    for name in store.FRAME_ARRAYS:
        assert np.array_equal(clip.arrays[name], arrays[name])
    for name in store.TRACKS:
        assert np.array_equal(clip.tracks[name], tracks[name])
    assert clip.attrs["format"] == store.FORMAT and clip.attrs["complete"]
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        ("depth", np.zeros((T, H, W), np.float64), "depth: expected float32"),
        ("rgb", np.zeros((T, H, W, 4), np.uint8), "rgb: expected uint8 \\(3, 8, 8, 3\\)"),
        ("segmentation", np.full((T, H, W), N + 1, np.uint16), "beyond the instance table"),
    ],
)
def test_writer_rejects_wrong_arrays(tmp_path, name, bad, message):
    arrays, tracks, attrs = _clip()
    arrays[name] = bad
    with pytest.raises(store.StoreError, match=message):
        store.write_clip(tmp_path / "c.zarr", arrays, tracks, attrs)
    assert not (tmp_path / "c.zarr").exists()


def test_interrupted_write_leaves_no_store_a_reader_accepts(tmp_path, monkeypatch):
    arrays, tracks, attrs = _clip()

    def killed(self, target):
        raise KeyboardInterrupt  # the job dies between writing and publishing

    monkeypatch.setattr(type(tmp_path), "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write_clip(tmp_path / "c.zarr", arrays, tracks, attrs)
    monkeypatch.undo()
    with pytest.raises(store.StoreError, match=r"no stance\.render\.clip store"):
        store.read_clip(tmp_path / "c.zarr")
    assert [p.name for p in tmp_path.iterdir()] == [next(tmp_path.glob("c.zarr.partial-*")).name]


def test_rewrite_replaces_an_existing_store(tmp_path):
    arrays, tracks, attrs = _clip()
    store.write_clip(tmp_path / "c.zarr", arrays, tracks, attrs)
    arrays["rgb"] = np.zeros_like(arrays["rgb"])
    store.write_clip(tmp_path / "c.zarr", arrays, tracks, attrs)
    assert not store.read_clip(tmp_path / "c.zarr").arrays["rgb"].any()


def test_a_foreign_zarr_group_is_refused(tmp_path):
    import zarr

    zarr.open_group(tmp_path / "other.zarr", mode="w").attrs["format"] = "something.else"
    with pytest.raises(store.StoreError, match=r"not a stance\.render\.clip store"):
        store.open_attrs(tmp_path / "other.zarr")


def test_partial_reads_take_frames_per_array(tmp_path):
    arrays, tracks, attrs = _clip()
    path = store.write_clip(tmp_path / "c.zarr", arrays, tracks, attrs)
    clip = store.read_clip(path, frames={"rgb": slice(0, 1), "depth": [0, 2]})
    assert set(clip.arrays) == {"rgb", "depth"}
    assert np.array_equal(clip.arrays["rgb"], arrays["rgb"][:1])
    assert np.array_equal(clip.arrays["depth"], arrays["depth"][[0, 2]])
    assert np.array_equal(clip.tracks["positions"], tracks["positions"])
