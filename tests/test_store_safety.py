"""Stores between stages: a damaged store fails the next job with its path and the command
that rebuilds it; a job killed with SIGKILL leaves nothing a rerun accepts as complete."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import BIN
from safetensors.torch import save_file

from stance import config, stores, video
from stance.cues import bench as cue_bench
from stance.cues import runner
from stance.cues import store as cue_store
from stance.depth import store as depth_store
from stance.render import store as clip_store
from stance.settings import as_dict
from stance.train import encode


def write_shard(folder: Path, clips: int, frames: int = 5, size: int = 16) -> tuple[Path, Path]:
    """A rendered shard and its depth shard of synthetic clips (no Blender)."""
    for k in range(clips):
        arrays, tracks, attrs = cue_bench.synthetic_clip(frames, size, 3, seed=k)
        clip_id = f"test-{k:08d}"
        attrs = {**attrs, "clip_id": clip_id}
        clip_store.write_clip(folder / "render" / f"{clip_id}.zarr", arrays, tracks, attrs)
        disparity = runner.flickering_disparity(arrays["depth"], np.random.default_rng(k))
        depth_store.write_depth(
            folder / "depth" / f"{clip_id}.zarr",
            disparity.astype(np.float32),
            {"clip_id": clip_id, "model": "synthetic", "code_hash": "test"},
        )
    return folder / "render", folder / "depth"


@pytest.fixture
def shard(tmp_path):
    render, depth = write_shard(tmp_path, 1)
    cues = tmp_path / "cues"
    runner.run_shard(render, depth, cues, config.defaults().cues, "test")
    return render / "test-00000000.zarr", depth / "test-00000000.zarr", cues / "test-00000000.zarr"


def _chunk(store_path: Path, array: str, pick=max) -> Path:
    return pick(
        (p for p in (store_path / array).rglob("*") if p.is_file() and p.name != "zarr.json"),
        key=lambda p: p.stat().st_size,
    )


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(max(path.stat().st_size, 16)))


READERS = {
    "render": (0, "rgb", lambda p: clip_store.read_clip(p), "stance render shard"),
    "depth": (1, "disparity", lambda p: depth_store.read_depth(p), "stance depth shard"),
    "cues": (2, "cue", lambda p: cue_store.read(p), "stance cues shard"),
    "cue array": (2, "cue", lambda p: cue_store.read_cue(p), "stance cues shard"),
}


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize(
    "damage",
    [
        lambda store, array: _truncate(_chunk(store, array)),
        lambda store, array: _garbage(_chunk(store, array)),
        lambda store, array: _chunk(store, array).unlink(),
        # the smallest chunk is the one most like fill values (zarr skips those by default)
        lambda store, array: _chunk(store, array, pick=min).unlink(),
        lambda store, array: shutil.rmtree(store / array),
        lambda store, array: (store / array / "zarr.json").write_text("{not json"),
        lambda store, array: (store / "zarr.json").write_bytes(b"\x00garbage"),
    ],
    ids=[
        "truncated chunk",
        "garbage chunk",
        "deleted chunk",
        "deleted smallest chunk",
        "missing array",
        "garbage array meta",
        "root",
    ],
)
def test_a_damaged_store_names_itself_and_the_command_that_rebuilds_it(shard, kind, damage):
    index, array, read, command = READERS[kind]
    path = shard[index]
    damage(path, array)
    with pytest.raises(stores.StoreError) as error:
        read(path)
    assert str(path) in str(error.value) and command in str(error.value)


def test_a_damaged_or_missing_latent_cache_names_the_encoder(tmp_path):
    path = tmp_path / "test-00000000.safetensors"
    save_file(
        {name: torch.zeros(2) for name in encode.TENSORS},
        path,
        metadata={"format": encode.FORMAT, "version": encode.VERSION},
    )
    assert encode.read_cache(path, encode.TENSORS[:1])
    for damage in (_truncate, _garbage, os.remove):
        damage(path)
        with pytest.raises(stores.StoreError) as error:
            encode.read_cache(path)
        assert str(path) in str(error.value) and "stance train encode" in str(error.value)


def test_a_replaced_store_is_never_half_deleted(tmp_path):
    """Publishing over an old store moves it aside first: at no point does the path hold
    a store marked complete with chunks missing."""
    path = tmp_path / "c.zarr"
    depth_store.write_depth(path, np.ones((2, 4, 4), np.float32), {"clip_id": "c"})
    depth_store.write_depth(path, np.full((2, 4, 4), 2, np.float32), {"clip_id": "c"})
    assert depth_store.read_depth(path)[0].max() == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]


def _assert_same_previews(a: Path, b: Path) -> None:
    """Previews decode to the same video up to the encoder's own variation."""
    for path in sorted(a.rglob("*.mp4")):
        x = video.read_video(path).astype(np.int16)
        y = video.read_video(b / path.relative_to(a)).astype(np.int16)
        assert x.shape == y.shape and np.abs(x - y).mean() < 2.0, path.name


