"""Building a training run: its folder (named by the hash of what it computes), the
accelerator (processes, precision, DeepSpeed, logging), the STANCE transformer with what
its variant does not use frozen, the frozen noise scheduler and VAE, and the optimiser with
its warmup schedule, prepared together (`open_run`)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stance import config
from stance.precision import resolve as resolve_precision
from stance.settings import Train, Variant, as_dict, without_neutral
from stance.train import components, launch, weights
from stance.train.data import CacheDataset, cue_store_paths

log = logging.getLogger(__name__)


def input_fingerprint(paths: Sequence[Path]) -> str:
    """Names, sizes and modification times of a run's inputs (cache files, cue stores): a
    regenerated input starts a new run; a requeued job with untouched inputs resumes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = (path / "zarr.json" if path.is_dir() else path).stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


# Settings that change how a run is babysat or watched, not the weights it computes:
# editing them resumes the same run instead of starting a new one. `variants` is left out
# too: a run hashes its own variant only, so adding another variant does not restart it.
OPERATIONAL_KEYS = (*launch.BABYSITTING, "variants", "validate_every", "validate_sampling_steps")


def run_identity(
    settings: Train,
    variant: Variant,
    model: str,
    files: Sequence[Path],
    inputs: str = "",
) -> dict:
    """What names a training run: its settings (not the operational ones, nor a newer
    setting at its neutral default), its variant, start model, data and inputs."""
    every = without_neutral(as_dict(settings, every_field=True))
    train = {k: v for k, v in every.items() if k not in OPERATIONAL_KEYS}
    return {
        "train": train,
        "variant": config.variant_entry(as_dict(variant)),
        "model": model,
        "data": sorted(p.name for p in files),
        "inputs": inputs,
    }


