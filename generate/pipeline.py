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

from stance.generate import output_span
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
    joint: u + s (c - u); separate: u + s_text (t - u) + s_cue (c - t). One prediction is
    the fully conditioned branch's alone (no guidance, or `Guidance.active` ran only it)."""
    if len(preds) == 1:
        return preds[0]
    if cue_scale is None or not cued:
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


@dataclass
class Start:
    """Where sampling starts: noise latents, the keyframe condition, the padding frames
    (dropped after decoding) and, for RGB+aux models, the auxiliary stream's pair."""

    latents: torch.Tensor
    condition: torch.Tensor
    extra: int
    aux_latents: torch.Tensor | None = None
    aux_condition: torch.Tensor | None = None


@dataclass
class Guidance:
    """How the branch predictions combine at a step (`guide`); with `dynamic_steps` set
    the text scale follows `dynamic_guidance` over that many steps. The cue scale applies
    from timestep `cue_from` up (`generate.cue_guidance_above` x the scheduler's training
    timesteps); below it the cues condition unguided (scale 1)."""

    branches: list[tuple[bool, bool]]
    text_scale: float
    cue_scale: float | None
    cued: bool
    dynamic_steps: int | None = None
    cue_from: float = 0.0

    def active(self, timestep: int) -> list[int]:
        """Indices of the branches the step's combination reads. Where the cue scale is 1
        (below `cue_from`, or set to 1) without text guidance, `guide` gives the fully
        conditioned branch alone and the text-only branch's forward would be thrown away:
        it is skipped."""
        last = len(self.branches) - 1
        scale = self.cue_scale if timestep >= self.cue_from else 1.0
        if scale == 1.0 and self.branches == [(True, False), (True, True)]:
            return [last]
        return list(range(last + 1))

    def combine(self, preds: list[torch.Tensor], timestep: int) -> torch.Tensor:
        text_scale = self.text_scale
        if self.dynamic_steps is not None:
            text_scale = dynamic_guidance(self.text_scale, self.dynamic_steps, timestep)
        cue_scale = self.cue_scale
        if cue_scale is not None and timestep < self.cue_from:
            cue_scale = 1.0
        return guide(preds, text_scale, cue_scale, self.cued)


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
        cue_guidance_above: float = 0.0,
        project_output_span: bool = False,
    ) -> Generated:
        """Sample a clip from a keyframe (H,W,3 uint8) and a cue map (H,W,C float32).

        aux_keyframe: the auxiliary stream's own keyframe (H,W,3 uint8), or None to
        condition it on the RGB keyframe (`train.aux_keyframe`). image_latent_scaling: the
        training setting, so that the keyframe latent is scaled as in training.
        use_dynamic_cfg: the text guidance follows `dynamic_guidance` over the steps.
        cue_guidance_above: the cue guidance applies only at timesteps t / T >= this.
        project_output_span: keep the latents in the span of the transformer's output
        layer (`output_span`).
        """
        device = self._execution_device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        cued = cues is not None
        guidance = Guidance(
            guidance_branches(guidance_scale, cue_guidance, cued),
            guidance_scale,
            cue_guidance,
            cued,
            steps if use_dynamic_cfg else None,
            cue_guidance_above * self.scheduler.config.num_train_timesteps,
        )
        prompt_embeds = self._prompt_batch(prompt, guidance.branches, max_sequence_length)
        self.scheduler.set_timesteps(steps, device=device)
        start = self._start(image, num_frames, prompt_embeds.dtype, generator, image_latent_scaling)
        if aux:
            self._start_aux(start, aux_keyframe, generator, image_latent_scaling)
        height, width = image.shape[:2]
        rope = self._prepare_rotary_positional_embeddings(
            height, width, start.latents.size(1), device
        )
        cue_map = self._cue_batch(cues, guidance.branches, prompt_embeds.dtype) if cued else None
        span = self._span_projection() if project_output_span else None
        latents, aux_latents = self._denoise(
            start, prompt_embeds, rope, cue_map, guidance, generator, span
        )
        video = self._decode(latents[:, start.extra :])
        return Generated(video, self._decode(aux_latents[:, start.extra :]) if aux else None)

    def _prompt_batch(self, prompt: str, branches, max_sequence_length: int) -> torch.Tensor:
        """The text embeddings of every guidance branch, batched in branch order."""
        positive, negative = self.encode_prompt(
            prompt,
            "",
            do_classifier_free_guidance=any(not text for text, _ in branches),
            num_videos_per_prompt=1,
            max_sequence_length=max_sequence_length,
            device=self._execution_device,
        )
        return torch.cat([positive if text else negative for text, _ in branches])

    def _start(self, image, num_frames: int, dtype, generator, image_latent_scaling: str):
        """Noise latents (frames padded for patch_size_t) and the keyframe condition."""
        height, width = image.shape[:2]
        latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        p_t = self.transformer.config.patch_size_t
        extra = objective.padding_frames(latent_frames, p_t)
        frames = num_frames + extra * self.vae_scale_factor_temporal
        pixels = self.keyframe_pixels(image, dtype)
        channels = self.transformer.config.in_channels // 2
        latents, image_latents = self.prepare_latents(
            pixels, 1, channels, frames, height, width, dtype, self._execution_device, generator
        )
        # The condition is rebuilt by the function training uses (keyframe at latent frame
        # 0 only), rescaled only when training scaled it differently from the pipeline.
        key = image_latents[:, :1]
        if image_latent_scaling != "pipeline":
            key = key / objective.image_latent_scale(self.vae.config, "pipeline")
            key = key * objective.image_latent_scale(self.vae.config, image_latent_scaling)
        condition = objective.conditioning_latents(key, latents.shape[1], p_t)
        return Start(latents, condition, extra)

    def _start_aux(self, start: Start, aux_keyframe, generator, image_latent_scaling: str):
        """The auxiliary stream's noise and condition: its own keyframe's latent, or the
        RGB keyframe's (`train.aux_keyframe`)."""
        start.aux_latents = torch.randn(start.latents.shape, generator=generator)
        start.aux_latents = start.aux_latents.to(start.latents)
        start.aux_condition = start.condition
        if aux_keyframe is not None:
            raw = self.encode_keyframe(aux_keyframe, generator, start.latents.dtype)
            scale = objective.image_latent_scale(self.vae.config, image_latent_scaling)
            p_t = self.transformer.config.patch_size_t
            frames = start.latents.shape[1]
            start.aux_condition = objective.conditioning_latents(raw * scale, frames, p_t)

    def _cue_batch(self, cues: np.ndarray, branches, dtype) -> torch.Tensor:
        """(H,W,C) cue map -> one (C,H,W) map per branch, zeros where the branch drops cues."""
        cue_map = torch.from_numpy(np.ascontiguousarray(cues)).permute(2, 0, 1)[None]
        cue_map = cue_map.to(self._execution_device, dtype)
        return torch.cat([cue_map if on else torch.zeros_like(cue_map) for _, on in branches])

    def _span_projection(self):
        """latents -> latents projected onto the output layer's span, or None where that
        span holds every latent value."""
        basis = output_span.output_basis(self.transformer)
        if basis is None:
            return None
        patch = self.transformer.config.patch_size
        patch_t = self.transformer.config.patch_size_t or 1
        return lambda x: output_span.project(x, basis, patch, patch_t)

    def _denoise(
        self, start: Start, prompt_embeds, rope, cue_map, guidance: Guidance, generator, span
    ):
        """The sampling loop: every branch the step's guidance reads (`Guidance.active`)
        in one batched forward, guided, then one DPM step per stream (RGB and, if any,
        aux), projected by `span` if given."""
        timesteps = self.scheduler.timesteps
        keep = span or (lambda x: x)
        latents, aux_latents = start.latents, start.aux_latents
        aux = aux_latents is not None
        latents = keep(latents)
        aux_latents = keep(aux_latents) if aux else None
        old = [None, None]
        for i, t in enumerate(self.progress_bar(timesteps)):
            active = guidance.active(int(t))
            n = len(active)

            def model_input(x, cond, t=t, n=n):
                x = self.scheduler.scale_model_input(torch.cat([x] * n), t)
                return torch.cat([x, torch.cat([cond] * n)], dim=2)

            out = self.transformer(
                hidden_states=model_input(latents, start.condition),
                encoder_hidden_states=prompt_embeds[active],
                timestep=t.expand(n),
                ofs=latents.new_full((1,), 2.0) if self.transformer.config.ofs_embed_dim else None,
                image_rotary_emb=rope,
                cues=cue_map[active] if cue_map is not None else None,
                aux_hidden_states=model_input(aux_latents, start.aux_condition) if aux else None,
                return_dict=False,
            )[0]
            preds = list(out) if aux else [out]
            states = [latents, aux_latents]
            for k, pred in enumerate(preds):
                pred = guidance.combine(list(pred.float().chunk(n)), int(t))
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
                keep(s).to(prompt_embeds.dtype) if s is not None else None for s in states
            )
        return latents, aux_latents

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        frames = self.video_processor.postprocess_video(
            self.decode_latents(latents), output_type="np"
        )[0]
        return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
