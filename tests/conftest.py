"""Shared fixtures (helpers shared by test modules live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_render_settings():
    from stance import config

    return config.section_settings(
        "render", {"resolution": 32, "frames": 9, "samples_per_pixel": 1, "threads": 1}
    )


@pytest.fixture
def write_config(tmp_path):
    def write(data: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write
