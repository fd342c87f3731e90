"""The small-scale stack (configs/small.yaml): the invertible codec behind the VAE
interface, the small transformer at the codec's 4x spatial factor, training and sampling
through the same code as the CogVideoX stack."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stance import config
from stance.generate.pipeline import StanceImageToVideoPipeline
from stance.train import components, objective, tiny
from stance.train.codec import PixelFoldCodec


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    return tiny.make_tiny(tmp_path_factory.mktemp("small") / "small", size="small")


def test_codec_round_trip_is_exact():
    codec = PixelFoldCodec(scaling_factor=2.0)
    video = torch.rand(2, 3, 9, 16, 24) * 2 - 1
    latents = codec.encode(video).latent_dist.sample(torch.Generator().manual_seed(0))
    assert latents.shape == (2, 192, 3, 4, 6)
    assert torch.equal(codec.decode(latents).sample, video)
    # the keyframe alone encodes to the video's first latent frame, as the VAE's causal layout
    key = codec.encode(video[:, :, :1]).latent_dist.mode()
    assert torch.equal(key, latents[:, :, :1])


def test_codec_refuses_shapes_it_cannot_fold():
    codec = PixelFoldCodec()
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        codec.encode(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        codec.encode(torch.zeros(1, 3, 9, 18, 16))
    with pytest.raises(ValueError, match="power of two"):
        PixelFoldCodec(spatial_compression_ratio=3)


def test_small_stack_loads_its_codec_and_sets_the_spatial_factor(small_dir):
    assert components.vae_class(str(small_dir), False) is PixelFoldCodec
    frozen = components.load_frozen(str(small_dir), False)
    assert isinstance(frozen["vae"], PixelFoldCodec)
    model = components.stance_transformer(str(small_dir), {"motion_tokens": 8}, False)
    assert model.config.vae_spatial == 4 and model.config.in_channels == 384
    pipe = StanceImageToVideoPipeline(transformer=model, **frozen)
    assert pipe.vae_scale_factor_spatial == 4 and pipe.vae_scale_factor_temporal == 4


def test_small_stack_trains_and_samples_at_48px(small_dir):
    frozen = components.load_frozen(str(small_dir), False)
    model = components.stance_transformer(str(small_dir), {"motion_tokens": 8}, False)
    g = torch.Generator().manual_seed(0)
    cues = torch.zeros(1, 4, 48, 48)
    cues[:, :2, 8:20, 8:20] = 1.5
    batch = {
        "video_latents": torch.randn(1, 3, 192, 12, 12, generator=g),
        "image_latents": torch.randn(1, 1, 192, 12, 12, generator=g),
        "prompt_embeds": torch.randn(1, 32, 32, generator=g),
        "cues": cues,
    }
    settings = config.validate({})["train"]
    terms = objective.training_step(
        model, frozen["scheduler"], batch, frozen["vae"].config, settings
    )
    terms["rgb"].backward()
    assert torch.isfinite(terms["rgb"])
    assert model.cue_tokenizer[0].weight.grad.abs().sum() > 0
    pipe = StanceImageToVideoPipeline(transformer=model.eval(), **frozen)
    pipe.set_progress_bar_config(disable=True)
    key = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    cue_map = cues[0].permute(1, 2, 0).numpy()
    out = pipe.generate(key, cue_map, "two objects", 9, 2, 1.0, seed=0, max_sequence_length=32)
    assert out.video.shape == (9, 48, 48, 3) and out.video.dtype == np.uint8


def test_the_small_config_is_valid_and_uses_the_built_small_stack():
    import yaml

    cfg = config.validate(yaml.safe_load(Path("configs/small.yaml").read_text()))
    assert cfg["models"]["video"] == config.SMALL_VIDEO_MODEL
    assert config.BUILT_MODELS["video"][cfg["models"]["video"]] == "small"
    assert cfg["render"]["resolution"] % (4 * 2) == 0  # codec cell x patch
    assert {"backbone", "rgb_only"} <= set(cfg["train"]["variants"])


def test_the_results_page_reports_the_codec_as_exact(small_dir, tmp_path):
    from stance.report import results

    frames = np.random.default_rng(0).integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    assert results.reconstruction_psnr(str(small_dir), [frames]) == [float("inf")]
    tiny_dir = tiny.make_tiny(tmp_path / "tiny")  # a random learned VAE: far from exact
    assert results.reconstruction_psnr(str(tiny_dir), [frames])[0] < 20


def test_every_memory_profile_samples_the_same_video_on_cpu(tmp_path):
    from stance.generate import shard

    model_dir = tiny.make_tiny(tmp_path / "tiny")
    key = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cues = np.zeros((32, 32, 4), np.float32)
    cues[8:16, 8:16, :2] = 1.0
    videos = {}
    for profile in shard.MEMORY_PROFILES:
        frozen = components.load_frozen(str(model_dir), False)
        torch.manual_seed(0)  # the new cue modules start from the same random weights
        model = components.stance_transformer(str(model_dir), {"motion_tokens": 4}, False)
        pipe = StanceImageToVideoPipeline(transformer=model.eval(), **frozen)
        shard.apply_memory_profile(pipe, profile, cuda=False)
        pipe.set_progress_bar_config(disable=True)
        videos[profile] = pipe.generate(key, cues, "a cube", 9, 2, 1.0, seed=0).video
    assert pipe.vae.use_slicing and pipe.vae.use_tiling  # sequential slices and tiles
    for profile in ("offload", "sequential"):
        np.testing.assert_array_equal(videos[profile], videos["full"])
    with pytest.raises(config.ConfigError, match="memory_profile 'low'"):
        shard.apply_memory_profile(pipe, "low", cuda=False)
