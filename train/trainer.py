"""STANCE fine-tuning with accelerate: deterministic data order, checkpoints, resume.

A run lives in `<run_root>/<variant>/<run hash>/` where the hash covers the training
settings, the variant, the model and the training cache list: a changed config starts a
new run, the same config continues the old one. Checkpoints (accelerate state: model,
optimizer, RNG) are written every `checkpoint_every` steps, `stop_before_limit_s` before
the Slurm job's time limit, and on SIGUSR1/SIGTERM; the job then exits with 75 and
Snakemake's retries resubmit it (history.jsonl in the run folder lists every attempt's
start, stop and finish). A restarted job resumes from the newest
complete checkpoint with the same step count and data order, so a killed-and-resumed run
ends with the same weights as an uninterrupted one. Snakemake's declared output is only
the final model folder, so deleting an incomplete output never deletes checkpoints.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stance import provenance, stores
from stance.cues import store as cue_store
from stance.errors import UserError
from stance.precision import resolve as resolve_precision
from stance.settings import Train, Variant, as_dict
from stance.train import components, encode, launch, objective

log = logging.getLogger(__name__)
DONE = "COMPLETE"  # marker written after a checkpoint is fully saved
MEMORY_BUDGET = 2 * 2**30  # bytes of training items a process keeps after reading them


class CacheDataset(torch.utils.data.Dataset):
    """Training items: a clip's cache (latents, keyframes, prompt) + its cue map, read from
    the clip's cue store (the cache holds no cues, so cue changes never re-encode)."""

    def __init__(
        self,
        files: Sequence[Path],
        aux: str,
        cue_stores: Mapping[str, Path] | None,
        image_noise: str = "per_step",
    ):
        if not files:
            raise FileNotFoundError(
                "no training cache files (*.safetensors): run the encode "
                "stage (stance train encode)"
            )
        missing = (
            [] if cue_stores is None else sorted(p.stem for p in files if p.stem not in cue_stores)
        )
        if missing:
            raise stores.StoreError(
                f"no cue store for {len(missing)} cached clip(s) ({', '.join(missing[:3])}"
                f"{', ...' if len(missing) > 3 else ''}): run the cue stage for their shards "
                "(snakemake cue_shard targets) or pass the matching --cues folders"
            )
        # None: items without cues (the pretrained backbone reads no cue store)
        self.files, self.aux = list(files), aux
        self.cue_stores = None if cue_stores is None else dict(cue_stores)
        self.image_noise = image_noise
        self.kept: dict[int, dict[str, torch.Tensor]] = {}
        self.keep: bool | None = None  # whether the set fits MEMORY_BUDGET: at the 1st read

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """A clip's item, kept in memory after its first read when the whole set fits in
        MEMORY_BUDGET: a small model's step is then not spent opening stores (opening and
        checking a cue store costs ~10 ms, the small-scale model's step ~0.12 s for 16)."""
        if index in self.kept:
            return self.kept[index]
        item = self.read(index)
        if self.keep is None:
            size = sum(t.numel() * t.element_size() for t in item.values()) * len(self)
            self.keep = size <= MEMORY_BUDGET
        if self.keep:
            self.kept[index] = item
        return item

    def read(self, index: int) -> dict[str, torch.Tensor]:
        # batch key -> cache tensor: keyframes (noised per step) or cached image latents
        conditions = {"image_latents": "rgb"}
        wanted = {"video_latents": "video_latents", "prompt_embeds": "prompt_embeds"}
        if self.aux != "none":
            conditions["aux_image_latents"] = self.aux
            wanted["aux_latents"] = f"{self.aux}_latents"
        for key, stream in conditions.items():
            if self.image_noise == "per_step":
                wanted[f"{key}_keyframe"] = f"{stream}_keyframe"
            else:
                wanted[key] = encode.image_latent_name(stream)
        tensors, _ = encode.read_cache(self.files[index], tuple(wanted.values()))
        item = {key: tensors[name] for key, name in wanted.items()}
        if self.cue_stores is None:
            return item
        cue = cue_store.read_cue(self.cue_stores[self.files[index].stem])
        item["cues"] = torch.from_numpy(cue[0]).permute(2, 0, 1).contiguous()
        return item


def cue_store_paths(folders: Sequence[Path]) -> dict[str, Path]:
    """clip id -> cue store, over the cue shard folders."""
    return {p.stem: p for folder in folders for p in sorted(Path(folder).glob("*.zarr"))}


