"""The generation API: load a trained STANCE variant as a pipeline (`load_pipeline`) and
sample a video from one cue clip (`sample`), with the cue conditions the evaluation
compares (reversed arrows, another clip's cues). The generation jobs (`jobs`), the demo
and the training's validation probe all sample through here."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stance import config, stores, video
from stance.cues import store as cue_store
from stance.settings import Generate, Train, Variant
from stance.train import aux_frames, components

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A trained variant as generation needs it: its identity (aux, cue_mode,
    motion_tokens, from the transformer's config beside its weights; the seed it was
    trained with) and the settings it was trained with (the train stage's record)."""

    variant: Variant
    train: Train

    @property
    def aux(self) -> str:
        return self.variant.aux


def read_trained(trained: Path) -> Trained:
    path = trained / "train.resolved.json"
    if not (trained / "transformer" / "config.json").exists() or not path.exists():
        raise stores.StoreError(f"{trained} holds no trained transformer: run stance train fit")
    model_config = json.loads((trained / "transformer" / "config.json").read_text())
    if "aux" not in model_config:
        raise stores.StoreError(
            f"{trained}/transformer/config.json does not name its variant (aux); it was"
            " trained by an older version: delete the folder and rerun stance train fit"
        )
    record = json.loads(path.read_text())
    train = config.section_settings("train", record["train"], str(path))
    identity = {k: model_config[k] for k in config.VARIANT_KEYS}
    return Trained(Variant(**identity, seed=train.seed), train)  # the seed it was trained with


def generation_dtype(train_settings: Train, cuda: bool) -> torch.dtype:
    """The dtype the variant was trained in: bf16/fp16 autocast on GPUs, float32 on CPU."""
    mode = train_settings.mixed_precision
    if not cuda or mode == "no":
        return torch.float32
    return torch.float16 if mode == "fp16" else torch.bfloat16


MEMORY_PROFILES = config.choices("generate", "memory_profile")


def apply_memory_profile(pipe, profile: str, cuda: bool) -> None:
    """Place the pipeline for a memory budget.
    full: everything on the GPU. offload: diffusers' model CPU offload (one component on
    the GPU at a time) + VAE slicing: the same video as full. sequential: sequential CPU
    offload (weights streamed layer by layer; slowest, least memory) + VAE slicing and
    tiling; tiled decoding blends overlapping tiles, so pixels differ slightly from full.
    Without a GPU there is nothing to offload to: the offload profiles only slice (and
    tile) the VAE."""
    if profile not in MEMORY_PROFILES:
        raise config.ConfigError(
            f"generate.memory_profile {profile!r}: expected one of {list(MEMORY_PROFILES)}"
        )
    switches = {"full": (), "offload": ("enable_slicing",)}.get(
        profile, ("enable_slicing", "enable_tiling")
    )
    for switch in switches:
        if hasattr(pipe.vae, switch):  # the invertible codec has neither
            getattr(pipe.vae, switch)()
    if not cuda or profile == "full":
        pipe.to("cuda" if cuda else "cpu")
    elif profile == "offload":
        pipe.enable_model_cpu_offload()
    else:
        pipe.enable_sequential_cpu_offload()


def load_pipeline(
    model_source: str, trained: Path, allow_download: bool = True, memory_profile: str = "full"
):
    """The base pipeline's frozen parts + the fine-tuned STANCE transformer, in the dtype
    the variant was trained in, placed by `memory_profile` (apply_memory_profile)."""
    from stance.generate.pipeline import StanceImageToVideoPipeline
    from stance.train.model import StanceTransformer

    info = read_trained(trained)
    cuda = torch.cuda.is_available()
    dtype = generation_dtype(info.train, cuda)
    frozen = components.load_frozen(model_source, allow_download, dtype=dtype)
    transformer = StanceTransformer.from_pretrained(
        trained / "transformer", torch_dtype=dtype
    ).eval()
    pipe = StanceImageToVideoPipeline(transformer=transformer, **frozen)
    apply_memory_profile(pipe, memory_profile, cuda)
    pipe.set_progress_bar_config(disable=True)
    return pipe, info


def sample(
    pipe,
    cue: cue_store.CueClip,
    *,
    prompt: str,
    frames: int,
    settings: Generate,
    max_text: int,
    info: Trained,
):
    """One video (and its auxiliary stream) from `cue`'s keyframe and cue map."""
    cues = cue.cue[0] if pipe.transformer.config.cue_mode != "none" else None
    aux_keyframe = None
    if info.aux != "none" and info.train.aux_keyframe == "aux":
        aux_keyframe = aux_frames.keyframe(info.aux, cue.labels, cue.keyframe_disparity)
    return pipe.generate(
        cue.keyframe,
        cues,
        prompt,
        frames,
        settings.steps,
        settings.guidance_scale,
        settings.seed,
        aux=info.aux != "none",
        max_sequence_length=max_text,
        aux_keyframe=aux_keyframe,
        cue_guidance=settings.cue_guidance,
        cue_guidance_above=settings.cue_guidance_above,
        image_latent_scaling=info.train.image_latent_scaling,
        use_dynamic_cfg=settings.use_dynamic_cfg,
        project_output_span=settings.project_output_span,
    )


REVERSED_CHANNELS = ("u", "v", "dz")  # the arrow; mass is not a direction


def reversed_arrows(cue: cue_store.CueClip) -> cue_store.CueClip:
    """The same clip with every instance's arrow (u, v, dz) pointing the other way."""
    sign = np.array([-1.0 if c in REVERSED_CHANNELS else 1.0 for c in cue_store.CHANNELS])
    return dataclasses.replace(cue, cue=(cue.cue * sign.astype(np.float32)))


def placebo_donors(clip_ids: list[str], seed: int) -> dict[str, str]:
    """clip -> the other clip whose cue map its placebo is sampled with: one seeded cycle
    through the clips, so no clip gets its own cues (none for a single clip)."""
    if len(clip_ids) < 2:
        return {}
    order = [clip_ids[i] for i in np.random.default_rng([seed, 7]).permutation(len(clip_ids))]
    return {clip: order[(k + 1) % len(order)] for k, clip in enumerate(order)}


def cue_conditions(
    cue: cue_store.CueClip, donor: cue_store.CueClip | None, flip: bool
) -> dict[str, cue_store.CueClip]:
    """condition (stance/generated.py) -> the clip with the cues to sample it with."""
    out = {"": cue}
    if donor is not None:
        out["placebo"] = dataclasses.replace(cue, cue=donor.cue)
    if flip:
        out.update({f"{k}.flipped".lstrip("."): reversed_arrows(c) for k, c in out.items()})
    return out


def write_result(result, path: Path, fps: int) -> None:
    """`<name>.mp4` for RGB and `<name>.aux.mp4` for the auxiliary stream, if any."""
    video.write_mp4(path, result.video, fps)
    if result.aux is not None:
        video.write_mp4(path.with_suffix(".aux.mp4"), result.aux, fps)


def caption_instances(cue: cue_store.CueClip) -> list[dict]:
    """Caption inputs from the render store the cue came from (colour/shape/material)."""
    from stance.render import store as clip_store

    source = cue.attrs.get("render_store")
    if source and Path(source).exists():
        return clip_store.open_attrs(source)["instances"]
    return [
        {"color": (0.5, 0.5, 0.5), "material": "rubber", "shape": "object"}
        for _ in cue.instances["u"]
    ]
