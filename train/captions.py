"""Captions for synthetic clips, written from the render metadata (no captioning model)."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from typing import Any

NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
HUES = [
    (0.0, "red"),
    (0.08, "orange"),
    (0.15, "yellow"),
    (0.33, "green"),
    (0.5, "cyan"),
    (0.62, "blue"),
    (0.78, "purple"),
    (0.9, "pink"),
    (1.0, "red"),
]


def colour_name(rgb: Sequence[float]) -> str:
    hue, light, sat = colorsys.rgb_to_hls(*rgb)
    if sat < 0.2:
        return "white" if light > 0.8 else "black" if light < 0.2 else "grey"
    return min(HUES, key=lambda h: abs(h[0] - hue))[1]


def describe(instances: Sequence[Mapping[str, Any]]) -> str:
    """'three objects on the floor: a red metal cube, a blue rubber sphere and ...'."""
    parts = [f"a {colour_name(i['color'])} {i['material']} {i['shape']}" for i in instances]
    count = NUMBERS[len(parts)] if len(parts) < len(NUMBERS) else "many"
    listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    moving = "moving" if any(i.get("dynamic", True) for i in instances) else "resting"
    return f"{count} objects {moving} on the floor: {listed}."
