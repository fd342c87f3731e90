"""A test shard evaluated end to end with both feature networks (I3D FVD, VideoMAE-v2
cd-FVD) on tiny random weights, merged into Table 1."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import TINY, TinyVideoNet, clip_arrays, original_state_dict

from stance import config
from stance.evaluate import fvd, metrics, tables, videomae
from stance.render import store

T, S = 12, 24


def moving_square_clip(seed: int):
    rng = np.random.default_rng(seed)
    rgb = np.full((T, S, S, 3), 40, np.uint8)
    seg = np.zeros((T, S, S), np.uint16)
    x0, y0, vx = rng.integers(2, 8), rng.integers(4, 14), rng.integers(0, 2)
    for t in range(T):
        x = x0 + vx * t
        rgb[t, y0 : y0 + 8, x : x + 8] = (220, 60, 60)
        seg[t, y0 : y0 + 8, x : x + 8] = 1
    arrays = clip_arrays(rgb, seg)
    tracks = {name: np.zeros((1, T, *tail), dtype) for name, (dtype, tail) in store.TRACKS.items()}
    attrs = {
        "clip_id": f"test-{seed:08d}",
        "instances": [{"mass": 1.0, "dynamic": True}],
        "render": {"fps": 16},
    }
    return arrays, tracks, attrs


def test_a_shard_gets_fvd_and_cd_fvd_columns(tmp_path):
    shard = tmp_path / "render" / "00000"
    ids = []
    for seed in range(4):
        arrays, tracks, attrs = moving_square_clip(seed)
        store.write_clip(shard / f"{attrs['clip_id']}.zarr", arrays, tracks, attrs)
        ids.append(attrs["clip_id"])
    manifest = pa.table({"clip_id": ids, "small_object_split": [False, True, False, True]})
    pq.write_table(manifest, shard / "manifest.parquet")
    torch.jit.script(TinyVideoNet()).save(str(tmp_path / "i3d.pt"))
    model = videomae.build(videomae.config(**TINY))
    model.load_state_dict(videomae.convert_checkpoint(original_state_dict()), strict=False)
    model.save_pretrained(tmp_path / "vmae")
    networks = {
        "fvd": fvd.load_extractor(tmp_path / "i3d.pt"),
        "cd_fvd": videomae.load_extractor(tmp_path / "vmae"),
    }
    settings = config.section_settings("evaluate", {"pv_source": "deterministic"})
    out = metrics.evaluate_shard(
        shard,
        tmp_path / "m.parquet",
        "copy_first_frame",
        settings,
        features=networks,
        code_hash="c0de",
    )
    rows = pq.read_table(out).to_pandas()
    assert len(rows) == 4
    assert (rows["evaluation_code"] == "c0de").all()  # replicates compares it across runs
    assert len(rows["cd_fvd_real"].iloc[0]) == TINY["hidden_size"]
    assert len(rows["fvd_generated"].iloc[0]) == 4
    table = tables.table1(rows, bootstrap=20).set_index("split")
    assert table.loc["all", "physics_iq_ci95"].startswith("[")
    for name in ("fvd", "cd_fvd"):  # the features each row carries, scored independently
        real = np.stack(rows[f"{name}_real"].to_numpy())
        fake = np.stack(rows[f"{name}_generated"].to_numpy())
        assert table.loc["all", name] == pytest.approx(fvd.fvd_from_features(real, fake))
        assert table.loc["all", name] > 0
        assert table.loc["all", f"{name}_ci95"].startswith("[")
    # the same shard without networks: the columns say why they are empty
    plain = metrics.evaluate_shard(shard, tmp_path / "p.parquet", "twin", settings)
    assert pd.read_parquet(plain)["evaluation_code"].isna().all()  # none given: unrecorded
    row = tables.table1(pd.read_parquet(plain), bootstrap=20).iloc[0]
    assert np.isnan(row["cd_fvd"]) and "VideoMAE-v2" in row["cd_fvd_ci95"]