def run_hash(*args, **kwargs) -> str:
    """The run folder's name: a hash of `run_identity`."""
    payload = json.dumps(run_identity(*args, **kwargs), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """What one training job trains and where it writes it: the fine-tuning of a variant
    (`trainer.fit_variant`) and the pretraining of the shared backbone both come here."""

    cache_files: tuple[Path, ...]
    cue_dirs: tuple[Path, ...]  # empty: no cues (pretraining)
    out_dir: Path
    run_root: Path
    settings: Train
    name: str
    variant: Variant
    model_source: str
    code_hash: str
    allow_download: bool = True
    init: Path | None = None  # the pretrained backbone's folder, else models.video

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_files", tuple(sorted(self.cache_files)))
        object.__setattr__(self, "cue_dirs", tuple(self.cue_dirs))


@dataclasses.dataclass
class Run:
    """A training run's parts, as `open_run` prepared them for its job."""

    job: Job
    run_dir: Path
    accelerator: Any
    model: Any  # prepared (a DDP/DeepSpeed wrapper on several processes)
    model_config: Any  # the transformer's config (wrappers do not expose it)
    optimizer: Any
    schedule: Any
    scheduler: Any  # the noise scheduler
    vae: Any  # None unless keyframes are noised and encoded every step
    vae_config: Any
    dataset: CacheDataset
    ema: Any = None  # diffusers EMAModel of `ema_params` (train.ema_decay > 0), else None
    ema_params: list = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def variant(self) -> Variant:
        return self.job.variant

    @property
    def settings(self) -> Train:
        return self.job.settings

    @contextlib.contextmanager
    def averaged_weights(self):
        """The model carries the moving average inside the block (if there is one), its
        trained weights again after it."""
        if self.ema is None:
            yield
            return
        self.ema.store(self.ema_params)
        self.ema.copy_to(self.ema_params)
        try:
            yield
        finally:
            self.ema.restore(self.ema_params)


def open_run(job: Job) -> Run:
    """The accelerator, the model (from `job.init` or models.video), its frozen companions,
    optimiser and warmup schedule, prepared; the run folder named by the run's hash."""
    from accelerate.utils import set_seed

    settings, variant, files = job.settings, job.variant, job.cache_files
    cues = cue_store_paths(job.cue_dirs) if job.cue_dirs else None  # None: no cues
    start_weights = sorted((Path(job.init) / "transformer").glob("*")) if job.init else []
    inputs = input_fingerprint(
        [*files, *(cues[p.stem] for p in files if p.stem in (cues or {})), *start_weights]
    )
    run_dir = job.run_root / job.name / run_hash(settings, variant, job.model_source, files, inputs)
    accelerator, precision = make_accelerator(settings, run_dir)
    set_seed(settings.seed)  # before the model: its new modules start from seeded weights
    model = build_transformer(
        job.name, variant, settings, job.model_source, job.allow_download, job.init
    )
    scheduler, vae, vae_config = frozen_parts(
        settings, job.model_source, job.allow_download, precision
    )
    optimizer, schedule = make_optimiser(model, settings, accelerator.num_processes)
    model_config = model.config
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    if vae is not None:
        vae.requires_grad_(False).eval().to(accelerator.device)
    dataset = CacheDataset(files, variant.aux, cues, settings.image_noise)
    ema, ema_params = weight_average(model, settings, accelerator)
    return Run(
        job,
        run_dir,
        accelerator,
        model,
        model_config,
        optimizer,
        schedule,
        scheduler,
        vae,
        vae_config,
        dataset,
        ema,
        ema_params,
    )


def weight_average(model, settings: Train, accelerator):
    """(EMAModel of the trained parameters, those parameters), or (None, []) when
    train.ema_decay is 0; registered so that checkpoints save and resume it."""
    if not settings.ema_decay:
        return None, []
    from diffusers.training_utils import EMAModel

    params = [p for p in model.parameters() if p.requires_grad]
    ema = EMAModel(params, decay=settings.ema_decay)
    accelerator.register_for_checkpointing(ema)
    return ema, params


def make_accelerator(settings: Train, run_dir: Path):
    """(accelerator, resolved precision): processes, precision, DeepSpeed and logging."""
    from accelerate import Accelerator

    precision = resolve_precision(settings.mixed_precision)
    accelerator = Accelerator(
        mixed_precision=precision,
        log_with="tensorboard",
        project_dir=str(run_dir),
        gradient_accumulation_steps=settings.gradient_accumulation,
        **cpu_process_group(),
    )
    configure_deepspeed(accelerator, settings)
    log.info(
        "%d process(es), %s, mixed precision %s",
        accelerator.num_processes,
        accelerator.distributed_type,
        precision,
    )
    return accelerator, precision


def build_transformer(name, variant, settings, model_source, allow_download, init):
    """The STANCE transformer to train, with what the variant does not use frozen."""
    identity = {k: getattr(variant, k) for k in config.VARIANT_KEYS}  # the seed is no model option
    model = weights.stance_transformer(model_source, identity, allow_download, init=init)
    frozen = model.freeze_unused()
    if frozen:
        log.info("variant %s does not use %s: frozen", name, frozen)
    if settings.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model


def frozen_parts(settings: Train, model_source: str, allow_download: bool, precision: str):
    """(noise scheduler, VAE or None, VAE config): the VAE is loaded only when keyframes
    are noised and encoded every step (`train.image_noise: per_step`)."""
    from diffusers import CogVideoXDPMScheduler

    scheduler = components.load_component(
        CogVideoXDPMScheduler, model_source, "scheduler", allow_download
    )
    vae_cls = components.vae_class(model_source, allow_download)
    vae_config = components.load_config(vae_cls, model_source, "vae", allow_download)
    vae = None
    if settings.image_noise == "per_step":
        vae = components.load_component(
            vae_cls,
            model_source,
            "vae",
            allow_download,
            torch_dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
        )
    return scheduler, vae, vae_config


def make_optimiser(model, settings: Train, processes: int):
    """AdamW over the trainable parameters and its constant-with-warmup schedule."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=settings.learning_rate,
        betas=settings.betas,
        weight_decay=settings.weight_decay,
    )
    # accelerate steps a prepared scheduler once per process at every optimiser step (as
    # diffusers' trainers, scale the warmup by the process count)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup(settings.lr_warmup_steps * processes)
    )
    return optimizer, schedule


def warmup(steps: int):
    """The learning-rate factor per scheduler step: linear from 0 over `steps`, then 1
    (constant_with_warmup, as THUDM's CogVideoX fine-tuning)."""

    def factor(step: int) -> float:
        return 1.0 if step >= steps else (step + 1) / (steps + 1)

    return factor


def cpu_process_group() -> dict[str, Any]:
    """Accelerator arguments for several processes without CUDA (CPU runs of the multi-GPU
    launch configs): accelerate only builds a process group for accelerators, so without
    these every rank would silently train alone."""
    from accelerate.utils import InitProcessGroupKwargs

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return {}
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return {"kwargs_handlers": [InitProcessGroupKwargs(backend="gloo")]}
    return {"cpu": True}  # DDP over gloo


def configure_deepspeed(accelerator, settings: Train) -> None:
    """Fill the DeepSpeed values that come from our config (we pass no dataloader, so
    accelerate cannot infer the micro-batch; clipping is DeepSpeed's own under ZeRO)."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    plugin.deepspeed_config.update(
        train_batch_size=settings.micro_batch
        * settings.gradient_accumulation
        * accelerator.num_processes,
        train_micro_batch_size_per_gpu=settings.micro_batch,
        gradient_accumulation_steps=settings.gradient_accumulation,
        gradient_clipping=settings.max_grad_norm,
    )