def encode_keyframes(vae, batch: dict[str, torch.Tensor], generator) -> None:
    """Per-step noise augmentation: replace the uint8 keyframes of a batch by the latents
    of freshly noised keyframes (THUDM's trainer redraws this noise every step)."""
    names = [k for k in ("image_latents", "aux_image_latents") if f"{k}_keyframe" in batch]
    if not names:
        return
    latents = encode.noisy_keyframe_latents(
        vae, {n: batch.pop(f"{n}_keyframe") for n in names}, generator
    )
    batch.update({n: latents[n].to(batch["video_latents"].dtype) for n in names})


def input_fingerprint(paths: Sequence[Path]) -> str:
    """Names, sizes and modification times of a run's inputs (cache files, cue stores): a
    regenerated input starts a new run; a requeued job with untouched inputs resumes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = (path / "zarr.json" if path.is_dir() else path).stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def batch_indices(
    step: int, size: int, n: int, seed: int, rank: int = 0, world: int = 1
) -> list[int]:
    """Dataset indices of a process's micro-batch at a global step: a seeded permutation
    per epoch, so any step's batch is known without replaying the ones before it."""
    out = []
    for slot in range(size):
        position = (step * world + rank) * size + slot
        epoch, offset = divmod(position, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[offset]))
    return out


class StepBatches(torch.utils.data.Sampler):
    """Each step's micro-batch indices from `start` on (`batch_indices`), for a DataLoader
    whose workers read ahead: the order stays a function of the step, so resuming works."""

    def __init__(self, start: int, steps: int, size: int, n: int, seed: int, rank, world):
        self.start, self.steps, self.args = start, steps, (size, n, seed, rank, world)

    def __iter__(self):
        return (batch_indices(step, *self.args) for step in range(self.start, self.steps))

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


def loader_workers(device: torch.device) -> int:
    """Reader processes: none on a CPU (they would take cores from the model); on a GPU a
    few, so that reading caches and cue stores overlaps the steps instead of stalling them."""
    return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) // 2))


# Settings that change how a run is babysat or watched, not the weights it computes:
# editing them resumes the same run instead of starting a new one. `variants` is left out
# too: a run hashes its own variant only, so adding another variant does not restart it.
OPERATIONAL_KEYS = (*launch.BABYSITTING, "variants", "validate_every", "validate_sampling_steps")


def run_hash(
    settings: Train,
    variant: Variant,
    model: str,
    files: Sequence[Path],
    inputs: str = "",
) -> str:
    payload = json.dumps(
        {
            "train": {k: v for k, v in as_dict(settings).items() if k not in OPERATIONAL_KEYS},
            "variant": as_dict(variant),
            "model": model,
            "data": sorted(p.name for p in files),
            "inputs": inputs,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def latest_checkpoint(folder: Path) -> Path | None:
    done = sorted(p.parent for p in folder.glob(f"step-*/{DONE}"))
    return done[-1] if done else None


def parse_end_time(text: str) -> float | None:
    """squeue's %e (local time, e.g. 2026-11-21T12:00:00) -> epoch seconds; None if none."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:  # N/A, UNLIMITED, Unknown
        return None


def job_deadline() -> float | None:
    """When Slurm will end this job (epoch seconds), or None outside Slurm.

    Slurm's --signal would also reach the Snakemake process that wraps the job (and kill
    it before the trainer could checkpoint), so the trainer watches the deadline itself.
    STANCE_JOB_END_TIME (epoch seconds) overrides, for tests and other schedulers.
    """
    if os.environ.get("STANCE_JOB_END_TIME"):
        return float(os.environ["STANCE_JOB_END_TIME"])
    job = os.environ.get("SLURM_JOB_ID")
    if not job or not shutil.which("squeue"):
        return None
    result = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True, text=True, timeout=60
    )
    return parse_end_time(result.stdout) if result.returncode == 0 else None


class StopRequested:
    """Set by SIGUSR1/SIGTERM: save a checkpoint at the end of the step, then exit."""

    def __init__(self):
        self.requested = False
        self.reason = ""
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        log.warning("signal %d: checkpointing after this step", signum)
        self.requested, self.reason = True, signal.Signals(signum).name


def note(run_dir: Path, event: str, step: int, **extra: Any) -> None:
    """Append one line to the run's history.jsonl: every start, stop and finish of every
    attempt (job id, restart count), which the per-attempt job logs do not keep."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "event": event,
        "step": step,
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart": os.environ.get("SLURM_RESTART_COUNT"),
        **extra,
    }
    with (run_dir / "history.jsonl").open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def fit_variant(
    cache_dirs: Sequence[Path],
    cue_dirs: Sequence[Path],
    out_dir: Path,
    run_root: Path,
    settings: Train,
    variant_name: str,
    model_source: str,
    code_hash: str,
    allow_download: bool = True,
    init: Path | None = None,
    probe=None,
) -> Path:
    """`stance train fit`: train the named variant on every cache file of the folders,
    from models.video's transformer or, with `init`, from the pretrained backbone; a
    `probe` (generate/validation.py) measures cue control on the validation clips."""
    if variant_name not in settings.variants:
        raise UserError(
            f"unknown variant {variant_name!r}; train.variants has {sorted(settings.variants)}"
        )
    if settings.pretrain_steps and init is None:
        raise UserError(
            f"train.pretrain_steps is {settings.pretrain_steps}: variants are fine-tuned from "
            "the pretrained backbone; pass --init <its folder> (stance train pretrain writes "
            "it) or set train.pretrain_steps: 0 to train from models.video as given"
        )
    files = sorted(p for folder in cache_dirs for p in Path(folder).glob("*.safetensors"))
    variant = settings.variants[variant_name]
    return train(
        files,
        cue_dirs,
        out_dir,
        run_root,
        settings,
        variant_name,
        variant,
        model_source,
        code_hash,
        allow_download,
        init,
        probe,
    )


