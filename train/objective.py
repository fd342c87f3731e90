"""The CogVideoX-1.5 image-to-video training objective, shared by RGB and aux streams.

As in the official I2V trainers: latents = VAE(video) * scaling_factor; the image latent
is the encoded noise-augmented first frame at latent frame 0, zeros after it
(`conditioning_latents`, shared with the sampling pipeline), concatenated channel-wise;
video latent frames are made even (patch_size_t = 2) by prepending a copy of the first
(the pipeline drops that frame after sampling); v-prediction, loss =
mean(1 / (1 - alphabar_t) * (x0_hat - x0)^2). The auxiliary stream is conditioned on its
own keyframe (depth or segmentation of frame 0, `aux_keyframe: aux`, as the authors) or on
the RGB keyframe (`rgb`). With `cue_dropout` p, each sample's cues are dropped (zeroed) with
probability p, which trains the cue-free branch that cue guidance subtracts at sampling.
With `motion_weighting` s > 0 the loss counts the latent positions that change over the
clip more (`motion_weights`).
The image latent is scaled the way the sampling pipeline scales it
(`image_latent_scaling: pipeline`, i.e. 1 / scaling_factor when the VAE sets
invert_scale_latents) or the way the official trainers do (`official`: * scaling_factor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_3d_rotary_pos_embed

from stance.train import draws
from stance.train.model import VAE_SPATIAL


def vae_spatial(config) -> int:
    """Pixels per latent cell: the STANCE config's `vae_spatial`, 8 for a base config."""
    return getattr(config, "vae_spatial", VAE_SPATIAL)


