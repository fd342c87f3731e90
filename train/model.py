"""The STANCE transformer: CogVideoX-1.5 I2V + Instance Cue tokens + an auxiliary stream.

`StanceTransformer` extends diffusers' `CogVideoXTransformer3DModel` and reuses its
blocks, patch embedding and output head unchanged. It adds:
- a cue tokenizer: the dense cue map (u, v, dz, mass) is average-pooled, pixel-unshuffled
  onto the latent patch grid and mapped by an MLP to token width;
- Dense RoPE (`cue_mode="dense_rope"`): the non-zero cue sites are selected under a fixed
  budget N (random subset in training, evenly strided at inference, cyclic tiling when
  fewer, zero tokens when none), each tagged with the FIRST-FRAME 3-D RoPE of its site,
  appended to the video sequence and removed before the output head;
- the 2-D map ablation (`cue_mode="map2d"`): the same cue tokens added to the patch
  embeddings of every latent frame, no extra tokens;
- the naive low-resolution map ablation (`cue_mode="lowres_map"`): the cue map
  area-averaged to one value per channel and token site (what resizing a control map to
  the token grid keeps), embedded by the MLP and added like map2d; a small object's cue is
  diluted by the zeros around it in its site;
- an auxiliary stream (depth or segmentation latents): embedded by the same patch
  embedding, sharing RoPE positions and cues with the RGB stream, told apart by a
  zero-initialised domain embedding; both streams go through the same blocks.
With `cue_mode="none"` and no auxiliary input the forward is the stock one, bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.utils import apply_lora_scale
from torch import nn

from stance import precision
from stance.train import draws

CUE_MODES = ("none", "dense_rope", "map2d", "lowres_map")
CUE_MAP_MODES = ("map2d", "lowres_map")  # cues added to every frame's tokens
AUX_KINDS = ("none", "depth", "seg")
VAE_SPATIAL = 8  # CogVideoX's VAE downsamples 8x in space (the default of vae_spatial)


def cue_cell_pixels(cue_mode: str, cue_pool: int, pixel_patch: int) -> int:
    """Side in pixels of the cells the cue map is averaged over before the tokenizer: the
    low-resolution map averages a whole token site, the other modes `cue_pool` pixels."""
    return pixel_patch if cue_mode == "lowres_map" else cue_pool


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on x (B, heads, S, D) with cos/sin (S, D) or per sample (B, S, D); the pairing
    of diffusers' `apply_rotary_emb(use_real=True, use_real_unbind_dim=-1)`."""
    cos, sin = cos.to(x.device), sin.to(x.device)
    if cos.ndim == 2:
        cos, sin = cos[None, None], sin[None, None]
    else:
        cos, sin = cos[:, None], sin[:, None]
    real, imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    rotated = torch.stack([-imag, real], dim=-1).flatten(3)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def attention(query, key, value, mask=None) -> torch.Tensor:
    """Scaled dot-product attention; in float32 where the CPU's bf16 kernel is the slower
    one (`precision.attention_in_float32`), returning the inputs' dtype either way."""
    if not precision.attention_in_float32(query.device):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    if mask is not None and mask.is_floating_point():
        mask = mask.float()
    with torch.autocast("cpu", enabled=False):
        out = F.scaled_dot_product_attention(
            query.float(), key.float(), value.float(), attn_mask=mask
        )
    return out.to(query.dtype)


