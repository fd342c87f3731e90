"""The small-scale stack (configs/small.yaml): the invertible codec behind the VAE
interface, the small transformer at the codec's 4x spatial factor, training and sampling
through the same code as the CogVideoX stack."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stance import config
from stance.generate.pipeline import StanceImageToVideoPipeline
from stance.train import components, objective, tiny, weights
from stance.train.codec import PixelFoldCodec, fit_projection


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
    model = weights.stance_transformer(str(small_dir), {"motion_tokens": 8}, False)
    assert model.config.vae_spatial == 4 and model.config.in_channels == 384
    pipe = StanceImageToVideoPipeline(transformer=model, **frozen)
    assert pipe.vae_scale_factor_spatial == 4 and pipe.vae_scale_factor_temporal == 4


@pytest.fixture(scope="module")
def fine_dir(tmp_path_factory):
    return tiny.make_tiny(tmp_path_factory.mktemp("fine") / "smallfine", size="smallfine")


@pytest.mark.parametrize("stack", ["small_dir", "fine_dir"])
def test_small_stacks_train_and_sample_at_48px(stack, request):
    folder = request.getfixturevalue(stack)
    frozen = components.load_frozen(str(folder), False)
    model = weights.stance_transformer(str(folder), {"motion_tokens": 8}, False)
    g = torch.Generator().manual_seed(0)
    cues = torch.zeros(1, 4, 48, 48)
    cues[:, :2, 8:20, 8:20] = 1.5
    batch = {
        "video_latents": torch.randn(1, 3, 192, 12, 12, generator=g),
        "image_latents": torch.randn(1, 1, 192, 12, 12, generator=g),
        "prompt_embeds": torch.randn(1, 32, 32, generator=g),
        "cues": cues,
    }
    settings = config.defaults().train
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


def test_the_fine_stack_tokenizes_a_small_object_on_4px_cells(fine_dir, small_dir):
    import yaml

    cfg = config.validate(yaml.safe_load(Path("configs/small_fine.yaml").read_text()))
    assert config.BUILT_MODELS["video"][cfg["models"]["video"]] == "smallfine"
    assert config.BUILT_VIDEO_CONFIGS[cfg["models"]["video"]] == "configs/small_fine.yaml"
    for folder, tokens, token_px in ((small_dir, 36, 8), (fine_dir, 144, 4)):
        model = weights.stance_transformer(str(folder), {"motion_tokens": 8}, False)
        assert model.proj_out.out_features == 192 * 2 * (token_px // 4) ** 2
        # a 4 x 4 px object, as the small test objects are, on the 4 px grid and off it
        for start, (small_tokens, fine_tokens) in ((20, (1, 1)), (18, (1, 4))):
            cues = torch.zeros(1, 4, 48, 48)
            cues[:, 0, start : start + 4, start : start + 4] = 2.0
            patches = model.cue_patches(cues)
            assert patches.shape[1] == tokens  # one token per token_px x token_px cell
            active = patches.abs().amax(-1) > 0
            assert active.sum() == (small_tokens if token_px == 8 else fine_tokens)
            # share of an active token's flow values (channel-major, 2 px pooled) that
            # are the object's: on the fine grid it fills its token when aligned
            flow_x = patches[active][:, : (token_px // 2) ** 2]
            filled = (flow_x == 2.0).float().mean().item()
            aligned_fine = token_px == 4 and start == 20
            assert filled == (1.0 if aligned_fine else 0.25)


def test_the_small_config_is_valid_and_uses_the_built_small_stack():
    import yaml

    cfg = config.validate(yaml.safe_load(Path("configs/small.yaml").read_text()))
    assert cfg["models"]["video"] == config.built_video_model("small")
    assert config.BUILT_MODELS["video"][cfg["models"]["video"]] == "small"
    assert cfg["render"]["resolution"] % (4 * 2) == 0  # codec cell x patch
    assert {"backbone", "rgb_only"} <= set(cfg["train"]["variants"])


def test_the_wide_stack_can_express_every_latent_value_of_a_token():
    import yaml

    cfg = config.validate(yaml.safe_load(Path("configs/small_wide.yaml").read_text()))
    assert config.BUILT_MODELS["video"][cfg["models"]["video"]] == "smallwide"
    parts = tiny.components(size="smallwide")
    model, small = parts["transformer"], tiny.components(size="small")["transformer"]
    assert parts["vae"].config == tiny.components(size="small")["vae"].config  # same codec
    # small: 1,536 outputs per token from width 128; smallwide: 192 from width 256
    assert small.proj_out.out_features > small.proj_out.in_features
    assert model.proj_out.out_features == 192 <= model.proj_out.in_features


def test_the_results_page_reports_the_codec_as_exact(small_dir, tmp_path):
    from stance.report import results

    frames = np.random.default_rng(0).integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    assert results.reconstruction_psnr(str(small_dir), [frames]) == [float("inf")]
    tiny_dir = tiny.make_tiny(tmp_path / "tiny")  # a random learned VAE: far from exact
    assert results.reconstruction_psnr(str(tiny_dir), [frames])[0] < 20


def test_every_memory_profile_samples_the_same_video_on_cpu(tmp_path):
    from stance.generate import sampling

    model_dir = tiny.make_tiny(tmp_path / "tiny")
    key = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cues = np.zeros((32, 32, 4), np.float32)
    cues[8:16, 8:16, :2] = 1.0
    videos = {}
    for profile in sampling.MEMORY_PROFILES:
        frozen = components.load_frozen(str(model_dir), False)
        torch.manual_seed(0)  # the new cue modules start from the same random weights
        model = weights.stance_transformer(str(model_dir), {"motion_tokens": 4}, False)
        pipe = StanceImageToVideoPipeline(transformer=model.eval(), **frozen)
        sampling.apply_memory_profile(pipe, profile, cuda=False)
        pipe.set_progress_bar_config(disable=True)
        videos[profile] = pipe.generate(key, cues, "a cube", 9, 2, 1.0, seed=0).video
    assert pipe.vae.use_slicing and pipe.vae.use_tiling  # sequential slices and tiles
    for profile in ("offload", "sequential"):
        np.testing.assert_array_equal(videos[profile], videos["full"])
    with pytest.raises(config.ConfigError, match="memory_profile 'low'"):
        sampling.apply_memory_profile(pipe, "low", cuda=False)


def test_a_full_rank_projection_is_exact_and_fitting_sets_unit_moment():
    g = torch.Generator().manual_seed(1)
    videos = [torch.rand(1, 3, 9, 16, 16, generator=g) * 2 - 1 for _ in range(12)]
    codec = PixelFoldCodec(projection_channels=192)
    fitted = fit_projection(codec, iter(videos))
    assert fitted["vectors"] == 12 * 3 * 4 * 4 and fitted["variance_kept"] == pytest.approx(1.0)
    basis = codec.basis.double()
    torch.testing.assert_close(
        basis @ basis.T, torch.eye(192, dtype=torch.float64), atol=1e-5, rtol=0
    )
    latents = torch.cat([codec.encode(v).latent_dist.mode() for v in videos])
    assert latents.shape[1] == codec.config.latent_channels == 192
    assert codec.config.scaling_factor == 1.0  # whitened: every channel has unit variance
    channel_std = latents.transpose(0, 1).reshape(192, -1).std(dim=1)
    torch.testing.assert_close(channel_std, torch.ones(192), atol=0.05, rtol=0)
    torch.testing.assert_close(codec.decode(latents[:1]).sample, videos[0], atol=1e-5, rtol=0)


def test_a_projection_keeps_what_lies_in_its_subspace_and_refuses_bad_setups():
    g = torch.Generator().manual_seed(2)
    patterns = torch.randn(3, 3, 4, 4, generator=g)  # every 4x4 block mixes 3 patterns

    def image():
        blocks = torch.einsum("ijk,kcyx->cijyx", torch.randn(2, 2, 3, generator=g), patterns)
        return blocks.permute(0, 1, 3, 2, 4).reshape(3, 8, 8)[None, :, None]  # 1 frame

    videos = [image() for _ in range(5)]
    codec = PixelFoldCodec(projection_channels=16)
    assert fit_projection(codec, iter(videos))["variance_kept"] == pytest.approx(1.0)
    for video in videos:
        torch.testing.assert_close(
            codec.decode(codec.encode(video).latent_dist.mode()).sample, video, atol=1e-4, rtol=0
        )
    with pytest.raises(ValueError, match=r"projection_channels must be in 1\.\.192"):
        PixelFoldCodec(projection_channels=193)
    with pytest.raises(ValueError, match="latent_channels must be 16"):
        PixelFoldCodec(projection_channels=16, latent_channels=192)
    with pytest.raises(ValueError, match="needs a codec with projection_channels"):
        fit_projection(PixelFoldCodec(), iter(videos))
    with pytest.raises(ValueError, match="got no videos"):
        fit_projection(PixelFoldCodec(projection_channels=4), iter([]))


def test_the_pca_stack_is_fitted_on_rendered_clips_and_saved_whole(tmp_path):
    from helpers import clip_arrays

    from stance.render import store

    shard = tmp_path / "render" / "train" / "00000"
    shard.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        rgb = np.full((9, 48, 48, 3), 90, np.uint8)
        seg = np.zeros((9, 48, 48), np.uint16)
        for t in range(9):
            x = 4 + 3 * t + k
            rgb[t, 10:18, x : x + 8] = rng.integers(100, 255, 3)
            seg[t, 10:18, x : x + 8] = 1
        tracks = {n: np.zeros((1, 9, *tail), d) for n, (d, tail) in store.TRACKS.items()}
        attrs = {"clip_id": f"train-{k}", "instances": [{"mass": 1.0, "dynamic": True}]}
        store.write_clip(shard / f"train-{k}.zarr", clip_arrays(rgb, seg), tracks, attrs)
    folder = tiny.make_tiny(tmp_path / "pca", size="smallpca", fit_renders=[shard])
    frozen = components.load_frozen(str(folder), False)
    codec = frozen["vae"]
    assert isinstance(codec, PixelFoldCodec) and codec.config.latent_channels == 16
    assert codec.basis.abs().sum() > 0 and (codec.spread > 0).all() and codec.spread[0] != 1
    clip = store.read_clip(shard / "train-0.zarr", names=("rgb",)).arrays["rgb"]
    video = torch.from_numpy(clip).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
    back = codec.decode(codec.encode(video).latent_dist.mode()).sample
    assert 10 * torch.log10(4 / (back - video).pow(2).mean()) > 28  # PSNR in dB
    model = weights.stance_transformer(str(folder), {"motion_tokens": 8}, False)
    assert model.config.in_channels == 32 and model.config.out_channels == 16
    pipe = StanceImageToVideoPipeline(transformer=model.eval(), **frozen)
    pipe.set_progress_bar_config(disable=True)
    out = pipe.generate(
        clip[0],
        np.zeros((48, 48, 4), np.float32),
        "a cube",
        9,
        2,
        1.0,
        seed=0,
        max_sequence_length=32,
    )
    assert out.video.shape == (9, 48, 48, 3)


def test_the_results_page_shows_clips_across_test_shards(tmp_path):
    from stance.errors import UserError
    from stance.report import results

    renders = []
    for shard, clips in (("00000", 2), ("00001", 3)):
        folder = tmp_path / "render" / "test" / shard
        for k in range(clips):
            (folder / f"test-{shard}-{k}.zarr").mkdir(parents=True)
        (folder / f"test-{shard}-0.twin.zarr").mkdir()  # twins are not clips
        renders.append(folder)
    cued = [tmp_path / "cued" / r.name for r in renders]
    shown, total = results.shown_clips(renders, cued, [], 4)
    assert total == 5
    assert [s.clip_id for s in shown] == [
        "test-00000-0", "test-00000-1", "test-00001-0", "test-00001-1"
    ]  # fmt: skip
    assert shown[2].render == renders[1] and shown[2].cued == cued[1] and shown[2].uncued is None
    with pytest.raises(UserError, match="one of each per shard"):
        results.shown_clips(renders, cued[:1], [], 4)
