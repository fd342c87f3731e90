"""An exactly invertible video codec with the CogVideoX VAE's interface.

The small-scale run (configs/small.yaml) trains every model from scratch on a 2-core CPU,
where no video autoencoder can be trained to a useful reconstruction quality in time.
This codec stands in for `AutoencoderKLCogVideoX` without learning anything: it folds
each `spatial x spatial` pixel block and each group of `temporal` frames into channels
(space-to-depth), so decode(encode(video)) == video exactly. It keeps the VAE's causal
frame layout (1 + 4k frames -> 1 + k latent frames; the first latent frame holds frame 0
alone, repeated over the group), its config keys (`scaling_factor`,
`temporal_compression_ratio`, `block_out_channels` from which pipelines derive the spatial
factor, `invert_scale_latents`) and its `encode(x).latent_dist` / `decode(z).sample`
outputs, so the encode stage, training and the generation pipeline use it unchanged.

With `projection_channels: k` the folded vectors are projected onto k principal
directions fitted on training clips and whitened (`fit_projection`, a PCA): lossy, but a transformer
token of 2x2x2 latent positions then carries 8k values instead of 8 x 192, so a narrow
model can predict all of it (see docs/small_scale.md, "Why the samples stay noisy").
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin


class PixelFoldCodec(ModelMixin, ConfigMixin):
    """Space-to-depth video codec: (B, C, 1 + t*k, H, W) <-> (B, C*s*s*t, 1 + k, H/s, W/s)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        spatial_compression_ratio: int = 4,
        temporal_compression_ratio: int = 4,
        scaling_factor: float = 1.0,
        invert_scale_latents: bool = False,
        block_out_channels: tuple[int, ...] | None = None,
        latent_channels: int | None = None,
        projection_channels: int | None = None,
    ):
        super().__init__()
        s, t = spatial_compression_ratio, temporal_compression_ratio
        if s < 1 or s & (s - 1):
            raise ValueError(f"spatial_compression_ratio {s} must be a power of two")
        expected_blocks = int(math.log2(s)) + 1
        folded = in_channels * s * s * t
        if projection_channels is not None and not 0 < projection_channels <= folded:
            raise ValueError(f"projection_channels must be in 1..{folded} (C * s * s * t)")
        expected_channels = projection_channels or folded
        # Pipelines read the spatial factor as 2 ** (len(block_out_channels) - 1).
        if block_out_channels is not None and len(block_out_channels) != expected_blocks:
            raise ValueError(f"block_out_channels must have {expected_blocks} entries for s={s}")
        if latent_channels is not None and latent_channels != expected_channels:
            raise ValueError(
                f"latent_channels must be {expected_channels} (projection_channels, else "
                "C * s * s * t)"
            )
        self.register_to_config(
            block_out_channels=tuple(block_out_channels or (in_channels,) * expected_blocks),
            latent_channels=expected_channels,
        )
        # One saved buffer: .dtype and .device work, and save/from_pretrained write and
        # read a weights file as for any model.
        self.register_buffer("anchor", torch.zeros(1))
        if projection_channels:
            self.register_buffer("mean", torch.zeros(folded))
            self.register_buffer("basis", torch.zeros(projection_channels, folded))
            self.register_buffer("spread", torch.ones(projection_channels))

    def _fold(self, video: torch.Tensor) -> torch.Tensor:
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        b, c, frames, h, w = video.shape
        if (frames - 1) % t or h % s or w % s:
            raise ValueError(
                f"video of {frames} frames, {h}x{w} px: the codec needs 1 + {t}k frames and"
                f" sides divisible by {s}"
            )
        groups = torch.cat([video[:, :, :1].expand(b, c, t, h, w), video[:, :, 1:]], dim=2)
        x = groups.reshape(b, c, 1 + (frames - 1) // t, t, h // s, s, w // s, s)
        # -> (B, [t, c, s, s], latent frames, h/s, w/s)
        return x.permute(0, 3, 1, 5, 7, 2, 4, 6).reshape(b, t * c * s * s, -1, h // s, w // s)

    def _unfold(self, latents: torch.Tensor) -> torch.Tensor:
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        c = self.config.in_channels
        b, _, k, hs, ws = latents.shape
        x = latents.reshape(b, t, c, s, s, k, hs, ws).permute(0, 2, 5, 1, 6, 3, 7, 4)
        x = x.reshape(b, c, k * t, hs * s, ws * s)
        # The first group holds frame 0 t times; a sampled latent may not repeat it exactly.
        return torch.cat([x[:, :, :t].mean(dim=2, keepdim=True), x[:, :, t:]], dim=2)

    def _project(self, folded: torch.Tensor) -> torch.Tensor:
        if not self.config.projection_channels:
            return folded
        centred = folded - self.mean[None, :, None, None, None]
        latents = torch.einsum("kf,bfthw->bkthw", self.basis, centred)
        return latents / self.spread[None, :, None, None, None]

    def _unproject(self, latents: torch.Tensor) -> torch.Tensor:
        if not self.config.projection_channels:
            return latents
        latents = latents * self.spread[None, :, None, None, None]
        folded = torch.einsum("kf,bkthw->bfthw", self.basis, latents)
        return folded + self.mean[None, :, None, None, None]

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        mean = self._project(self._fold(x))
        dist = DiagonalGaussianDistribution(torch.cat([mean, torch.zeros_like(mean)], 1), True)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        video = self._unfold(self._unproject(z))
        return DecoderOutput(sample=video) if return_dict else (video,)


@torch.no_grad()
def fit_projection(codec: PixelFoldCodec, videos) -> dict[str, float]:
    """Fit a projecting codec on `videos` ((1, C, F, H, W) tensors in [-1, 1]): the mean and
    top principal directions of their folded vectors, each direction divided by its
    standard deviation so that every latent channel has unit variance (a diffusion model
    then sees every channel at the same signal-to-noise ratio; an unwhitened fit left the
    fine-detail channels at std 0.1 next to 0.75). Returns the number of vectors, the share
    of variance kept and the channels' standard deviations."""
    k = codec.config.projection_channels
    if not k:
        raise ValueError("fit_projection needs a codec with projection_channels")
    total, outer, count = None, None, 0
    for video in videos:
        folded = codec._fold(video.double()).movedim(1, -1).reshape(-1, codec.mean.numel())
        total = folded.sum(0) if total is None else total + folded.sum(0)
        outer = folded.T @ folded if outer is None else outer + folded.T @ folded
        count += len(folded)
    if not count:
        raise ValueError("fit_projection got no videos")
    mean = total / count
    covariance = outer / count - torch.outer(mean, mean)
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    top = values.flip(0)[:k].clamp_min(1e-12)
    codec.mean.copy_(mean.to(codec.mean.dtype))
    codec.basis.copy_(vectors.flip(1)[:, :k].T.to(codec.basis.dtype))
    codec.spread.copy_(top.sqrt().to(codec.spread.dtype))
    codec.register_to_config(scaling_factor=1.0)
    kept = float(top.sum() / values.clamp_min(0).sum())
    return {
        "vectors": count,
        "variance_kept": kept,
        "std": [round(float(v), 4) for v in top.sqrt()],
    }