class BatchedRoPEAttnProcessor:
    """CogVideoX joint text-video attention whose RoPE may differ per sample (motion
    tokens carry each sample's own first-frame positions)."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None
    ):
        text_len = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch, _, _ = hidden_states.shape
        query, key, value = (
            attn.to_q(hidden_states),
            attn.to_k(hidden_states),
            attn.to_v(hidden_states),
        )
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (
            t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value)
        )
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            cos, sin = image_rotary_emb
            query[:, :, text_len:] = rotate(query[:, :, text_len:], cos, sin)
            key[:, :, text_len:] = rotate(key[:, :, text_len:], cos, sin)
        out = attention(query, key, value, attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, text_len:], out[:, :text_len]


def select_sites(
    active: torch.Tensor, budget: int, training: bool, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick `budget` cue sites per sample from a boolean map (B, sites).

    m >= N: a random subset (training) or evenly strided sites (inference);
    0 < m < N: the m sites tiled cyclically; m = 0: index 0 with `has_cue` False.
    Random subsets are drawn on the generator's own device (a CUDA generator in GPU
    training) and moved to the map's device. Returns indices (B, N) and has_cue (B,).
    """
    indices, has_cue = [], []
    for row in active:
        sites = torch.nonzero(row, as_tuple=False).flatten()
        m = len(sites)
        if m == 0:
            picked = torch.zeros(budget, dtype=torch.long, device=row.device)
        elif m >= budget:
            if training:
                order = draws.randperm(m, generator, row.device)
                picked = sites[order[:budget]]
            else:
                picked = sites[torch.linspace(0, m - 1, budget, device=row.device).round().long()]
        else:
            picked = sites[torch.arange(budget, device=row.device) % m]
        indices.append(picked)
        has_cue.append(m > 0)
    return torch.stack(indices), torch.tensor(has_cue, device=active.device)


