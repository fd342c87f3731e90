"""Peak memory per job kind of a finished run, from Snakemake's benchmark files.

    python scripts/peak_memory.py RUN_DIR        # RUN_DIR holds benchmarks/<rule>/...tsv

Prints a Markdown table: jobs, peak RSS (max_rss, MB) and longest wall time per rule.
Used with configs/memory.yaml for the table in docs/benchmarks.md at the paper's clip geometry.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def peak_memory(run_dir: Path) -> dict[str, dict[str, float]]:
    """{rule: {"jobs", "max_rss_mb", "max_seconds"}} over benchmarks/<rule>/**.tsv and
    benchmarks/<rule>.tsv."""
    root = Path(run_dir) / "benchmarks"
    if not root.is_dir():
        raise SystemExit(f"{root} does not exist: pass the folder a snakemake run ran in")
    table: dict[str, dict[str, float]] = {}
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        with path.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                entry = table.setdefault(rule, {"jobs": 0, "max_rss_mb": 0.0, "max_seconds": 0.0})
                entry["jobs"] += 1
                rss = row.get("max_rss", "NA")
                if rss not in ("NA", "-", ""):
                    entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss))
                entry["max_seconds"] = max(entry["max_seconds"], float(row["s"]))
    return table


def markdown(table: dict[str, dict[str, float]]) -> str:
    lines = ["| job kind | jobs | peak RSS | longest job |", "|---|---|---|---|"]
    for rule, entry in sorted(table.items(), key=lambda item: -item[1]["max_rss_mb"]):
        lines.append(
            f"| {rule} | {entry['jobs']} | {entry['max_rss_mb'] / 1024:.2f} GiB "
            f"| {entry['max_seconds']:.0f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(markdown(peak_memory(Path(sys.argv[1]))))
