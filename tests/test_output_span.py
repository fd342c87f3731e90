"""Sampling inside the output layer's span: token layout, basis and the sampling loop."""

import numpy as np
import pytest
import torch

from stance.generate import output_span
from stance.generate.pipeline import StanceImageToVideoPipeline
from stance.train import components, tiny, weights

KEY = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.make_tiny(tmp_path_factory.mktemp("span") / "tiny")


def make_pipe(model_dir):
    frozen = components.load_frozen(str(model_dir), False)
    transformer = weights.stance_transformer(str(model_dir), {"motion_tokens": 4}, False).eval()
    pipe = StanceImageToVideoPipeline(transformer=transformer, **frozen)
    pipe.set_progress_bar_config(disable=True)
    return pipe


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


def test_the_basis_spans_the_layer_and_the_projection_keeps_only_that_span():
    torch.manual_seed(0)
    narrow = torch.nn.Linear(4, 16)  # 16 values from width 4: a 5-dimensional span
    basis = output_span.output_basis(type("M", (), {"proj_out": narrow})())
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
    assert output_span.output_basis(type("M", (), {"proj_out": wide})()) is None


def test_sampling_keeps_the_latents_in_the_span_only_when_asked(model_dir, monkeypatch):
    pipe = make_pipe(model_dir)
    layer = pipe.transformer.proj_out  # width 32 -> 32 values: full rank, no projection
    assert output_span.output_basis(pipe.transformer) is None
    with torch.no_grad():  # rank 6 (+ bias): sampling can now leave the span
        low = torch.randn(layer.out_features, 6) @ torch.randn(6, layer.in_features)
        layer.weight.copy_(low * 0.1)
    basis = output_span.output_basis(pipe.transformer)
    assert basis.shape[1] <= 7  # the bias adds a direction unless it lies in the span
    sampled = []
    denoise = pipe._denoise
    monkeypatch.setattr(pipe, "_denoise", lambda *a: sampled.append(denoise(*a)) or sampled[-1])
    p, p_t = pipe.transformer.config.patch_size, pipe.transformer.config.patch_size_t

    def outside_share(**kwargs):
        sampled.clear()
        video = pipe.generate(KEY, None, "a cube", 9, 2, 1.0, seed=0, **kwargs).video
        rows = output_span.to_tokens(sampled[0][0].double(), p, p_t)  # padded latents
        inside = (rows @ basis) @ basis.T
        return float((rows - inside).norm() / rows.norm()), video

    free, free_video = outside_share()
    kept, kept_video = outside_share(project_output_span=True)
    assert free > 0.1 and kept < 1e-5  # 0.37 of the unprojected latents lie outside
    assert not np.array_equal(free_video, kept_video)
