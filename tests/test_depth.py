"""Depth-Anything-V2 loading and inference on a tiny random-weight model."""

import json

import numpy as np
import pytest
from helpers import run_cli

from stance import config, stores
from stance.depth import model as depth_model
from stance.depth import store as depth_store
from stance.errors import UserError
from stance.settings import as_dict


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return depth_model.make_tiny(tmp_path_factory.mktemp("models") / "tiny-da2")


def test_tiny_model_loads_through_from_pretrained(tiny_model):
    model, processor = depth_model.load(str(tiny_model), allow_download=False)
    assert type(model).__name__ == "DepthAnythingForDepthEstimation"
    assert model.config.depth_estimation_type == "relative"
    assert list(processor.image_mean) == [0.485, 0.456, 0.406]  # the hub preprocessing
    again, _ = depth_model.load(str(tiny_model), allow_download=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_prediction_is_resized_back_and_batched_consistently(tiny_model):
    model, processor = depth_model.load(str(tiny_model), allow_download=False)
    frames = np.random.default_rng(0).integers(0, 255, (5, 32, 48, 3), dtype=np.uint8)
    one = depth_model.predict(model, processor, frames, 56, 5, "cpu", "float32")
    two = depth_model.predict(model, processor, frames, 56, 2, "cpu", "float32")
    assert one.shape == (5, 32, 48) and one.dtype == np.float32
    assert np.allclose(one, two, atol=1e-5)
    assert np.isfinite(one).all()


def test_bfloat16_autocast_stays_close_to_float32(tiny_model):
    """The mixed-precision path (CUDA's default) run on CPU's bf16 autocast: float32
    output at the frames' size, close to the float32 prediction."""
    model, processor = depth_model.load(str(tiny_model), allow_download=False)
    frames = np.random.default_rng(1).integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
    full = depth_model.predict(model, processor, frames, 56, 3, "cpu", "float32")
    half = depth_model.predict(model, processor, frames, 56, 3, "cpu", "bfloat16")
    assert half.dtype == np.float32 and half.shape == full.shape
    assert not np.array_equal(half, full)  # bf16 really ran
    assert np.corrcoef(half.ravel(), full.ravel())[0, 1] > 0.99


@pytest.mark.slow  # waits for the unreachable hub
def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(UserError, match="huggingface-cli download depth-anything/"):
        depth_model.load("depth-anything/Depth-Anything-V2-Large-hf", allow_download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no config\.json"):
        depth_model.load(str(tmp_path / "empty"))


def test_auto_device_is_the_gpu_in_bf16_else_cpu_float32():
    import torch

    expected = ("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32")
    assert depth_model.resolve_device("auto", "auto") == expected
    assert depth_model.resolve_device("cuda", "auto") == ("cuda", "bfloat16")
    assert depth_model.resolve_device("cpu", "auto") == ("cpu", "float32")


def test_depth_store_round_trip_and_checks(tmp_path):
    disparity = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    path = depth_store.write_depth(tmp_path / "c.zarr", disparity, {"clip_id": "c", "model": "m"})
    read, attrs = depth_store.read_depth(path)
    assert np.array_equal(read, disparity) and attrs["model"] == "m"
    with pytest.raises(stores.StoreError, match="float32"):
        depth_store.write_depth(tmp_path / "d.zarr", disparity.astype(np.float64), {})
    with pytest.raises(stores.StoreError, match="run the depth stage"):
        depth_store.read_depth(tmp_path / "missing.zarr")


@pytest.mark.slow  # waits for the unreachable hub
def test_cli_offline_error_is_one_clear_line(tmp_path):
    result = run_cli(
        "depth",
        "shard",
        "--render",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
        "--model",
        "depth-anything/Depth-Anything-V2-Small-hf",
        "--settings",
        json.dumps(as_dict(config.defaults().depth)),
        "--offline",
        check=False,
    )
    assert result.returncode == 2
    assert "huggingface-cli download" in result.stderr and "Traceback" not in result.stderr


def test_real_geometries_have_the_published_sizes():
    """Depth-Anything-V2 Small/Base/Large are 24.8 M / 97.5 M / 335.3 M parameters; built
    on the meta device, so no memory is spent on the weights."""
    import torch
    from transformers import DepthAnythingForDepthEstimation

    expected = {"small": 24.8, "base": 97.5, "large": 335.3}
    for name, millions in expected.items():
        with torch.device("meta"):
            model = DepthAnythingForDepthEstimation(depth_model.geometry_config(name))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        assert round(params, 1) == millions, name
