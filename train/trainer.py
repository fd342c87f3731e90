"""STANCE fine-tuning with accelerate: deterministic data order, checkpoints, resume.

A run lives in `<run_root>/<variant>/<run hash>/` (`build.open_run`), where the hash
covers the training settings, the variant, the model and the training cache list: a
changed config starts a new run, the same config continues the old one. Checkpoints
(accelerate state: model, optimizer, RNG) are written every `checkpoint_every` steps,
`stop_before_limit_s` before the Slurm job's time limit, and on SIGUSR1/SIGTERM; the job
then exits with 75 and Snakemake's retries resubmit it (history.jsonl in the run folder
lists every attempt's start, stop and finish). A restarted job resumes from the newest
complete checkpoint with the same step count and data order, so a killed-and-resumed run
ends with the same weights as an uninterrupted one. Snakemake's declared output is only
the final model folder, so deleting an incomplete output never deletes checkpoints.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from stance import provenance
from stance.errors import UserError
from stance.settings import Train, Variant, as_dict, replace
from stance.train import encode, objective
from stance.train.babysitting import (
    DONE,
    StopRequested,
    any_process,
    job_deadline,
    keep_losses,
    latest_checkpoint,
    note,
    save_checkpoint,
)
from stance.train.build import Job, Run, open_run
from stance.train.data import (
    StepBatches,
    cache_files,
    loader_workers,
)

log = logging.getLogger(__name__)


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


def fit_variant(
    *,
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
    variant = settings.variants[variant_name]
    # A replicate: its training (weights of new modules, noise, timesteps, batch order) is
    # seeded by its own seed; the validation probe keeps train.seed, so every replicate's
    # validation clips are sampled with the same noise.
    if variant.seed is not None:
        settings = replace(settings, seed=variant.seed)
    job = Job(
        cache_files=cache_files(cache_dirs),
        cue_dirs=cue_dirs,
        out_dir=out_dir,
        run_root=run_root,
        settings=settings,
        name=variant_name,
        variant=variant,
        model_source=model_source,
        code_hash=code_hash,
        allow_download=allow_download,
        init=init,
    )
    return train(job, probe)


def train(job: Job, probe=None) -> Path:
    """Train one job; returns the final model folder (a diffusers transformer)."""
    from tqdm import tqdm

    run, settings = open_run(job), job.settings
    accelerator = run.accelerator
    start_step = resume(run, probe)
    progress = tqdm(
        range(start_step, settings.steps),
        initial=start_step,
        total=settings.steps,
        desc=f"train {job.name}",
        disable=not accelerator.is_main_process,
    )
    stop, deadline = StopRequested(), job_deadline()
    step_seconds, started = [], time.perf_counter()  # per step, data reading included
    for step, batch in zip(progress, batches(run, start_step), strict=True):
        loss = optimise(run, step, batch)
        progress.set_postfix(loss=f"{loss:.4f}")
        done = step + 1
        step_seconds.append(time.perf_counter() - started)
        if probe is not None and (done % settings.validate_every == 0 or done == settings.steps):
            with run.averaged_weights():
                validate(accelerator, probe, run.model, job.variant, done)
        started = time.perf_counter()
        checkpoint_or_stop(run, done, stop, deadline)
    accelerator.wait_for_everyone()
    try:
        if accelerator.is_main_process:
            finish(run, probe, step_pace(step_seconds))
    finally:  # the other ranks must not wait for a main process that failed
        close(run)
    return job.out_dir


def checkpoint_or_stop(run: Run, done: int, stop: StopRequested, deadline: float | None) -> None:
    """After step `done`: a checkpoint when one is due; when a signal came, the job's time
    limit is near or another process stopped, a checkpoint and exit 75 on every rank."""
    accelerator, settings = run.accelerator, run.settings
    if deadline is not None and time.time() > deadline - settings.stop_before_limit_s:
        log.warning("%.0f s left before the job's time limit", deadline - time.time())
        stop.requested, stop.reason = True, "time limit"
    stop.requested = any_process(accelerator, stop.requested)
    if done % settings.checkpoint_every == 0 or stop.requested:
        save_checkpoint(accelerator, run.run_dir / "checkpoints", done, settings.keep_checkpoints)
    if stop.requested:
        reason = stop.reason or "another process stopped"
        log.warning("stopped at step %d (%s); rerun to resume", done, reason)
        if accelerator.is_main_process:
            note(run.run_dir, "stop", done, reason=reason)
        close(run)  # every rank stops at this step (any_process)
        raise SystemExit(75)  # EX_TEMPFAIL: Slurm/Snakemake retry resumes from here


def close(run: Run) -> None:
    """Tear the run down on every process in lockstep. Each rank drops its DDP/DeepSpeed
    wrapper while the process group is still up and every peer is alive; only then is the
    group destroyed. (Freed after the group was destroyed, as when `train` returned, a
    wrapper took the last reference to the gloo group with it, whose destructor could wait
    forever for a peer that had already exited.)"""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()  # the main process has written the results
    run.model = run.optimizer = run.schedule = None
    accelerator.free_memory()  # its own references, then the garbage collector
    accelerator.wait_for_everyone()
    accelerator.end_training()  # trackers, then the process group


def resume(run: Run, probe=None) -> int:
    """Load the newest complete checkpoint (if any), start the logs; the step to start at."""
    accelerator, start_step = run.accelerator, 0
    checkpoint = latest_checkpoint(run.run_dir / "checkpoints")
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start_step = json.loads((checkpoint / DONE).read_text())["step"]
        log.info("resumed %s at step %d", checkpoint, start_step)
    accelerator.init_trackers(run.name)
    if accelerator.is_main_process:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        keep_losses(run.run_dir / "losses.csv", start_step)
        note(run.run_dir, "start", start_step, processes=accelerator.num_processes)
        if probe is not None:
            probe.start(run.run_dir, start_step)
    return start_step


def batches(run: Run, start_step: int):
    """This process's micro-batches from `start_step` on, read ahead by a DataLoader."""
    settings, accelerator = run.settings, run.accelerator
    sampler = StepBatches(
        start_step,
        settings.steps,
        settings.micro_batch,
        len(run.dataset),
        settings.seed,
        accelerator.process_index,
        accelerator.num_processes,
    )
    workers = loader_workers(accelerator.device)
    return torch.utils.data.DataLoader(
        run.dataset,
        batch_sampler=sampler,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
    )


