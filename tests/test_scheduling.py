"""Snakemake's scheduler keeps one pending wake-up timer (stance/scheduling.py)."""

import threading
import time
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

from stance import scheduling


def released(semaphore: threading.Semaphore, within: float) -> int:
    """How many releases `semaphore` gets within `within` seconds."""
    count, end = 0, time.monotonic() + within
    while semaphore.acquire(timeout=max(end - time.monotonic(), 0)):
        count += 1
    return count


def test_the_project_snakefile_patches_the_scheduler_it_runs():
    assert scheduling.coalesce_wakeups()
    assert JobScheduler._schedule_reevalutation is scheduling.schedule_wakeup
    assert scheduling.coalesce_wakeups()  # a second call changes nothing


def test_wakeups_requested_while_one_is_pending_fire_once():
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    for _ in range(50):  # fifty passes each asking to be woken in 0.1 s
        scheduling.schedule_wakeup(scheduler, 0.1)
    assert released(scheduler._open_jobs, 0.6) == 1
    # the pass that wake-up started may arm the next one
    scheduling.schedule_wakeup(scheduler, 0.1)
    assert released(scheduler._open_jobs, 0.6) == 1


def test_a_sooner_wakeup_is_not_held_back_by_a_later_one():
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    scheduling.schedule_wakeup(scheduler, 30.0)  # e.g. the queue-input wait
    scheduling.schedule_wakeup(scheduler, 0.1)
    assert released(scheduler._open_jobs, 0.6) == 1
