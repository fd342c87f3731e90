"""The generation jobs: every clip of a test shard, one Physics-IQ run, or a user's hint cue
store, each described by one `Request` (what the job samples with, from one place).

Output folder of a shard (layout: stance/generated.py): `<clip_id>.mp4` (RGB),
`<clip_id>.aux.mp4` (decoded auxiliary stream, for RGB+Depth / RGB+Seg variants); for a
cue-conditioned variant also, with `generate.cue_flip`, `<clip_id>.flipped.mp4` (the same
seed with every cue arrow reversed) and, with `generate.placebo`, `<clip_id>.placebo.mp4`
(another test clip's cues) and `<clip_id>.placebo.flipped.mp4`; and `generate.resolved.json`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from stance import generated, provenance, stores, video
from stance.cues import store as cue_store
from stance.generate import sampling
from stance.settings import Generate, as_dict, replace

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """Everything a generation job samples with. The trained variant's own record
    (train.resolved.json) adds how it was trained; nothing else is read."""

    trained: Path  # a trained variant folder (results/train/<variant>)
    model: str  # the base pipeline: hub id or folder (models.video)
    settings: Generate
    max_text: int  # T5 tokens (train.max_text_seq_length)
    fps: int  # frame rate of the written videos
    code_hash: str = "unknown"
    allow_download: bool = True

    def open(self, out_dir: Path, cue_dir: Path | None = None, producer: str = ""):
        """(pipeline, trained variant, cue store paths of `cue_dir`); a folder without cue
        stores is an error naming the job (`producer`) that writes them."""
        paths = []
        if cue_dir is not None:
            paths = sorted(cue_dir.glob("*.zarr"))
            if not paths:
                raise stores.StoreError(f"{cue_dir} holds no cue stores; run {producer}")
        out_dir.mkdir(parents=True, exist_ok=True)
        pipe, info = sampling.load_pipeline(
            self.model, self.trained, self.allow_download, self.settings.memory_profile
        )
        return pipe, info, paths

    def sample(self, pipe, info: sampling.Trained, cue, *, prompt: str, frames: int):
        """One video from `cue` with this request's settings."""
        return sampling.sample(
            pipe,
            cue,
            prompt=prompt,
            frames=frames,
            settings=self.settings,
            max_text=self.max_text,
            info=info,
        )

    def record(self, out_dir: Path, info: sampling.Trained, started: float, **extra) -> None:
        """generate.resolved.json: how the job sampled, with which model and variant
        (evaluation reads the variant from here), and `extra` facts of the job."""
        provenance.write_resolved_config(
            out_dir,
            "generate",
            {
                "generate": as_dict(self.settings),
                "model": self.model,
                "trained": str(self.trained),
                "variant": as_dict(info.variant),
                "code_hash": self.code_hash,
                **extra,
                "seconds": time.perf_counter() - started,
                "device": device_name(),
            },
        )


def device_name() -> str:
    """What sampled: the GPU's model name, else "cpu" (a benchmark card asks for it)."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def generate_shard(request: Request, *, cue_dir: Path, out_dir: Path, frames: int) -> None:
    """Every clip of a cue shard under each of its cue conditions."""
    from tqdm import tqdm

    from stance.train.captions import describe

    pipe, info, paths = request.open(out_dir, cue_dir, "the cue stage")
    settings, started = request.settings, time.perf_counter()
    cued = info.variant.cue_mode != "none"
    by_id = {p.stem: p for p in paths}
    donors = {}
    if cued and settings.placebo:
        donors = sampling.placebo_donors(sorted(by_id), settings.seed)
    for path in tqdm(paths, desc=f"generate {cue_dir.name}", unit="clip"):
        cue = cue_store.read(path)
        donor = cue_store.read(by_id[donors[path.stem]]) if path.stem in donors else None
        prompt = describe(sampling.caption_instances(cue))
        conditions = sampling.cue_conditions(cue, donor, settings.cue_flip and cued)
        for condition, cues in conditions.items():
            result = request.sample(pipe, info, cues, prompt=prompt, frames=frames)
            path_out = generated.video_path(out_dir, path.stem, condition)
            sampling.write_result(result, path_out, request.fps)
    request.record(out_dir, info, started, clips=[p.stem for p in paths], placebo_donors=donors)


def benchmark_frames(fps: int, seconds: int = 5) -> tuple[int, int]:
    """(frames to sample, frames to keep): CogVideoX samples 4k + 1 frames, the benchmark
    scores exactly fps x seconds (16 fps: 81 sampled, the first 80 kept)."""
    keep = fps * seconds
    return 4 * -(-(keep - 1) // 4) + 1, keep


def generate_physics_iq(request: Request, *, cue_dir: Path, out_dir: Path, seed: int) -> None:
    """One benchmark run: every Physics-IQ view's switch frame + cues + description ->
    `<ID>_<view>_<scenario>.mp4`, exactly fps x 5 frames at `fps` (the reference's
    naming and length, so the folder can also be scored by the reference code)."""
    from tqdm import tqdm

    request = dataclasses.replace(request, settings=replace(request.settings, seed=seed))
    pipe, info, paths = request.open(out_dir, cue_dir, "the physics_iq_cues job")
    sampled, keep = benchmark_frames(request.fps)
    started = time.perf_counter()
    for path in tqdm(paths, desc=f"physics-iq seed {seed}", unit="view"):
        cue = cue_store.read(path)
        if cue.attrs.get("source") != "physics_iq":
            raise stores.StoreError(
                f"{path} is not a Physics-IQ cue store (source {cue.attrs.get('source')})"
            )
        result = request.sample(pipe, info, cue, prompt=cue.attrs["prompt"], frames=sampled)
        video.write_mp4(out_dir / f"{path.stem}.mp4", result.video[:keep], request.fps)
    request.record(
        out_dir, info, started, fps=request.fps, frames=keep, views=[p.stem for p in paths]
    )


def generate_from_store(request: Request, *, store: Path, out: Path, frames: int, prompt: str):
    """One video from a user's hint cue store (`stance cues from-hints`)."""
    pipe, info, _ = request.open(out.parent)
    result = request.sample(pipe, info, cue_store.read(store), prompt=prompt, frames=frames)
    sampling.write_result(result, out, request.fps)
    log.info("generated %s", out)
    return out
