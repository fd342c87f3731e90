"""Distinct, stable colours for instance ids (segmentation pictures and aux videos)."""

import numpy as np


def palette(ids: np.ndarray) -> np.ndarray:
    """(...) integer ids -> (..., 3) uint8 colours; id 0 (background) is black."""
    rng = np.random.default_rng(7)
    colours = rng.integers(64, 256, size=(int(ids.max(initial=0)) + 1, 3), dtype=np.uint8)
    colours[0] = 0
    return colours[ids]
