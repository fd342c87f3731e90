"""Sampling inside the output layer's span: token layout, basis and the sampling loop."""

import numpy as np
import pytest
import torch
from helpers import KEY, make_pipe

from stance.generate import output_span
from stance.train import tiny


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.make_tiny(tmp_path_factory.mktemp("span") / "tiny")


def test_tokens_are_read_in_the_order_the_model_unpatchifies_them(model_dir):
    model = make_pipe(model_dir).transformer
    p, p_t = model.config.patch_size, model.config.patch_size_t
    batch, frames, height, width = 2, 4, 8, 6
    size = model.proj_out.out_features
    tokens = torch.randn(batch, frames // p_t * height // p * width // p, size)
    latents = model._unpatchify(tokens, batch, frames, height, width)
    assert latents.shape == (batch, frames, size // (p * p * p_t), height, width)
    rows = output_span.to_tokens(latents, p, p_t)
    assert torch.equal(rows, tokens.reshape(-1, size))
    assert torch.equal(output_span.from_tokens(rows, latents.shape, p, p_t), latents)


def layer_holder(layer):
    return type("Model", (), {"proj_out": layer})()


def test_the_basis_spans_the_layer_and_the_projection_keeps_only_that_span():
    torch.manual_seed(0)
    narrow = torch.nn.Linear(4, 16)  # 16 values from width 4: a 5-dimensional span
    basis = output_span.output_basis(layer_holder(narrow))
    assert basis.shape == (16, 5)
    assert torch.allclose(basis.T @ basis, torch.eye(5, dtype=basis.dtype), atol=1e-12)
    predicted = narrow(torch.randn(2 * 2 * 2, 4)).detach()  # the tokens of (1, 4, 8, 2, 2)
    latents = output_span.from_tokens(predicted, torch.Size((1, 4, 8, 2, 2)), 1, 2)
    assert torch.allclose(output_span.project(latents, basis, 1, 2), latents, atol=1e-5)
    outside = torch.randn(16, dtype=torch.float64)
    outside -= basis @ (basis.T @ outside)
    noisy = output_span.to_tokens(latents, 1, 2) + outside.float()
    noisy = output_span.from_tokens(noisy, latents.shape, 1, 2)
    assert torch.allclose(output_span.project(noisy, basis, 1, 2), latents, atol=1e-5)
    wide = torch.nn.Linear(32, 16)  # the span holds every value: nothing to project
    assert output_span.output_basis(layer_holder(wide)) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_rank_does_not_depend_on_the_weights_precision(dtype):
    """A GPU samples in bf16: the smallfine shape keeps its 129 directions, CogVideoX-1.5's
    (128 values from width 3,072) needs no projection, in every dtype."""
    torch.manual_seed(0)
    smallfine = torch.nn.Linear(128, 384).to(dtype)
    assert output_span.output_basis(layer_holder(smallfine)).shape == (384, 129)
    full = torch.nn.Linear(3072, 128).to(dtype)
    assert output_span.output_basis(layer_holder(full)) is None


def test_a_rank_deficient_layer_keeps_its_bias_in_the_span():
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 32)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(32, 6) @ torch.randn(6, 32))
    basis = output_span.output_basis(layer_holder(layer))
    assert basis.shape == (32, 7)  # rank 6 + the bias
    bias = layer.bias.detach().double()
    assert torch.allclose(basis @ (basis.T @ bias), bias, atol=1e-9)


def outside_share(latents: torch.Tensor, basis: torch.Tensor, patch: int, patch_t: int):
    rows = output_span.to_tokens(latents.double(), patch, patch_t)
    return float((rows - (rows @ basis) @ basis.T).norm() / rows.norm())


def test_sampling_keeps_every_step_in_the_span_only_when_asked(model_dir, monkeypatch):
    pipe = make_pipe(model_dir)
    model = pipe.transformer
    layer = model.proj_out  # width 32 -> 32 values: full rank, no projection
    assert output_span.output_basis(model) is None
    with torch.no_grad():  # rank 6 (+ bias): sampling can now leave the span
        layer.weight.copy_(torch.randn(layer.out_features, 6) @ torch.randn(6, layer.in_features))
    basis = output_span.output_basis(model)
    assert basis.shape[1] == 7
    p, p_t = model.config.patch_size, model.config.patch_size_t
    channels = model.config.in_channels // 2
    inputs, outputs = [], []
    forward = model.forward

    def recording(**kwargs):
        out = forward(**kwargs)
        for key in ("hidden_states", "aux_hidden_states"):  # the noisy half of the input
            inputs.append(kwargs[key][:, :, :channels])
        outputs.extend(out[0])  # the RGB and aux predictions
        return out

    monkeypatch.setattr(model, "forward", recording)

    def shares(**kwargs):
        inputs.clear(), outputs.clear()
        video = pipe.generate(KEY, None, "a cube", 9, 2, 1.0, seed=0, aux=True, **kwargs).video
        return [outside_share(x, basis, p, p_t) for x in inputs], video

    free, free_video = shares()
    assert len(free) == 4  # two steps, RGB and aux
    assert all(outside_share(y, basis, p, p_t) < 1e-5 for y in outputs)  # what it predicts
    assert min(free) > 0.1
    kept, kept_video = shares(project_output_span=True)
    assert max(kept) < 1e-5  # the start and every step's latents, both streams
    assert not np.array_equal(free_video, kept_video)


def test_the_basis_reads_weights_offloaded_layer_by_layer():
    """memory_profile: sequential leaves the weights on the meta device between forwards."""
    from accelerate import cpu_offload

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.proj_out = torch.nn.Linear(4, 16)
    expected = output_span.output_basis(model)
    cpu_offload(model, execution_device=torch.device("cpu"))  # as diffusers' sequential
    assert model.proj_out.weight.device.type == "meta"
    basis = output_span.output_basis(model)
    assert torch.allclose(basis @ basis.T, expected @ expected.T, atol=1e-12)
    assert model.proj_out.weight.device.type == "meta"  # left as it was