def train(
    cache_files: Sequence[Path],
    cue_dirs: Sequence[Path],
    out_dir: Path,
    run_root: Path,
    settings: Train,
    variant_name: str,
    variant: Variant,
    model_source: str,
    code_hash: str,
    allow_download: bool = True,
    init: Path | None = None,
    probe=None,
) -> Path:
    """Train one variant; returns the final model folder (a diffusers transformer)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import CogVideoXDPMScheduler
    from tqdm import tqdm

    files = sorted(cache_files)
    cues = cue_store_paths(cue_dirs) if cue_dirs else None  # None: no cues (pretraining)
    start_weights = sorted((Path(init) / "transformer").glob("*")) if init else []
    inputs = input_fingerprint(
        [*files, *(cues[p.stem] for p in files if p.stem in (cues or {})), *start_weights]
    )
    run_dir = run_root / variant_name / run_hash(settings, variant, model_source, files, inputs)
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
    set_seed(settings.seed)
    aux = variant.aux
    identity = as_dict(variant)
    model = components.stance_transformer(model_source, identity, allow_download, init=init)
    frozen = model.freeze_unused()
    if frozen:
        log.info("variant %s does not use %s: frozen", variant_name, frozen)
    if settings.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    scheduler = components.load_component(
        CogVideoXDPMScheduler, model_source, "scheduler", allow_download
    )
    vae_cls = components.vae_class(model_source, allow_download)
    vae_config = components.load_config(vae_cls, model_source, "vae", allow_download)
    vae = None
    if settings.image_noise == "per_step":  # keyframes are noised and encoded every step
        vae = components.load_component(
            vae_cls,
            model_source,
            "vae",
            allow_download,
            torch_dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
        )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=settings.learning_rate,
        betas=settings.betas,
        weight_decay=settings.weight_decay,
    )
    # accelerate steps a prepared scheduler once per process at every optimiser step (as
    # diffusers' trainers, scale the warmup by the process count)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup(settings.lr_warmup_steps * accelerator.num_processes)
    )
    model_config = model.config
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    if vae is not None:
        vae.requires_grad_(False).eval().to(accelerator.device)
    dataset = CacheDataset(files, aux, cues, settings.image_noise)

    start_step = 0
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start_step = json.loads((checkpoint / DONE).read_text())["step"]
        log.info("resumed %s at step %d", checkpoint, start_step)
    accelerator.init_trackers(variant_name)
    stop = StopRequested()
    deadline = job_deadline()
    losses_path = run_dir / "losses.csv"
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        keep_losses(losses_path, start_step)
        note(run_dir, "start", start_step, processes=accelerator.num_processes)
        if probe is not None:
            probe.start(run_dir, start_step)
    progress = tqdm(
        range(start_step, settings.steps),
        initial=start_step,
        total=settings.steps,
        desc=f"train {variant_name}",
        disable=not accelerator.is_main_process,
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    batches = StepBatches(
        start_step,
        settings.steps,
        settings.micro_batch,
        len(dataset),
        settings.seed,
        rank,
        world,
    )
    workers = loader_workers(accelerator.device)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, prefetch_factor=4 if workers else None
    )
    step_seconds, started = [], time.perf_counter()  # per step, data reading included
    for step, batch in zip(progress, loader, strict=True):
        generator = torch.Generator(accelerator.device).manual_seed(
            settings.seed * 1_000_003 + step * world + rank
        )
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        encode_keyframes(vae, batch, generator)
        with accelerator.accumulate(model):
            terms = objective.training_step(
                model, scheduler, batch, vae_config, settings, generator, aux, model_config
            )
            loss = combine(terms, settings, step)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        values = {k: float(v.detach()) for k, v in terms.items()}
        accelerator.log({"loss": float(loss.detach()), **values}, step=step + 1)
        progress.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if accelerator.is_main_process:
            with losses_path.open("a") as handle:
                csv.writer(handle).writerow(
                    [step + 1, float(loss.detach()), values["rgb"], values.get("aux", "")]
                )
        done = step + 1
        step_seconds.append(time.perf_counter() - started)
        if probe is not None and (done % settings.validate_every == 0 or done == settings.steps):
            validate(accelerator, probe, model, variant, done)
        started = time.perf_counter()
        if deadline is not None and time.time() > deadline - settings.stop_before_limit_s:
            log.warning("%.0f s left before the job's time limit", deadline - time.time())
            stop.requested, stop.reason = True, "time limit"
        stop.requested = any_process(accelerator, stop.requested)
        if done % settings.checkpoint_every == 0 or stop.requested:
            save_checkpoint(accelerator, run_dir / "checkpoints", done, settings.keep_checkpoints)
        if stop.requested:
            reason = stop.reason or "another process stopped"
            log.warning("stopped at step %d (%s); rerun to resume", done, reason)
            if accelerator.is_main_process:
                note(run_dir, "stop", done, reason=reason)
            raise SystemExit(75)  # EX_TEMPFAIL: Slurm/Snakemake retry resumes from here

    accelerator.wait_for_everyone()
    accelerator.end_training()
    if accelerator.is_main_process:
        pace = step_pace(step_seconds)
        log.info("seconds per step: %s", pace)
        note(run_dir, "finish", settings.steps, **pace)
        final = out_dir / "transformer"
        accelerator.unwrap_model(model).save_pretrained(final)
        plot_losses(losses_path, out_dir / "loss_curve.png", variant_name)
        if probe is not None:
            probe.finish(out_dir, variant_name)
        shutil.copy(losses_path, out_dir / "losses.csv")
        provenance.write_resolved_config(
            out_dir,
            "train",
            {
                "train": as_dict(settings),
                "variant": {variant_name: as_dict(variant)},
                "model": model_source,
                "init": str(init) if init else None,
                "run_dir": str(run_dir),
                "code_hash": code_hash,
                "steps": settings.steps,
                "seconds_per_step": pace,
                "data": [p.name for p in files],
            },
        )
    return out_dir


def validate(accelerator, probe, model, variant: Variant, step: int) -> None:
    """The probe's row at this step on the main process (the others wait), logged."""
    if accelerator.is_main_process:
        row = probe.check(accelerator.unwrap_model(model), variant, step)
        accelerator.log({f"val/{k}": v for k, v in row.items() if k != "step"}, step=step)
    accelerator.wait_for_everyone()


