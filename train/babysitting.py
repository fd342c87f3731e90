"""Babysitting a training run: checkpoints (written completely before they count), the
Slurm job's deadline, stop signals, and the run's history of attempts."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DONE = "COMPLETE"  # marker written after a checkpoint is fully saved


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


def any_process(accelerator, flag: bool) -> bool:
    """True on every process when it is true on one: a checkpoint is a collective save,
    so a signal or deadline seen by one rank must stop all of them at the same step."""
    if accelerator.num_processes == 1:
        return flag
    votes = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(votes, reduction="sum").item() > 0)


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
