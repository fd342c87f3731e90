"""scripts/peak_memory.py: peak RSS per job kind from Snakemake benchmark files."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "peak_memory.py"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _tsv(path: Path, seconds: float, rss: str, cpu: str = "1") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n")


def test_peaks_are_taken_per_rule_over_wildcard_folders(tmp_path):
    script = runpy.run_path(str(SCRIPT))
    _tsv(tmp_path / "benchmarks/render_shard/train/00000.tsv", 10, "900.5")
    _tsv(tmp_path / "benchmarks/render_shard/test/00000.tsv", 30, "700", cpu="50")
    _tsv(tmp_path / "benchmarks/evaluate_tables.tsv", 2, "NA", cpu="NA")
    table = script["peak_memory"](tmp_path)
    assert table["render_shard"] == {
        "jobs": 2,
        "max_rss_mb": 900.5,
        "max_seconds": 30.0,
        "seconds": 40.0,
        "cpu_seconds": 51.0,
    }
    assert table["evaluate_tables"]["max_rss_mb"] == table["evaluate_tables"]["cpu_seconds"] == 0
    text = script["markdown"](table)
    assert text.index("render_shard") < text.index("evaluate_tables")
    assert "0.88 GiB" in text and "| 0.7 min | 0.8 min |" in text
    assert text.splitlines()[-1] == "| all | 3 | | | 0.7 min | 0.8 min |"
    with pytest.raises(SystemExit, match="does not exist"):
        script["peak_memory"](tmp_path / "elsewhere")
