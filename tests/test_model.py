"""The STANCE transformer on a tiny CogVideoX-1.5 geometry (random weights)."""

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import apply_rotary_emb

from stance.train import objective, tiny, weights
from stance.train.model import StanceTransformer, rotate, select_sites

B, F, C, H, W = 2, 4, 8, 4, 4  # 4 latent frames of 4x4 latents = 32x32 pixels


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    base = CogVideoXTransformer3DModel(**tiny.TRANSFORMER).eval()
    stance = StanceTransformer(**tiny.TRANSFORMER, motion_tokens=4).eval()
    missing, unexpected = stance.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(stance.new_module_prefixes) for k in missing)
    return base, stance


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, F, C, H, W, generator=g)
    text = torch.randn(B, 7, 32, generator=g)
    rope = objective.rotary_embedding(
        StanceTransformer(**tiny.TRANSFORMER).config, 32, 32, F, "cpu"
    )
    return dict(
        hidden_states=x,
        encoder_hidden_states=text,
        timestep=torch.tensor([500, 20]),
        ofs=torch.full((B,), 2.0),
        image_rotary_emb=rope,
    )


def test_without_cues_and_aux_the_output_is_the_stock_output(models):
    base, stance = models
    with torch.no_grad():
        assert torch.equal(base(**_inputs()).sample, stance(**_inputs()).sample)


def test_batched_rope_matches_diffusers_rotation():
    x = torch.randn(2, 3, 5, 16)
    cos, sin = torch.randn(5, 16), torch.randn(5, 16)
    assert torch.equal(rotate(x, cos, sin), apply_rotary_emb(x, (cos, sin)))
    per_sample = rotate(x, cos[None].expand(2, -1, -1), sin[None].expand(2, -1, -1))
    assert torch.equal(per_sample, apply_rotary_emb(x, (cos, sin)))


def test_site_selection_budget_tiling_and_striding():
    active = torch.zeros(3, 10, dtype=torch.bool)
    active[0, [2, 5, 7]] = True  # fewer sites than the budget: tiled cyclically
    active[2] = True  # more sites: evenly strided at inference
    idx, has = select_sites(active, 4, training=False)
    assert idx.shape == (3, 4)
    assert idx[0].tolist() == [2, 5, 7, 2]
    assert not has[1] and has[0] and has[2]
    assert idx[2].tolist() == [0, 3, 6, 9]
    g = torch.Generator().manual_seed(0)
    idx, _ = select_sites(active, 4, training=True, generator=g)
    assert len(set(idx[2].tolist())) == 4  # a random subset without repeats
    assert set(idx[0].tolist()) <= {2, 5, 7}


def test_motion_tokens_carry_first_frame_rope(models):
    _, stance = models
    inputs = _inputs()
    cues = torch.zeros(B, 4, 32, 32)
    cues[0, :, 16:32, 0:16] = 1.0  # only site (row 1, col 0) of the 2x2 patch grid
    tokens, (cos, _sin), idx = stance.motion_tokens(cues, inputs["image_rotary_emb"])
    assert tokens.shape == (
        B,
        4,
        stance.config.num_attention_heads * stance.config.attention_head_dim,
    )
    assert idx[0].tolist() == [2, 2, 2, 2]  # tiled; the first frame's row-major index
    table_cos = inputs["image_rotary_emb"][0]
    assert torch.equal(cos[0], table_cos[[2, 2, 2, 2]])
    assert not tokens[1].any()  # no cue: zero tokens


def test_cues_and_aux_change_the_output_and_train_the_new_modules(models):
    _, stance = models
    stance = StanceTransformer.from_config(stance.config)
    stance.load_state_dict(models[1].state_dict())
    stance.train()
    inputs = _inputs()
    cues = torch.zeros(B, 4, 32, 32)
    cues[:, :, 4:12, 4:12] = 0.5
    rgb, aux = stance(**inputs, cues=cues, aux_hidden_states=torch.randn(B, F, C, H, W)).sample
    assert rgb.shape == aux.shape == (B, F, 4, H, W)
    (rgb.square().mean() + aux.square().mean()).backward()
    assert stance.cue_tokenizer[0].weight.grad.abs().sum() > 0
    assert stance.domain_embedding.grad.abs().sum() > 0
    with torch.no_grad():
        stance.eval()
        plain = stance(**inputs).sample
        cued = stance(**inputs, cues=cues).sample
    assert not torch.equal(plain, cued)


def test_map2d_ablation_adds_no_tokens(models):
    base, _ = models
    stance = StanceTransformer(**tiny.TRANSFORMER, cue_mode="map2d").eval()
    stance.load_state_dict(base.state_dict(), strict=False)
    cues = torch.zeros(B, 4, 32, 32)
    cues[:, :, 8:16, 8:16] = torch.tensor([1.5, -0.5, 0.1, 0.3])[:, None, None]
    with torch.no_grad():
        out = stance(**_inputs(), cues=cues).sample
        reversed_ = stance(
            **_inputs(), cues=cues * torch.tensor([-1, -1, -1, 1])[:, None, None]
        ).sample
        without = stance(**_inputs(), cues=None).sample
    assert out.shape == (B, F, 4, H, W)  # no extra tokens reach the output
    assert not torch.allclose(out, without) and not torch.allclose(out, reversed_)


