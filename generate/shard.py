"""Generate videos with a trained STANCE variant from cue stores (test clips or hints).

Output folder (layout: stance/generated.py): `<clip_id>.mp4` (RGB), `<clip_id>.aux.mp4`
(decoded auxiliary stream, for RGB+Depth / RGB+Seg variants); for a cue-conditioned
variant also, with `generate.cue_flip`, `<clip_id>.flipped.mp4` (the same seed with every
cue arrow reversed) and, with `generate.placebo`, `<clip_id>.placebo.mp4` (another test
clip's cues) and `<clip_id>.placebo.flipped.mp4`; and `generate.resolved.json`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stance import config, generated, provenance, stores, video
from stance.cues import store as cue_store
from stance.settings import Generate, Train, Variant, as_dict
from stance.train import aux_frames, components

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A trained variant as generation needs it: its identity (aux, cue_mode,
    motion_tokens, from the transformer's config beside its weights) and the settings it
    was trained with (the train stage's record)."""

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
    variant = Variant(**{k: model_config[k] for k in config.VARIANT_KEYS})
    record = json.loads(path.read_text())
    return Trained(variant, config.section_settings("train", record["train"], str(path)))


def generation_dtype(train_settings: Train, cuda: bool) -> torch.dtype:
    """The dtype the variant was trained in: bf16/fp16 autocast on GPUs, float32 on CPU."""
    precision = train_settings.mixed_precision
    if not cuda or precision == "no":
        return torch.float32
    return torch.float16 if precision == "fp16" else torch.bfloat16


MEMORY_PROFILES = ("full", "offload", "sequential")


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
    prompt: str,
    frames: int,
    settings: Generate,
    max_text: int,
    info: Trained,
):
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
        image_latent_scaling=info.train.image_latent_scaling,
        use_dynamic_cfg=settings.use_dynamic_cfg,
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


def write_record(
    out_dir: Path,
    settings: Generate,
    model_source: str,
    trained: Path,
    info: Trained,
    code_hash: str,
    **extra,
) -> None:
    """generate.resolved.json of a generation job: how it sampled, with which model and
    variant (evaluation reads the variant from here), and `extra` facts of the job."""
    provenance.write_resolved_config(
        out_dir,
        "generate",
        {
            "generate": as_dict(settings),
            "model": model_source,
            "trained": str(trained),
            "variant": as_dict(info.variant),
            "code_hash": code_hash,
            **extra,
        },
    )


def open_run(
    cue_dir: Path,
    out_dir: Path,
    model_source: str,
    trained: Path,
    settings: Generate,
    allow_download: bool,
    producer: str,
):
    """(pipeline, trained variant, cue store paths) of a generation job; no cue stores is
    an error naming the job (`producer`) that writes them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe, info = load_pipeline(model_source, trained, allow_download, settings.memory_profile)
    paths = sorted(cue_dir.glob("*.zarr"))
    if not paths:
        raise stores.StoreError(f"{cue_dir} holds no cue stores; run {producer}")
    return pipe, info, paths


def generate_shard(
    cue_dir: Path,
    trained: Path,
    out_dir: Path,
    model_source: str,
    settings: Generate,
    max_text: int,
    frames: int,
    fps: int,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    from tqdm import tqdm

    from stance.train.captions import describe

    pipe, info, paths = open_run(
        cue_dir, out_dir, model_source, trained, settings, allow_download, "the cue stage"
    )
    start = time.perf_counter()
    cued = info.variant.cue_mode != "none"
    by_id = {p.stem: p for p in paths}
    donors = placebo_donors(sorted(by_id), settings.seed) if cued and settings.placebo else {}
    for path in tqdm(paths, desc=f"generate {cue_dir.name}", unit="clip"):
        cue = cue_store.read(path)
        donor = cue_store.read(by_id[donors[path.stem]]) if path.stem in donors else None
        prompt = describe(_instances(cue))
        for condition, cues in cue_conditions(cue, donor, settings.cue_flip and cued).items():
            result = sample(pipe, cues, prompt, frames, settings, max_text, info)
            write_result(result, generated.video_path(out_dir, path.stem, condition), fps)
    write_record(
        out_dir,
        settings,
        model_source,
        trained,
        info,
        code_hash,
        clips=[p.stem for p in paths],
        placebo_donors=donors,
        seconds=time.perf_counter() - start,
    )


def benchmark_frames(fps: int, seconds: int = 5) -> tuple[int, int]:
    """(frames to sample, frames to keep): CogVideoX samples 4k + 1 frames, the benchmark
    scores exactly fps x seconds (16 fps: 81 sampled, the first 80 kept)."""
    keep = fps * seconds
    return 4 * -(-(keep - 1) // 4) + 1, keep


def generate_physics_iq(
    cue_dir: Path,
    trained: Path,
    out_dir: Path,
    model_source: str,
    settings: Generate,
    max_text: int,
    fps: int,
    seed: int,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    """One benchmark run: every Physics-IQ view's switch frame + cues + description ->
    `<ID>_<view>_<scenario>.mp4`, exactly fps x 5 frames at `fps` (the reference's
    naming and length, so the folder can also be scored by the reference code)."""
    from tqdm import tqdm

    pipe, info, paths = open_run(
        cue_dir, out_dir, model_source, trained, settings, allow_download, "the physics_iq_cues job"
    )
    sampled, keep = benchmark_frames(fps)
    run_settings = dataclasses.replace(settings, seed=seed)
    start = time.perf_counter()
    for path in tqdm(paths, desc=f"physics-iq seed {seed}", unit="view"):
        cue = cue_store.read(path)
        if cue.attrs.get("source") != "physics_iq":
            raise stores.StoreError(
                f"{path} is not a Physics-IQ cue store (source {cue.attrs.get('source')})"
            )
        result = sample(pipe, cue, cue.attrs["prompt"], sampled, run_settings, max_text, info)
        video.write_mp4(out_dir / f"{path.stem}.mp4", result.video[:keep], fps)
    write_record(
        out_dir,
        run_settings,
        model_source,
        trained,
        info,
        code_hash,
        fps=fps,
        frames=keep,
        views=[p.stem for p in paths],
        seconds=time.perf_counter() - start,
    )


def _instances(cue: cue_store.CueClip) -> list[dict]:
    """Caption inputs from the render store the cue came from (colour/shape/material)."""
    from stance.render import store as clip_store

    source = cue.attrs.get("render_store")
    if source and Path(source).exists():
        return clip_store.open_attrs(source)["instances"]
    return [
        {"color": (0.5, 0.5, 0.5), "material": "rubber", "shape": "object"}
        for _ in cue.instances["u"]
    ]


def generate_from_store(
    store_path: Path,
    trained: Path,
    out: Path,
    model_source: str,
    settings: Generate,
    max_text: int,
    frames: int,
    fps: int,
    prompt: str,
    allow_download: bool = True,
) -> Path:
    pipe, info = load_pipeline(model_source, trained, allow_download, settings.memory_profile)
    result = sample(
        pipe,
        cue_store.read(store_path),
        prompt,
        frames,
        settings,
        max_text,
        info,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(result, out, fps)
    log.info("generated %s", out)
    return out
