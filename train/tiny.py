"""Tiny and small CogVideoX-1.5 image-to-video stacks with random weights, built offline.

tiny (the embedded config's): every component is the real diffusers/transformers class
built from a real (shrunk) config: a Unigram T5 tokenizer over a small caption vocabulary,
a 2-layer T5 encoder, a 4-block CogVideoX VAE with the 1.5 scaling values, a 2-layer
1.5-style transformer (head_dim 16, patch 2 x 2 x 2, RoPE, ofs embedding) and the
v-prediction DPM scheduler. It is saved with `save_pretrained` as a pipeline folder, so
it loads through the same `from_pretrained` path as THUDM/CogVideoX1.5-5B-I2V.

small (configs/small.yaml, trained from scratch on a CPU): the same tokenizer, text encoder
and scheduler, a 4-layer width-128 1.5-style transformer, and in place of the VAE the
exactly invertible `PixelFoldCodec` (4x4 pixels x 4 frames folded into 192 channels).
smallwide (configs/small_wide.yaml): "small" with a 5-layer width-256 transformer that
patches single latent positions; smallfine (configs/small_fine.yaml): "small" with tokens
of one latent cell (4 x 4 px) instead of 2 x 2; smallpca: "small" with a fitted 16-channel
codec.
"""

from __future__ import annotations

import logging
from pathlib import Path

from stance import config

log = logging.getLogger(__name__)

# Words of the captions `captions.describe` writes (anything else maps to <unk>).
VOCABULARY = [
    "a",
    "an",
    "and",
    "on",
    "the",
    "floor",
    "objects",
    "object",
    "slide",
    "collide",
    "into",
    "resting",
    "moving",
    "metal",
    "rubber",
    "cube",
    "sphere",
    "cylinder",
    "cone",
    "capsule",
    "torus",
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
    "grey",
    "white",
    "black",
    "small",
    "large",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "many",
    "scene",
    "with",
    "of",
    ".",
    ",",
]

TRANSFORMER = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=8,
    out_channels=4,
    time_embed_dim=16,
    ofs_embed_dim=16,
    text_embed_dim=32,
    num_layers=2,
    sample_width=300,
    sample_height=300,
    sample_frames=81,
    patch_size=2,
    patch_size_t=2,
    patch_bias=False,
    use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=False,
    max_text_seq_length=32,
)
SMALL_TRANSFORMER = dict(
    TRANSFORMER,
    num_attention_heads=4,
    attention_head_dim=32,
    in_channels=384,
    out_channels=192,
    time_embed_dim=64,
    ofs_embed_dim=64,
    num_layers=4,
)
# Unit second moment of the latents, as the VAE's scaling factor is chosen: the small run's
# grey-floor frames in [-1, 1] have E[x^2] = 0.043 (mean of its 64 test clips, 0.025-0.079;
# the codec folds pixels, so the latents have the same moment), and 4.5^2 x 0.043 = 0.87.
# Scale 2.0 (E[x^2] 0.17, detail std ~0.2) left the fine detail below the noise for
# nearly every training timestep, and the first small run sampled noise.
SMALL_CODEC = dict(spatial_compression_ratio=4, temporal_compression_ratio=4, scaling_factor=4.5)
# "smallpca": the same fold projected onto 16 principal directions of the train clips, so a
# token's 2x2x2 x 16 = 128 outputs fit the width-128 model (the "small" stack's 1,536 do
# not: its samples keep the noise the model cannot express). Fitted on the small run's
# train clips, it reconstructs test clips at 33.1 dB PSNR (mean of the results page's 4).
PCA_CHANNELS = 16
PCA_CODEC = dict(spatial_compression_ratio=4, temporal_compression_ratio=4)
SMALL_PCA_TRANSFORMER = dict(
    SMALL_TRANSFORMER, in_channels=2 * PCA_CHANNELS, out_channels=PCA_CHANNELS
)
# "smallwide" (configs/small_wide.yaml): the exact codec of "small", one latent
# position per token (patch 1 x 1 x 1), so a token carries 192 values, and width 256 >= 192:
# unlike "small" (1,536 outputs from width 128), the output layer can express every
# latent value, the noise included. 432 tokens per 9-frame 48 px clip: 4x "small"'s.
SMALL_WIDE_TRANSFORMER = dict(
    SMALL_TRANSFORMER,
    attention_head_dim=64,
    time_embed_dim=128,
    ofs_embed_dim=128,
    num_layers=5,
    patch_size=1,
    patch_size_t=1,
)
# "smallfine" (configs/small_fine.yaml): "small" on a spatial token grid twice as fine
# (patch 1 x 1 in space, still 2 latent frames in time): a token covers 4 x 4 px instead of
# 8 x 8, the size of a small test object (3-4 px) rather than 4x it, and a token's 384
# outputs are 4x fewer for the same width 128. 4x "small"'s tokens, ~2x its step time.
SMALL_FINE_TRANSFORMER = dict(SMALL_TRANSFORMER, patch_size=1)
# the stacks over the exact codec, by size
EXACT_CODEC_TRANSFORMERS = {
    "small": SMALL_TRANSFORMER,
    "smallwide": SMALL_WIDE_TRANSFORMER,
    "smallfine": SMALL_FINE_TRANSFORMER,
}
SIZES = config.BUILT_VIDEO_SIZES
SCHEDULER = dict(
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    snr_shift_scale=1.0,
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
)