def optimise(run: Run, step: int, batch: dict[str, torch.Tensor]) -> float:
    """One optimiser step (with accumulation) on a micro-batch; logs and returns the loss."""
    accelerator, settings, model = run.accelerator, run.settings, run.model
    rank, world = accelerator.process_index, accelerator.num_processes
    generator = torch.Generator(accelerator.device).manual_seed(
        settings.seed * 1_000_003 + step * world + rank
    )
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    encode_keyframes(run.vae, batch, generator)
    with accelerator.accumulate(model):
        terms = objective.training_step(
            model,
            run.scheduler,
            batch,
            run.vae_config,
            settings,
            generator,
            run.variant.aux,
            run.model_config,
        )
        loss = combine(terms, settings, step)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        run.optimizer.step()
        run.schedule.step()
        run.optimizer.zero_grad()
        if run.ema is not None and accelerator.sync_gradients:
            run.ema.step(run.ema_params)
    values = {k: float(v.detach()) for k, v in terms.items()}
    total = float(loss.detach())
    accelerator.log({"loss": total, **values}, step=step + 1)
    if accelerator.is_main_process:
        with (run.run_dir / "losses.csv").open("a") as handle:
            csv.writer(handle).writerow([step + 1, total, values["rgb"], values.get("aux", "")])
    return total


def finish(run: Run, probe, pace: dict[str, float]) -> None:
    """The final weights, loss (and validation) curves and the record beside them."""
    job = run.job
    out_dir = job.out_dir
    log.info("seconds per step: %s", pace)
    note(run.run_dir, "finish", run.settings.steps, **pace)
    with run.averaged_weights():  # the saved transformer is the average, when kept
        run.accelerator.unwrap_model(run.model).save_pretrained(out_dir / "transformer")
    losses = run.run_dir / "losses.csv"
    plot_losses(losses, out_dir / "loss_curve.png", run.name)
    if probe is not None:
        probe.finish(out_dir, run.name)
    shutil.copy(losses, out_dir / "losses.csv")
    provenance.write_resolved_config(
        out_dir,
        "train",
        {
            "train": as_dict(run.settings),
            "variant": {run.name: as_dict(run.variant)},
            "model": job.model_source,
            "init": str(job.init) if job.init else None,
            "run_dir": str(run.run_dir),
            "code_hash": job.code_hash,
            "steps": run.settings.steps,
            "seconds_per_step": pace,
            "data": [p.name for p in job.cache_files],
        },
    )


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


def combine(terms: Mapping[str, torch.Tensor], settings: Train, step: int) -> torch.Tensor:
    """L_rgb + lambda * L_aux, or the authors' choice: one of the two per step."""
    if "aux" not in terms:
        return terms["rgb"]
    if settings.aux_loss == "alternating":
        pick = np.random.default_rng([settings.seed, step]).uniform() < 0.5
        return terms["aux"] if pick else terms["rgb"]
    return terms["rgb"] + settings.lambda_aux * terms["aux"]


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
