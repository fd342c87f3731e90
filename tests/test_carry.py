"""Carrying a training set to another machine (train/carry.py): the unpacked cache is the
encode stage's, byte for byte in every tensor and metadata value; bad packs are refused."""

import filecmp
import json

import numpy as np
import pytest
import torch
from helpers import clip_arrays, write_cue_store
from safetensors import safe_open

from stance import stores
from stance.render import store
from stance.train import carry, data, encode, tiny


def write_render_shard(shard, clips=2, frames=9, size=16):
    shard.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(clips):
        rgb = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
        seg = np.zeros((frames, size, size), np.uint16)
        seg[:, 4:9, 2 + k : 8 + k] = 1
        tracks = {n: np.zeros((1, frames, *tail), d) for n, (d, tail) in store.TRACKS.items()}
        attrs = {
            "clip_id": f"train-{k:08d}",
            "instances": [
                {
                    "mass": 1.0 + k,
                    "dynamic": True,
                    "shape": "cube",
                    "material": "metal",
                    "color": [0.9, 0.1, 0.1],
                }
            ],
        }
        arrays = clip_arrays(rgb, seg)
        arrays["depth"] = rng.uniform(1, 5, (frames, size, size)).astype(np.float32)
        store.write_clip(shard / f"train-{k:08d}.zarr", arrays, tracks, attrs)


def read_all(path):
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("carry")
    render, cues = root / "render" / "00000", root / "cues" / "00000"
    write_render_shard(render)
    cues.mkdir(parents=True)
    for k in range(2):
        write_cue_store(cues / f"train-{k:08d}.zarr", size=16)
        (cues / f"train-{k:08d}.cue.png").write_bytes(b"preview")
    model = str(tiny.make_tiny(root / "model", size="small"))
    return render, cues, model


def test_an_unpacked_pack_is_the_encode_stages_cache(run, tmp_path):
    render, cues, model = run
    encode.encode_shard(render, tmp_path / "encoded", model, 32, "h1", allow_download=False)
    pack = carry.pack([render], [cues], tmp_path / "pack")
    n = carry.unpack(pack, tmp_path / "latents", tmp_path / "cues", model, 32, "h1")
    assert n == 2
    for path in sorted((tmp_path / "encoded").glob("*.safetensors")):
        meta, tensors = read_all(path)
        meta2, tensors2 = read_all(tmp_path / "latents" / "00000" / path.name)
        assert meta2 == meta and tensors2.keys() == tensors.keys()
        for name, value in tensors.items():
            assert torch.equal(tensors2[name], value), name
    record = json.loads((tmp_path / "latents/00000/encode.resolved.json").read_text())
    original = json.loads((tmp_path / "encoded/encode.resolved.json").read_text())
    assert record["clips"] == original["clips"] and record["model"] == original["model"]
    # the cue stores come back whole, their previews are left behind
    unpacked = tmp_path / "cues" / "00000"
    assert not list(unpacked.glob("*.png"))
    for zarr_dir in cues.glob("*.zarr"):
        diff = filecmp.dircmp(zarr_dir, unpacked / zarr_dir.name)
        assert not diff.left_only and not diff.right_only and not diff.diff_files
    # and the trainer reads them as it reads the encode stage's output
    dataset = data.CacheDataset(
        sorted((tmp_path / "latents/00000").glob("*.safetensors")),
        "none",
        data.cue_store_paths([unpacked]),
    )
    assert dataset[1]["cues"].shape == (4, 16, 16)


def test_bad_packs_and_mismatched_shards_are_refused(run, tmp_path):
    render, cues, _ = run
    with pytest.raises(ValueError, match="same shards"):
        carry.pack([render], [cues.parent], tmp_path / "p")
    with pytest.raises(stores.StoreError, match=r"no pack\.json"):
        carry.read_pack(tmp_path)
    pack = carry.pack([render], [cues], tmp_path / "pack")
    record = json.loads((pack / "pack.json").read_text())
    (pack / "pack.json").write_text(json.dumps({**record, "version": "0"}))
    with pytest.raises(stores.StoreError, match="pack it again"):
        carry.read_pack(pack)
    (pack / "pack.json").write_text(json.dumps({**record, "clips": record["clips"][:1]}))
    with pytest.raises(stores.StoreError, match="different clips"):
        carry.read_pack(pack)


def test_step_batches_are_the_steps_indices_from_the_resume_step():
    batches = list(data.StepBatches(3, 7, 4, 10, 0, 0, 1))
    assert batches == [data.batch_indices(s, 4, 10, 0) for s in range(3, 7)]
    assert len(data.StepBatches(7, 7, 4, 10, 0, 0, 1)) == 0
    assert data.loader_workers(torch.device("cpu")) == 0
