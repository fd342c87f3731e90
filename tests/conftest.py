"""Shared fixtures: the repository root, tiny configs, and rendering through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `stance` console script of this environment (Blender runs in a subprocess)."""
    result = subprocess.run([str(BIN / "stance"), *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"stance {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def tiny_render_settings() -> dict:
    from stance import config

    return config.validate(
        {"render": {"resolution": 32, "frames": 9, "samples_per_pixel": 1, "threads": 1}}
    )


@pytest.fixture
def write_config(tmp_path):
    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write