def _site_cues(layout: str) -> torch.Tensor:
    """Cue maps on 16 px sites (tiny: 8x VAE, 2x patch): one 4x4 px object in the first
    site, placed in its top-left or bottom-right corner (same site means, other pixels)."""
    cues = torch.zeros(B, 4, 32, 32)
    corner = slice(0, 4) if layout == "top_left" else slice(12, 16)
    cues[:, :, corner, corner] = torch.tensor([1.5, -0.5, 0.1, 0.3])[:, None, None]
    return cues


@pytest.mark.parametrize("mode", ["map2d", "lowres_map"])
def test_lowres_map_sees_only_site_means(models, mode):
    base, _ = models
    stance = StanceTransformer(**tiny.TRANSFORMER, cue_mode=mode).eval()
    stance.load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        corners = [stance(**_inputs(), cues=_site_cues(c)).sample for c in ("top_left", "other")]
        without = stance(**_inputs(), cues=None).sample
    assert corners[0].shape == (B, F, 4, H, W)  # no extra tokens
    assert not torch.allclose(corners[0], without)  # the small object's cue still acts
    # the low-resolution map cannot tell where in its site the object sits; map2d can
    assert torch.allclose(*corners) == (mode == "lowres_map")
    assert stance.cue_tokenizer[0].in_features == (4 if mode == "lowres_map" else 4 * 8 * 8)


def test_save_and_load_round_trip(models, tmp_path):
    _, stance = models
    stance.save_pretrained(tmp_path / "t")
    again = StanceTransformer.from_pretrained(tmp_path / "t")
    assert again.config.motion_tokens == 4 and again.config.cue_mode == "dense_rope"
    for a, b in zip(stance.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_loading_from_a_cogvideox_checkpoint(tmp_path):
    folder = tiny.make_tiny(tmp_path / "tiny")
    model = weights.stance_transformer(str(folder), {"motion_tokens": 8}, allow_download=False)
    base = CogVideoXTransformer3DModel.from_pretrained(folder, subfolder="transformer")
    for name, tensor in base.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    assert model.config.motion_tokens == 8


def test_only_the_new_modules_are_initialised(tmp_path, monkeypatch):
    """The STANCE model takes the base's weights without building random ones first: the
    only layers initialised are the cue tokenizer's two, from the seeded generator."""
    folder = tiny.make_tiny(tmp_path / "tiny")
    initialised = []
    reset = torch.nn.Linear.reset_parameters

    def counting(layer):
        if not layer.weight.is_meta:  # a weightless layer's reset costs nothing
            initialised.append(tuple(layer.weight.shape))
        reset(layer)

    builds = []
    for _ in range(2):
        torch.manual_seed(7)
        with monkeypatch.context() as patch:
            patch.setattr(torch.nn.Linear, "reset_parameters", counting)
            builds.append(weights.stance_transformer(str(folder), {}, allow_download=False))
        tokenizer = builds[-1].cue_tokenizer
        assert initialised == [tuple(tokenizer[0].weight.shape), tuple(tokenizer[2].weight.shape)]
        initialised.clear()
    first, second = builds
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert not a.is_meta and torch.equal(a, b), name
    assert torch.count_nonzero(first.cue_tokenizer[0].weight) > 0
    assert torch.equal(first.domain_embedding, torch.zeros_like(first.domain_embedding))
    bound = first.cue_tokenizer[0].in_features ** -0.5  # nn.Linear's default initialisation
    assert first.cue_tokenizer[0].weight.abs().max() <= bound


def test_position_tables_survive_the_weightless_build(tmp_path):
    """Buffers that no checkpoint holds (sin-cos position tables of the models without
    RoPE) are computed at build time, not left on the meta device."""
    geometry = {**tiny.TRANSFORMER, "use_rotary_positional_embeddings": False}
    folder = tmp_path / "base" / "transformer"
    CogVideoXTransformer3DModel(**geometry).save_pretrained(folder)
    model = StanceTransformer(**geometry)
    model.save_pretrained(tmp_path / "backbone" / "transformer")
    built = weights.stance_transformer(
        "unused", {}, allow_download=False, init=tmp_path / "backbone"
    )
    assert torch.equal(built.patch_embed.pos_embedding, model.patch_embed.pos_embedding)


def test_missing_video_weights_say_how_to_get_them(tmp_path):
    from stance.errors import UserError

    with pytest.raises(UserError, match=r"huggingface-cli download THUDM/CogVideoX1\.5-5B-I2V"):
        weights.stance_transformer("THUDM/CogVideoX1.5-5B-I2V", {}, allow_download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no transformer/ folder"):
        weights.stance_transformer(str(tmp_path / "empty"), {})


@pytest.mark.parametrize(
    "flags, expected",
    [({"avx512_bf16"}, torch.float32), ({"avx512_bf16", "amx_bf16"}, torch.bfloat16)],
)
def test_cpu_autocast_attention_runs_in_float32_only_without_amx(monkeypatch, flags, expected):
    from stance import precision
    from stance.train import model as model_module

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    seen = []
    stock = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None):
        seen.append(query.dtype)
        return stock(query, key, value, attn_mask=attn_mask)

    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention", spy)
    q, k, v = torch.randn(3, 2, 2, 10, 8).to(torch.bfloat16).unbind(0)
    with torch.autocast("cpu", torch.bfloat16):
        out = model_module.attention(q, k, v)
    reference = stock(q.float(), k.float(), v.float())
    assert seen == [expected] and out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=2e-2)
    seen.clear()
    model_module.attention(q.float(), k.float(), v.float())  # no autocast: untouched
    assert seen == [torch.float32]