def rotary_embedding(config, height: int, width: int, latent_frames: int, device):
    """The RoPE table the 1.5 pipeline builds for a (height, width) video in pixels."""
    p, p_t = config.patch_size, config.patch_size_t
    cell = vae_spatial(config) * p
    return get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=None,
        grid_size=(height // cell, width // cell),
        temporal_size=(latent_frames + p_t - 1) // p_t,
        grid_type="slice",
        max_size=(config.sample_height // p, config.sample_width // p),
        device=device,
    )


def image_latent_scale(vae_config, mode: str) -> float:
    factor = vae_config.scaling_factor
    if mode == "official" or not getattr(vae_config, "invert_scale_latents", False):
        return factor
    return 1.0 / factor


def padding_frames(latent_frames: int, patch_size_t: int | None) -> int:
    """Latent frames to add so that their count divides patch_size_t (CogVideoX-1.5: 2)."""
    return (-latent_frames) % patch_size_t if patch_size_t else 0


def make_even(latents: torch.Tensor, patch_size_t: int | None) -> torch.Tensor:
    """(B, F, C, h, w) -> prepend first-frame copies until F divides patch_size_t."""
    extra = padding_frames(latents.shape[1], patch_size_t)
    if extra:
        latents = torch.cat([latents[:, :1].expand(-1, extra, -1, -1, -1), latents], dim=1)
    return latents


def conditioning_latents(
    keyframe: torch.Tensor, latent_frames: int, patch_size_t: int | None
) -> torch.Tensor:
    """(B, 1, C, h, w) scaled keyframe latent -> (B, F', C, h, w): the keyframe at latent
    frame 0 and zeros after it, F' = latent_frames rounded up to a multiple of patch_size_t.

    The one builder of the image condition: training and sampling both call it (diffusers'
    I2V pipeline, THUDM's trainer and the authors put the keyframe at frame 0 only)."""
    frames = latent_frames + padding_frames(latent_frames, patch_size_t)
    padding = keyframe.new_zeros(keyframe.shape[0], frames - 1, *keyframe.shape[2:])
    return torch.cat([keyframe, padding], dim=1)


def drop_cues(cues: torch.Tensor | None, probability: float, generator) -> torch.Tensor | None:
    """Zero each sample's cue map with `probability` (classifier-free guidance training)."""
    if cues is None or probability <= 0:
        return cues
    keep = draws.rand((cues.shape[0],), generator, cues.device) >= probability
    return cues * keep[:, None, None, None].to(cues.dtype)


def draw_timesteps(sampling, steps: int, count: int, generator, device) -> torch.Tensor:
    """`count` training timesteps in [0, steps): uniform, or logit-normal in t / steps
    (train.timestep_sampling), which a positive location shifts towards high noise."""
    if sampling.distribution == "uniform":
        return draws.randint(steps, (count,), generator, device)
    normal = draws.randn((count,), generator, device, torch.float32)
    fraction = torch.sigmoid(sampling.location + sampling.scale * normal)
    return (fraction * steps).long().clamp(0, steps - 1)


def motion_weights(latents: torch.Tensor, strength: float) -> torch.Tensor | None:
    """Per-position loss weights (B, F, 1, h, w) that favour where the clip moves, or None
    for the plain loss (strength 0; train.motion_weighting).

    d = mean over channels of |x0 - x0 at latent frame 0|, the weight 1 + strength d /
    mean(d), renormalised to mean 1 per sample: a still clip keeps weight 1 everywhere."""
    if strength <= 0:
        return None
    change = (latents.float() - latents[:, :1].float()).abs().mean(dim=2, keepdim=True)
    scale = change.flatten(1).mean(dim=1).clamp_min(1e-8)
    raw = 1.0 + strength * change / scale[:, None, None, None, None]
    return raw / raw.flatten(1).mean(dim=1)[:, None, None, None, None]


def velocity_loss(scheduler, prediction, noisy, target, timesteps, weights=None) -> torch.Tensor:
    """v-prediction loss in x0 space, weighted by 1 / (1 - alphabar_t), in float32 (the
    weights reach ~1,176 at t = 0: a bf16 prediction is cast up before the arithmetic).
    `weights` (B, F, 1, h, w), from `motion_weights`, weigh the latent positions."""
    prediction = prediction.float()
    x0_hat = scheduler.get_velocity(prediction, noisy.float(), timesteps)
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    step_weights = (1.0 / (1.0 - alphas)).float()
    error = (x0_hat - target.float()) ** 2
    if weights is not None:
        error = error * weights
    per_sample = error.flatten(1).mean(dim=1)
    return (step_weights * per_sample).mean()


def parameter_dtype(transformer) -> torch.dtype:
    """The dtype the model computes in: float32 under autocast (which casts per op), bf16
    when DeepSpeed or a bf16 load cast the weights themselves (nothing casts the inputs)."""
    return next(transformer.parameters()).dtype


def training_step(
    transformer,
    scheduler,
    batch,
    vae_config,
    settings,
    generator=None,
    aux: str = "none",
    model_config=None,
):
    """Loss terms for one batch: {'rgb': ..., 'aux': ...} (aux only with an aux stream).

    model_config: the transformer's config when `transformer` is a DDP/DeepSpeed wrapper
    (wrappers do not expose the wrapped model's `.config`).

    batch: video_latents (B, F, C, h, w) already scaled; image_latents (B, 1, C, h, w) raw
    (the noise-augmented RGB keyframe); prompt_embeds (B, S, D); cues (B, Cc, H, W);
    with an aux stream also aux_latents (B, F, C, h, w) scaled and aux_image_latents
    (B, 1, C, h, w) raw (the noise-augmented auxiliary keyframe).
    """
    device = batch["video_latents"].device
    model_config = model_config or transformer.config
    p_t = model_config.patch_size_t
    video_frames = batch["video_latents"].shape[1]
    latents = make_even(batch["video_latents"], p_t)
    frames = latents.shape[1]
    scale = image_latent_scale(vae_config, settings.image_latent_scaling)
    image = conditioning_latents(batch["image_latents"] * scale, video_frames, p_t)
    steps = scheduler.config.num_train_timesteps
    t = draw_timesteps(settings.timestep_sampling, steps, latents.shape[0], generator, device)
    noise = draws.randn(latents.shape, generator, device, latents.dtype)
    noisy = scheduler.add_noise(latents, noise, t)
    height = latents.shape[-2] * vae_spatial(model_config)
    width = latents.shape[-1] * vae_spatial(model_config)
    rope = rotary_embedding(model_config, height, width, frames, device)
    aux_stream = (
        None if aux == "none" else noised_aux(batch, scheduler, t, scale, settings, p_t, generator)
    )
    cues = drop_cues(batch.get("cues"), settings.cue_dropout, generator)
    ofs = torch.full((latents.shape[0],), 2.0, device=device)
    dtype = parameter_dtype(transformer)  # noise and loss stay float32, the model's input not

    def cast(tensor):
        return None if tensor is None else tensor.to(dtype)

    out = transformer(
        hidden_states=cast(torch.cat([noisy, image], dim=2)),
        encoder_hidden_states=cast(batch["prompt_embeds"]),
        timestep=t,
        ofs=ofs,
        image_rotary_emb=rope,
        cues=cast(cues),
        aux_hidden_states=cast(None if aux_stream is None else aux_stream.input),
        generator=generator,
    ).sample
    weights = motion_weights(latents, settings.motion_weighting)  # both streams share them
    if aux_stream is None:
        return {"rgb": velocity_loss(scheduler, out, noisy, latents, t, weights)}
    rgb_out, aux_out = out
    return {
        "rgb": velocity_loss(scheduler, rgb_out, noisy, latents, t, weights),
        "aux": velocity_loss(scheduler, aux_out, aux_stream.noisy, aux_stream.clean, t, weights),
    }


@dataclass
class NoisedAux:
    clean: torch.Tensor  # the auxiliary latents, made even in frames
    noisy: torch.Tensor  # noised at the RGB stream's timesteps
    input: torch.Tensor  # noisy + its conditioning keyframe, channel-concatenated


def noised_aux(batch, scheduler, t, scale, settings, p_t, generator) -> NoisedAux:
    """The auxiliary stream noised at the same timesteps as RGB (its own noise draw) and
    conditioned on its keyframe: the auxiliary one, or RGB's (train.aux_keyframe)."""
    video_frames = batch["video_latents"].shape[1]
    clean = make_even(batch["aux_latents"], p_t)
    noise = draws.randn(clean.shape, generator, clean.device, clean.dtype)
    noisy = scheduler.add_noise(clean, noise, t)
    key = batch["aux_image_latents" if settings.aux_keyframe == "aux" else "image_latents"]
    image = conditioning_latents(key * scale, video_frames, p_t)
    return NoisedAux(clean, noisy, torch.cat([noisy, image], dim=2))