def step_pace(seconds: Sequence[float]) -> dict[str, float]:
    """Median seconds per step of this attempt, over all its steps and over its last half
    (after the first epoch's reads, when the items are kept in memory)."""
    if not seconds:
        return {}
    return {
        "median": round(float(np.median(seconds)), 4),
        "median_last_half": round(float(np.median(seconds[len(seconds) // 2 :])), 4),
    }


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


def any_process(accelerator, flag: bool) -> bool:
    """True on every process when it is true on one: a checkpoint is a collective save,
    so a signal or deadline seen by one rank must stop all of them at the same step."""
    if accelerator.num_processes == 1:
        return flag
    votes = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(votes, reduction="sum").item() > 0)


def combine(terms: Mapping[str, torch.Tensor], settings: Train, step: int) -> torch.Tensor:
    """L_rgb + lambda * L_aux, or the authors' choice: one of the two per step."""
    if "aux" not in terms:
        return terms["rgb"]
    if settings.aux_loss == "alternating":
        pick = np.random.default_rng([settings.seed, step]).uniform() < 0.5
        return terms["aux"] if pick else terms["rgb"]
    return terms["rgb"] + settings.lambda_aux * terms["aux"]


def keep_losses(path: Path, last_step: int) -> None:
    """Start the loss log, or drop rows a killed job logged after its last checkpoint."""
    rows = path.read_text().splitlines()[1:] if path.exists() else []
    kept = [r for r in rows if int(r.split(",")[0]) <= last_step]
    path.write_text("\n".join(["step,loss,rgb,aux", *kept]) + "\n")


def save_checkpoint(accelerator, folder: Path, step: int, keep: int) -> None:
    target = folder / f"step-{step:07d}"
    accelerator.save_state(str(target))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (target / DONE).write_text(json.dumps({"step": step, "time": time.time()}))
        complete = sorted(p.parent for p in folder.glob(f"step-*/{DONE}"))
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def plot_losses(csv_path: Path, png_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.read_csv(csv_path)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(frame["step"], frame["loss"], label="loss")
    if frame["aux"].notna().any():
        ax.plot(frame["step"], frame["rgb"], label="rgb", alpha=0.7)
        ax.plot(frame["step"], frame["aux"], label="aux", alpha=0.7)
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
