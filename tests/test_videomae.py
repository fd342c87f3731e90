"""VideoMAE-v2 features for content-debiased FVD: the checkpoint conversion reproduces the
original network's forward pass, preprocessing matches cd-fvd, errors are clear."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY, original_state_dict, run_cli

from stance.errors import UserError
from stance.evaluate import fvd, videomae


def sinusoid(n, d):
    pos = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(d) // 2) / d)[None]
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return torch.tensor(pos, dtype=torch.float32)


def reference_features(state, x):
    """The original ViT's forward_features, written from its published layout: x is
    (B, 3, T, H, W); qkv is one matrix with bias (q_bias, 0, v_bias)."""
    s, d, heads = state["module"], TINY["hidden_size"], TINY["num_attention_heads"]
    p = TINY["patch_size"]
    tokens = F.conv3d(x, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], (2, p, p))
    tokens = tokens.flatten(2).transpose(1, 2)
    tokens = tokens + sinusoid(tokens.shape[1], d)
    for i in range(TINY["num_hidden_layers"]):
        b = f"blocks.{i}."
        h = F.layer_norm(tokens, (d,), s[b + "norm1.weight"], s[b + "norm1.bias"], 1e-6)
        bias = torch.cat([s[b + "attn.q_bias"], torch.zeros(d), s[b + "attn.v_bias"]])
        qkv = F.linear(h, s[b + "attn.qkv.weight"], bias)
        qkv = qkv.reshape(h.shape[0], h.shape[1], 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (d // heads) ** -0.5, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(h.shape)
        tokens = tokens + F.linear(out, s[b + "attn.proj.weight"], s[b + "attn.proj.bias"])
        h = F.layer_norm(tokens, (d,), s[b + "norm2.weight"], s[b + "norm2.bias"], 1e-6)
        h = F.gelu(F.linear(h, s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"]))
        tokens = tokens + F.linear(h, s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"])
    pooled = tokens.mean(1)
    return F.layer_norm(pooled, (d,), s["fc_norm.weight"], s["fc_norm.bias"], 1e-6)


def test_converted_checkpoint_reproduces_the_original_forward():
    state = original_state_dict()
    model = videomae.build(videomae.config(**TINY))
    missing, unexpected = model.load_state_dict(videomae.convert_checkpoint(state), strict=False)
    assert not missing and not unexpected
    x = torch.rand(3, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # B,T,C,H,W
    ours = videomae.features(model, x, batch=2)
    reference = reference_features(state, x.permute(0, 2, 1, 3, 4)).double().numpy()
    assert ours.shape == (3, 32) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_real_geometry_matches_vit_g():
    cfg = videomae.config()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (1408, 40, 16)
    assert cfg.intermediate_size == int(1408 * 48 / 11)
    assert (cfg.patch_size, cfg.tubelet_size, cfg.num_frames, cfg.image_size) == (14, 2, 16, 224)


def test_preprocessing_is_cd_fvd_s():
    videos = np.random.default_rng(0).integers(0, 256, (2, 9, 32, 48, 3), dtype=np.uint8)
    x = videomae.preprocess(videos, size=16, frames=16)
    assert x.shape == (2, 16, 3, 16, 16)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0  # [0, 1], no mean/std
    assert torch.equal(x[:, 9], x[:, 15])  # short clips repeat their last frame
    frame = torch.from_numpy(videos[1, 3]).permute(2, 0, 1)[None].float() / 255
    expected = F.interpolate(frame, size=(16, 16), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(x[1, 3], expected)


def test_missing_or_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match=videomae.CHECKPOINT):
        videomae.load_extractor(tmp_path / "nowhere.pth")
    torch.save({"model": {"some.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="unexpected VideoMAE-v2 key"):
        videomae.load_extractor(tmp_path / "other.pth")


def test_converted_folder_loads_through_the_cli_path(tmp_path):
    model = videomae.build(videomae.config(**TINY))
    model.load_state_dict(videomae.convert_checkpoint(original_state_dict()), strict=False)
    model.save_pretrained(tmp_path / "vmae")
    extract = videomae.load_extractor(tmp_path / "vmae")
    videos = np.random.default_rng(0).integers(0, 256, (4, 6, 20, 20, 3), dtype=np.uint8)
    feats = extract(videos)
    expected = videomae.features(model, videomae.preprocess(videos, 16, 4))
    np.testing.assert_allclose(feats, expected, rtol=1e-6, atol=1e-6)
    # cd-FVD of a set against itself is ~0, against other videos it is not
    assert abs(fvd.fvd_from_features(feats, feats)) < 1e-6
    other = extract(255 - videos)
    assert fvd.fvd_from_features(feats, other) > 1e-3
    assert math.isfinite(fvd.fvd_from_features(feats, other))


def test_convert_command_writes_a_loadable_folder(tmp_path):
    torch.save(original_state_dict(), tmp_path / "tiny.pth")
    result = run_cli(
        "models",
        "convert-videomae",
        str(tmp_path / "tiny.pth"),
        "--out",
        str(tmp_path / "out"),
        check=False,
    )
    # a tiny checkpoint is not ViT-g: the command refuses it and says why
    assert result.returncode == 2 and "not a VideoMAE-v2 ViT-g checkpoint" in result.stderr
