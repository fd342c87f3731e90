"""Peak memory and time per job kind of a finished run, from Snakemake's benchmark files.

    python scripts/peak_memory.py RUN_DIR        # RUN_DIR holds benchmarks/<rule>/...tsv

Prints a Markdown table per rule: jobs, peak RSS (max_rss), the longest job, the jobs'
wall time added up (what a run's phases cost when jobs run side by side) and their CPU
time (core-seconds).
Used with configs/memory.yaml for the table in docs/benchmarks.md at the paper's clip geometry.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

FIELDS = ("max_rss_mb", "max_seconds", "seconds", "cpu_seconds")


def peak_memory(run_dir: Path) -> dict[str, dict[str, float]]:
    """{rule: {"jobs", "max_rss_mb", "max_seconds", "seconds", "cpu_seconds"}} over
    benchmarks/<rule>/**.tsv and benchmarks/<rule>.tsv."""
    root = Path(run_dir) / "benchmarks"
    if not root.is_dir():
        raise SystemExit(f"{root} does not exist: pass the folder a snakemake run ran in")
    table: dict[str, dict[str, float]] = {}
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        with path.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                entry = table.setdefault(rule, dict.fromkeys(FIELDS, 0.0) | {"jobs": 0})
                entry["jobs"] += 1
                entry["max_rss_mb"] = max(entry["max_rss_mb"], _number(row.get("max_rss", "NA")))
                entry["max_seconds"] = max(entry["max_seconds"], float(row["s"]))
                entry["seconds"] += float(row["s"])
                entry["cpu_seconds"] += _number(row.get("cpu_time", "NA"))
    return table


def _number(value: str) -> float:
    return 0.0 if value in ("NA", "-", "") else float(value)


def markdown(table: dict[str, dict[str, float]]) -> str:
    lines = [
        "| job kind | jobs | peak RSS | longest job | all jobs | CPU time |",
        "|---|---|---|---|---|---|",
    ]
    for rule, entry in sorted(table.items(), key=lambda item: -item[1]["max_rss_mb"]):
        lines.append(
            f"| {rule} | {entry['jobs']} | {entry['max_rss_mb'] / 1024:.2f} GiB "
            f"| {entry['max_seconds']:.0f} s | {entry['seconds'] / 60:.1f} min "
            f"| {entry['cpu_seconds'] / 60:.1f} min |"
        )
    jobs, total, cpu = (
        sum(e[k] for e in table.values()) for k in ("jobs", "seconds", "cpu_seconds")
    )
    lines.append(f"| all | {jobs} | | | {total / 60:.1f} min | {cpu / 60:.1f} min |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(markdown(peak_memory(Path(sys.argv[1]))))
