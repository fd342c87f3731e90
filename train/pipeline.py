"""Generation: CogVideoX-1.5 image-to-video sampling with Instance Cues (+ an aux stream).

`StanceImageToVideoPipeline` extends diffusers' `CogVideoXImageToVideoPipeline` and reuses
its prompt encoding, latent preparation (1.5 frame padding), RoPE tables, scheduler and
decoding; its sampling loop passes the cue map to the STANCE transformer and, for RGB+aux
models, denoises the auxiliary latents jointly with the RGB latents (one DPM state each).
Classifier-free guidance applies to the text only: both branches see the same cues.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import CogVideoXImageToVideoPipeline
from PIL import Image


@dataclass
class Generated:
    video: np.ndarray  # (T,H,W,3) uint8
    aux: np.ndarray | None  # (T,H,W,3) uint8 decoded auxiliary stream, or None


class StanceImageToVideoPipeline(CogVideoXImageToVideoPipeline):
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
    ) -> Generated:
        """Sample a clip from a keyframe (H,W,3 uint8) and a cue map (H,W,C float32)."""
        height, width = image.shape[:2]
        device = self._execution_device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        cfg = guidance_scale > 1.0
        prompt_embeds, negative = self.encode_prompt(
            prompt,
            "",
            do_classifier_free_guidance=cfg,
            num_videos_per_prompt=1,
            max_sequence_length=max_sequence_length,
            device=device,
        )
        if cfg:
            prompt_embeds = torch.cat([negative, prompt_embeds])
        self.scheduler.set_timesteps(steps, device=device)
        timesteps = self.scheduler.timesteps

        latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        p_t = self.transformer.config.patch_size_t
        extra = (p_t - latent_frames % p_t) % p_t if p_t else 0
        frames = num_frames + extra * self.vae_scale_factor_temporal
        pixels = self.video_processor.preprocess(
            Image.fromarray(image), height=height, width=width
        ).to(device, prompt_embeds.dtype)
        channels = self.transformer.config.in_channels // 2
        latents, image_latents = self.prepare_latents(
            pixels, 1, channels, frames, height, width, prompt_embeds.dtype, device, generator
        )
        aux_latents = torch.randn(latents.shape, generator=generator).to(latents) if aux else None
        rope = self._prepare_rotary_positional_embeddings(height, width, latents.size(1), device)
        cue_map = None
        if cues is not None:
            cue_map = torch.from_numpy(np.ascontiguousarray(cues)).permute(2, 0, 1)[None]
            cue_map = cue_map.to(device, prompt_embeds.dtype).repeat(2 if cfg else 1, 1, 1, 1)
        old = [None, None]
        for i, t in enumerate(self.progress_bar(timesteps)):

            def model_input(x, t=t):
                x = torch.cat([x] * 2) if cfg else x
                cond = torch.cat([image_latents] * 2) if cfg else image_latents
                return torch.cat([self.scheduler.scale_model_input(x, t), cond], dim=2)

            out = self.transformer(
                hidden_states=model_input(latents),
                encoder_hidden_states=prompt_embeds,
                timestep=t.expand(prompt_embeds.shape[0]),
                ofs=latents.new_full((1,), 2.0) if self.transformer.config.ofs_embed_dim else None,
                image_rotary_emb=rope,
                cues=cue_map,
                aux_hidden_states=model_input(aux_latents) if aux else None,
                return_dict=False,
            )[0]
            preds = list(out) if aux else [out]
            states = [latents, aux_latents]
            for k, pred in enumerate(preds):
                pred = pred.float()
                if cfg:
                    uncond, text = pred.chunk(2)
                    pred = uncond + guidance_scale * (text - uncond)
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