def tokenizer():
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(f"\u2581{word}", -1.0 - k / 100) for k, word in enumerate(VOCABULARY)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def components(seed: int = 0, size: str = "tiny", fit_renders=()) -> dict:
    """The stack's parts; `fit_renders` (render shard folders) fit the smallpca codec."""
    import torch
    from diffusers import CogVideoXDPMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            vocab_size=len(tok),
        )
    )
    if size not in SIZES:
        raise ValueError(f"size {size!r}: expected one of {SIZES}")
    if size in EXACT_CODEC_TRANSFORMERS:
        from stance.train.codec import PixelFoldCodec

        vae = PixelFoldCodec(**SMALL_CODEC)
        transformer = EXACT_CODEC_TRANSFORMERS[size]
    elif size == "smallpca":
        vae, transformer = _fitted_codec(fit_renders), SMALL_PCA_TRANSFORMER
    else:
        vae, transformer = _tiny_vae(), TRANSFORMER
    return {
        "tokenizer": tok,
        "text_encoder": text_encoder.eval(),
        "vae": vae.eval(),
        "transformer": CogVideoXTransformer3DModel(**transformer),
        "scheduler": CogVideoXDPMScheduler(**SCHEDULER),
    }


def _fitted_codec(render_dirs):
    """The projecting codec fitted on every stream the encode stage encodes (RGB, depth
    and segmentation videos) of the clips in `render_dirs`."""
    from stance.render import store as clip_store
    from stance.train import encode
    from stance.train.codec import PixelFoldCodec, fit_projection

    paths = [p for d in render_dirs for p in clip_store.clip_paths(d)]
    if not paths:
        raise ValueError("the smallpca codec is fitted on rendered clips: pass render shards")

    def videos():
        for path in paths:
            arrays = clip_store.read_clip(path, names=("rgb", "segmentation", "depth")).arrays
            yield from map(encode.to_unit, encode.stream_videos(arrays).values())

    codec = PixelFoldCodec(**PCA_CODEC, projection_channels=PCA_CHANNELS)
    fitted = fit_projection(codec, videos())
    log.info("smallpca codec fitted on %d clips: %s", len(paths), fitted)
    return codec


def _tiny_vae():
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        scaling_factor=0.7,
        invert_scale_latents=True,
    )


def make_tiny(out_dir: str | Path, seed: int = 0, size: str = "tiny", fit_renders=()) -> Path:
    """Save the stack as a CogVideoXImageToVideoPipeline folder."""
    from diffusers import CogVideoXImageToVideoPipeline

    out_dir = Path(out_dir)
    parts = components(seed, size, fit_renders)
    CogVideoXImageToVideoPipeline(**parts).save_pretrained(out_dir)
    log.info("%s CogVideoX-1.5 I2V stack -> %s", size, out_dir)
    return out_dir