class StanceTransformer(CogVideoXTransformer3DModel):
    """CogVideoX transformer with Instance Cue tokens (Dense RoPE) and an auxiliary stream."""

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        # STANCE additions (absent from CogVideoX checkpoints). aux, cue_mode and
        # motion_tokens are the variant's identity: saved beside its weights, read back by
        # generation and evaluation.
        aux: str = "none",
        cue_channels: int = 4,
        cue_mode: str = "dense_rope",
        motion_tokens: int = 64,
        cue_pool: int = 2,
        cue_hidden_dim: int | None = None,
        vae_spatial: int = VAE_SPATIAL,  # the VAE's spatial factor: pixels per latent cell
    ):
        super().__init__(
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            time_embed_dim=time_embed_dim,
            ofs_embed_dim=ofs_embed_dim,
            text_embed_dim=text_embed_dim,
            num_layers=num_layers,
            dropout=dropout,
            attention_bias=attention_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            activation_fn=activation_fn,
            timestep_activation_fn=timestep_activation_fn,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
            patch_bias=patch_bias,
        )
        if cue_mode not in CUE_MODES:
            raise ValueError(f"cue_mode {cue_mode!r}: expected one of {CUE_MODES}")
        if aux not in AUX_KINDS:
            raise ValueError(f"aux {aux!r}: expected one of {AUX_KINDS}")
        pixel_patch = vae_spatial * patch_size
        if pixel_patch % cue_pool:
            raise ValueError(f"cue_pool {cue_pool} must divide the pixel patch {pixel_patch}")
        inner = num_attention_heads * attention_head_dim
        per_site = (pixel_patch // cue_cell_pixels(cue_mode, cue_pool, pixel_patch)) ** 2
        hidden = cue_hidden_dim or inner
        self.cue_tokenizer = nn.Sequential(
            nn.Linear(cue_channels * per_site, hidden), nn.SiLU(), nn.Linear(hidden, inner)
        )
        self.domain_embedding = nn.Parameter(torch.zeros(2, inner))  # RGB, auxiliary
        # Same numerics as diffusers' CogVideoX processor for shared RoPE (tested), and
        # also accepts per-sample RoPE for the motion tokens.
        self.set_attn_processor(BatchedRoPEAttnProcessor())

    # -- cue tokens ---------------------------------------------------------------------
    def cue_patches(self, cues: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pixel-resolution cue map -> (B, sites, C * s * s) on the patch grid
        (s = pixel patch / `cue_cell_pixels`: 1 for the low-resolution map)."""
        pixel_patch = self.config.vae_spatial * self.config.patch_size
        if cues.shape[-1] % pixel_patch or cues.shape[-2] % pixel_patch:
            raise ValueError(
                f"cue map {tuple(cues.shape[-2:])} is not a multiple of the {pixel_patch}px patch"
            )
        pool = cue_cell_pixels(self.config.cue_mode, self.config.cue_pool, pixel_patch)
        pooled = F.avg_pool2d(cues, pool) if pool > 1 else cues
        grid = F.pixel_unshuffle(pooled, pixel_patch // pool)  # (B, C*s*s, H', W')
        return grid.flatten(2).transpose(1, 2)

    def motion_tokens(
        self,
        cues: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        generator: torch.Generator | None = None,
    ):
        """Dense RoPE tokens (B, N, D) and their first-frame RoPE (cos, sin) (B, N, Dh)."""
        patches = self.cue_patches(cues)
        tokens = self.cue_tokenizer(patches.to(self.cue_tokenizer[0].weight.dtype))
        idx, has_cue = select_sites(
            patches.abs().amax(-1) > 0, self.config.motion_tokens, self.training, generator
        )
        picked = torch.gather(tokens, 1, idx[..., None].expand(-1, -1, tokens.shape[-1]))
        picked = picked * has_cue[:, None, None].to(picked.dtype)
        cos, sin = rope  # rows 0 .. H'W'-1 are the first latent frame (t-major order)
        return picked, (cos[idx], sin[idx]), idx

    def check_cue_grid(self, cues: torch.Tensor, hidden_states: torch.Tensor) -> None:
        """The cue map must cover exactly the video's pixel grid: any other size would
        put cue tokens at wrong RoPE positions without an error."""
        batch, _, _, height, width = hidden_states.shape
        spatial = self.config.vae_spatial
        expected = (batch, self.config.cue_channels, height * spatial, width * spatial)
        if tuple(cues.shape) != expected:
            raise ValueError(
                f"cue map of shape {tuple(cues.shape)} does not match the video: expected "
                f"{expected} (batch, cue channels, height, width in pixels of the "
                f"{height}x{width} latent grid); compute the cues at the video's resolution"
            )

    # -- forward ------------------------------------------------------------------------
    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states,
        encoder_hidden_states,
        timestep,
        timestep_cond=None,
        ofs=None,
        image_rotary_emb=None,
        attention_kwargs=None,
        return_dict=True,
        cues: torch.Tensor | None = None,
        aux_hidden_states: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        """As the stock forward, plus `cues` (B, C, H, W) at pixel resolution and
        `aux_hidden_states` shaped like `hidden_states`. Returns the RGB prediction as
        `.sample`; with an auxiliary stream, a tuple (rgb, aux) is `.sample`."""
        use_cues = cues is not None and self.config.cue_mode != "none"
        if not use_cues and aux_hidden_states is None:
            return super().forward(
                hidden_states,
                encoder_hidden_states,
                timestep,
                timestep_cond,
                ofs,
                image_rotary_emb,
                attention_kwargs,
                return_dict,
            )
        if image_rotary_emb is None:
            raise ValueError("STANCE needs rotary embeddings (CogVideoX-1.5 uses them)")
        if use_cues:
            self.check_cue_grid(cues, hidden_states)
        emb = self.time_embedding(self.time_proj(timestep).to(hidden_states.dtype), timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(hidden_states.dtype))
        text, streams = self._embed(encoder_hidden_states, hidden_states, aux_hidden_states)
        if use_cues and self.config.cue_mode in CUE_MAP_MODES:
            streams = self._add_cue_map(streams, cues)
        video_len = streams[0].shape[1]
        sequence = torch.cat(streams, dim=1)
        cos, sin = (torch.cat([part] * len(streams)) for part in image_rotary_emb)
        rope = (cos, sin)
        if use_cues and self.config.cue_mode == "dense_rope":
            tokens, (m_cos, m_sin), _ = self.motion_tokens(cues, image_rotary_emb, generator)
            sequence = torch.cat([sequence, tokens.to(sequence.dtype)], dim=1)
            batch = sequence.shape[0]
            rope = (
                torch.cat([cos[None].expand(batch, -1, -1), m_cos], dim=1),
                torch.cat([sin[None].expand(batch, -1, -1), m_sin], dim=1),
            )
        sequence = self.embedding_dropout(sequence)
        text = self.embedding_dropout(text)
        sequence = self._blocks(sequence, text, emb, rope, attention_kwargs or {})
        parts = [sequence[:, k * video_len : (k + 1) * video_len] for k in range(len(streams))]
        # (motion tokens, after the streams, are dropped here)
        outputs = [self._stream_output(part, emb, hidden_states) for part in parts]
        sample = outputs[0] if len(outputs) == 1 else tuple(outputs)
        if not return_dict:
            return (sample,)
        return Transformer2DModelOutput(sample=sample)

    def _embed(self, encoder_hidden_states, hidden_states, aux_hidden_states):
        """(text tokens, [video tokens] or [RGB, aux] tokens tagged with their domain)."""
        embedded = self.patch_embed(encoder_hidden_states, hidden_states)
        text_len = encoder_hidden_states.shape[1]
        text, video = embedded[:, :text_len], embedded[:, text_len:]
        if aux_hidden_states is None:
            return text, [video]
        aux = self.patch_embed(encoder_hidden_states, aux_hidden_states)[:, text_len:]
        return text, [video + self.domain_embedding[0], aux + self.domain_embedding[1]]

    def _add_cue_map(self, streams, cues):
        """The map ablations: the tokenized cue map added to every frame's tokens."""
        grid = self.cue_tokenizer(self.cue_patches(cues).to(streams[0].dtype))  # (B, H'W', D)
        sites = grid.shape[1]
        return [(s.unflatten(1, (-1, sites)) + grid[:, None]).flatten(1, 2) for s in streams]

    def _blocks(self, sequence, text, emb, rope, kwargs):
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                sequence, text = self._gradient_checkpointing_func(
                    block, sequence, text, emb, rope, kwargs
                )
            else:
                sequence, text = block(
                    hidden_states=sequence,
                    encoder_hidden_states=text,
                    temb=emb,
                    image_rotary_emb=rope,
                    attention_kwargs=kwargs,
                )
        return sequence

    def _stream_output(self, tokens, emb, hidden_states):
        """One stream's tokens -> its prediction, shaped like `hidden_states`' output."""
        batch, frames, _, height, width = hidden_states.shape
        part = self.proj_out(self.norm_out(self.norm_final(tokens), temb=emb))
        return self._unpatchify(part, batch, frames, height, width)

    def _unpatchify(self, tokens, batch, frames, height, width):
        p, p_t = self.config.patch_size, self.config.patch_size_t
        if p_t is None:
            out = tokens.reshape(batch, frames, height // p, width // p, -1, p, p)
            return out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        out = tokens.reshape(
            batch, (frames + p_t - 1) // p_t, height // p, width // p, -1, p_t, p, p
        )
        return out.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)

    def freeze_unused(self) -> list[str]:
        """Freeze the parameters a variant never uses (the cue tokenizer without cues, the
        domain embedding without an auxiliary stream), so DDP does not wait for their
        gradients and AdamW leaves them unchanged. Returns their names, sorted."""
        unused = ("cue_tokenizer.",) if self.config.cue_mode == "none" else ()
        unused += ("domain_embedding",) if self.config.aux == "none" else ()
        frozen = []
        for name, parameter in self.named_parameters():
            if unused and name.startswith(unused):
                parameter.requires_grad_(False)
                frozen.append(name)
        return sorted(frozen)

    def init_new_modules(self) -> None:
        """Real weights for the new modules of a model built on the meta device, initialised
        as their constructors do (nn.Linear's default; a zero domain embedding); the base
        weights come from a checkpoint, loaded on the CPU (`weights.stance_transformer`)."""
        self.cue_tokenizer.to_empty(device="cpu")
        for layer in self.cue_tokenizer.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.domain_embedding = nn.Parameter(torch.zeros(self.domain_embedding.shape))
        tensors = [*self.named_parameters(), *self.named_buffers()]
        meta = [name for name, tensor in tensors if tensor.is_meta]
        if meta:
            raise RuntimeError(f"weights still without values after loading: {meta[:5]}")

    @property
    def new_module_prefixes(self) -> tuple[str, ...]:
        """Parameters a CogVideoX checkpoint does not have."""
        return ("cue_tokenizer.", "domain_embedding")
