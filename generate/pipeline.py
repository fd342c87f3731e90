"""Generation: CogVideoX-1.5 image-to-video sampling with Instance Cues (+ an aux stream).

`StanceImageToVideoPipeline` extends diffusers' `CogVideoXImageToVideoPipeline` and reuses
its prompt encoding, latent preparation (1.5 frame padding), RoPE tables, scheduler and
decoding; its sampling loop passes the cue map to the STANCE transformer and, for RGB+aux
models, denoises the auxiliary latents jointly with the RGB latents (one DPM state each).
Classifier-free guidance follows the authors: the unconditional branch drops the text and
the cues together (`cue_guidance: null`); with a `cue_guidance` scale the text and the
cues are guided separately (`guidance_branches`, `guide`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import CogVideoXImageToVideoPipeline
from PIL import Image

from stance.train import objective


@dataclass
class Generated:
    video: np.ndarray  # (T,H,W,3) uint8
    aux: np.ndarray | None  # (T,H,W,3) uint8 decoded auxiliary stream, or None


def guidance_branches(
    text_scale: float, cue_scale: float | None, cued: bool
) -> list[tuple[bool, bool]]:
    """The (text, cues) conditions of the batched forward branches; the last one is fully
    conditioned. Joint guidance (cue_scale None, the authors'): one unconditional branch
    with neither text nor cues. Separate: text-only and text+cue branches as well."""
    text_cfg = text_scale > 1.0
    if cue_scale is None or not cued:
        return [(False, False), (True, True)] if text_cfg else [(True, True)]
    return ([(False, False)] if text_cfg else []) + [(True, False), (True, True)]


def guide(preds: list[torch.Tensor], text_scale: float, cue_scale: float | None, cued: bool):
    """Combine branch predictions (in `guidance_branches` order):
    joint: u + s (c - u); separate: u + s_text (t - u) + s_cue (c - t)."""
    if cue_scale is None or not cued:
        if len(preds) == 1:
            return preds[0]
        uncond, cond = preds
        return uncond + text_scale * (cond - uncond)
    *rest, text, full = preds
    base = rest[0] + text_scale * (text - rest[0]) if rest else text
    return base + cue_scale * (full - text)


def dynamic_guidance(scale: float, steps: int, timestep: int) -> float:
    """The text guidance scale at a timestep under diffusers' `use_dynamic_cfg` (what
    THUDM samples CogVideoX-1.5 with): 1 + scale (1 - cos(pi ((steps - t) / steps)^5)) / 2,
    with t the scheduler's timestep value, exactly as diffusers' I2V pipeline computes it."""
    return 1 + scale * (1 - math.cos(math.pi * ((steps - timestep) / steps) ** 5.0)) / 2


class StanceImageToVideoPipeline(CogVideoXImageToVideoPipeline):
    def keyframe_pixels(self, image: np.ndarray, dtype) -> torch.Tensor:
        """(H,W,3) uint8 -> (1, 3, H, W) in [-1, 1] on the execution device."""
        height, width = image.shape[:2]
        pixels = self.video_processor.preprocess(Image.fromarray(image), height=height, width=width)
        return pixels.to(self._execution_device, dtype)

    def encode_keyframe(self, image: np.ndarray, generator, dtype) -> torch.Tensor:
        """(H,W,3) uint8 -> raw VAE latent (1, 1, C, h, w), as `prepare_latents` encodes."""
        from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
            retrieve_latents,
        )

        pixels = self.keyframe_pixels(image, self.vae.dtype).unsqueeze(2)
        latent = retrieve_latents(self.vae.encode(pixels), generator)
        return latent.to(dtype).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def generate(
        self,
        image: np.ndarray,
        cues: np.ndarray | None,
        prompt: str,
        num_frames: int,
        steps: int,
        guidance_scale: float,
        seed: int,
        aux: bool = False,
        max_sequence_length: int = 226,
        aux_keyframe: np.ndarray | None = None,
        cue_guidance: float | None = None,
        image_latent_scaling: str = "pipeline",
        use_dynamic_cfg: bool = False,
    ) -> Generated:
        """Sample a clip from a keyframe (H,W,3 uint8) and a cue map (H,W,C float32).

        aux_keyframe: the auxiliary stream's own keyframe (H,W,3 uint8), or None to
        condition it on the RGB keyframe (`train.aux_keyframe`). image_latent_scaling: the
        training setting, so that the keyframe latent is scaled as in training.
        use_dynamic_cfg: the text guidance follows `dynamic_guidance` over the steps.
        """
        height, width = image.shape[:2]
        device = self._execution_device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        cued = cues is not None
        branches = guidance_branches(guidance_scale, cue_guidance, cued)
        positive, negative = self.encode_prompt(
            prompt,
            "",
            do_classifier_free_guidance=any(not text for text, _ in branches),
            num_videos_per_prompt=1,
            max_sequence_length=max_sequence_length,
            device=device,
        )
        prompt_embeds = torch.cat([positive if text else negative for text, _ in branches])
        self.scheduler.set_timesteps(steps, device=device)
        timesteps = self.scheduler.timesteps

        latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        p_t = self.transformer.config.patch_size_t
        extra = objective.padding_frames(latent_frames, p_t)
        frames = num_frames + extra * self.vae_scale_factor_temporal
        pixels = self.keyframe_pixels(image, prompt_embeds.dtype)
        channels = self.transformer.config.in_channels // 2
        latents, image_latents = self.prepare_latents(
            pixels, 1, channels, frames, height, width, prompt_embeds.dtype, device, generator
        )
        # The condition is rebuilt by the function training uses (keyframe at latent frame
        # 0 only), rescaled only when training scaled it differently from the pipeline.
        key = image_latents[:, :1]
        if image_latent_scaling != "pipeline":
            key = key / objective.image_latent_scale(self.vae.config, "pipeline")
            key = key * objective.image_latent_scale(self.vae.config, image_latent_scaling)
        image_latents = objective.conditioning_latents(key, latents.shape[1], p_t)
        aux_latents = aux_condition = None
        if aux:
            aux_latents = torch.randn(latents.shape, generator=generator).to(latents)
            aux_condition = image_latents
            if aux_keyframe is not None:
                raw = self.encode_keyframe(aux_keyframe, generator, prompt_embeds.dtype)
                scale = objective.image_latent_scale(self.vae.config, image_latent_scaling)
                aux_condition = objective.conditioning_latents(raw * scale, latents.shape[1], p_t)
        rope = self._prepare_rotary_positional_embeddings(height, width, latents.size(1), device)
        cue_map = None
        if cued:
            cue_map = torch.from_numpy(np.ascontiguousarray(cues)).permute(2, 0, 1)[None]
            cue_map = cue_map.to(device, prompt_embeds.dtype)
            cue_map = torch.cat(
                [cue_map if on else torch.zeros_like(cue_map) for _, on in branches]
            )
        n = len(branches)
        old = [None, None]
        for i, t in enumerate(self.progress_bar(timesteps)):

            def model_input(x, cond, t=t):
                x = self.scheduler.scale_model_input(torch.cat([x] * n), t)
                return torch.cat([x, torch.cat([cond] * n)], dim=2)

            out = self.transformer(
                hidden_states=model_input(latents, image_latents),
                encoder_hidden_states=prompt_embeds,
                timestep=t.expand(n),
                ofs=latents.new_full((1,), 2.0) if self.transformer.config.ofs_embed_dim else None,
                image_rotary_emb=rope,
                cues=cue_map,
                aux_hidden_states=model_input(aux_latents, aux_condition) if aux else None,
                return_dict=False,
            )[0]
            preds = list(out) if aux else [out]
            states = [latents, aux_latents]
            text_scale = (
                dynamic_guidance(guidance_scale, steps, int(t))
                if use_dynamic_cfg
                else guidance_scale
            )
            for k, pred in enumerate(preds):
                pred = guide(list(pred.float().chunk(n)), text_scale, cue_guidance, cued)
                states[k], old[k] = self.scheduler.step(
                    pred,
                    old[k],
                    t,
                    timesteps[i - 1] if i > 0 else None,
                    states[k],
                    generator=generator,
                    return_dict=False,
                )
            latents, aux_latents = (
                s.to(prompt_embeds.dtype) if s is not None else None for s in states
            )
        video = self._decode(latents[:, extra:])
        return Generated(video, self._decode(aux_latents[:, extra:]) if aux else None)

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        frames = self.video_processor.postprocess_video(
            self.decode_latents(latents), output_type="np"
        )[0]
        return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