def _files(folder: Path) -> dict[str, bytes | dict]:
    """Every file's bytes, except wall-clock times: store metadata without `timings`, the
    manifest without `render_seconds`, run records (*.resolved.json) left out."""
    out: dict[str, bytes | dict] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.endswith(".resolved.json"):
            continue
        if p.suffix == ".mp4":  # previews: libx264 is not byte-reproducible here, even
            # with one thread (measured: 2-6 distinct files from 15 identical encodes);
            # their decoded frames are compared in _assert_same_previews
            out[str(p.relative_to(folder))] = "preview"
        elif p.suffix == ".parquet":  # the manifest: all but the wall times
            out[str(p.relative_to(folder))] = pq.read_table(p).drop(["render_seconds"]).to_pydict()
        elif p.name == "zarr.json":
            meta = json.loads(p.read_text())
            meta.get("attributes", {}).pop("timings", None)
            out[str(p.relative_to(folder))] = meta
        else:
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def _kill_after_first_store(command: list[str], out: Path, timeout: float = 120) -> None:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(".partial-" not in p.name for p in out.glob("*.zarr")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the job finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow  # 49x256x256 clips so that the kill lands inside the shard: ~15 s
def test_a_killed_cue_job_reruns_to_the_same_bytes(tmp_path):
    render, depth = write_shard(tmp_path / "in", clips=6, frames=49, size=256)
    payload = json.dumps(config.validate({})["cues"])

    def command(out):
        return [
            str(BIN / "stance"),
            "cues",
            "shard",
            "--render",
            str(render),
            "--depth",
            str(depth),
            "--settings",
            payload,
            "--code-hash",
            "t",
            "--out",
            str(out),
        ]

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    _kill_after_first_store(command(killed), killed)
    left = sorted(p.name for p in killed.iterdir())
    assert not any(name.endswith(".resolved.json") for name in left)  # not marked done
    for partial in killed.glob("*.partial-*"):
        with pytest.raises(stores.StoreError):
            cue_store.read(partial)
    subprocess.run(command(killed), check=True, capture_output=True)
    subprocess.run(command(clean), check=True, capture_output=True)
    assert _files(killed) == _files(clean)
    _assert_same_previews(killed, clean)


@pytest.mark.blender
def test_a_killed_render_job_reruns_to_the_same_bytes(tmp_path, tiny_render_settings):
    render = dataclasses.replace(tiny_render_settings, frames=5)
    payload = json.dumps({k: v for k, v in as_dict(render).items() if k != "threads"})

    def command(out):
        return [
            str(BIN / "stance"),
            "render",
            "shard",
            "--split",
            "test",
            "--seeds",
            "2000000,2000001,2000002",
            "--settings",
            payload,
            "--threads",
            "1",
            "--code-hash",
            "t",
            "--out",
            str(out),
        ]

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    _kill_after_first_store(command(killed), killed, timeout=300)
    assert not (killed / "manifest.parquet").exists()  # the shard is not complete
    subprocess.run(command(killed), check=True, capture_output=True)
    subprocess.run(command(clean), check=True, capture_output=True)
    assert _files(killed).keys() == _files(clean).keys()
    assert _files(killed) == _files(clean)
    _assert_same_previews(killed, clean)
