"""One pending wake-up timer in Snakemake's job scheduler (`coalesce_wakeups`).

Snakemake 9's scheduler (`snakemake.scheduling.job_scheduler.JobScheduler`) ends every
scheduling pass that leaves ready jobs waiting by starting a `threading.Timer` that wakes
the scheduler again after one timespan of `--max-jobs-per-timespan` (1 s by default).
Every wake-up runs a pass, and every such pass starts another timer, so each job that
finishes while other jobs wait for cores adds one more timer chain, and the chains live
as long as jobs wait. On a 2-core machine, after the hundred-odd data jobs of a small
run, the scheduler made about 110 passes a second during pretraining and took 10 % of a
core from the training. One pending timer wakes the scheduler as often as the timespan
asks, so a second one is redundant: `coalesce_wakeups` starts a timer only where none is
due sooner. Job completions still wake the scheduler at once, as before.
"""

from __future__ import annotations

import threading
import time

_LOCK = threading.Lock()


def coalesce_wakeups() -> bool:
    """Patch Snakemake's scheduler to keep at most one pending wake-up timer. Returns
    False, changing nothing, where Snakemake has no such method (another version)."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):
        return False
    JobScheduler._schedule_reevalutation = schedule_wakeup  # again: the same function
    return True


def schedule_wakeup(scheduler, delay: float) -> None:
    """Release the scheduler's pass semaphore after `delay` seconds, unless a wake-up
    already pending comes as soon. The due time is cleared before the release, so the
    pass it wakes can arm the next one."""
    due = time.monotonic() + delay
    with _LOCK:
        pending = getattr(scheduler, "_wakeup_due", None)
        if pending is not None and pending <= due:
            return
        scheduler._wakeup_due = due

    def wake():
        with _LOCK:
            if getattr(scheduler, "_wakeup_due", None) == due:
                scheduler._wakeup_due = None
        scheduler._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True  # a pending wake-up never holds the process open at exit
    timer.start()
