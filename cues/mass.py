"""The mass channel: per-instance mass in kilograms -> a normalised cue value."""

from __future__ import annotations

import numpy as np

from stance.settings import Mass


def normalise(mass_kg: np.ndarray, params: Mass) -> np.ndarray:
    """`log`: log(m / reference) (0 at the reference mass); `linear`: m / reference."""
    ratio = np.asarray(mass_kg, dtype=np.float64) / params.reference_kg
    if params.normalization == "log":
        return np.log(ratio)
    return ratio
