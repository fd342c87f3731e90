"""Random draws that are device-correct and deterministic.

Every random tensor in training and sampling is drawn on the device of the generator that
makes it (a CUDA generator on a GPU, a CPU generator on CPU) and then moved to where it is
used. torch refuses a generator of one device for a draw on another, and drawing on the
generator's device keeps a run's draws identical whatever device the data lives on.
"""

from __future__ import annotations

import torch


def _source(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def randn(shape, generator: torch.Generator | None, device, dtype=None) -> torch.Tensor:
    source = _source(generator, device)
    return torch.randn(shape, generator=generator, device=source, dtype=dtype).to(device)


def rand(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=_source(generator, device)).to(device)


def randint(high: int, shape, generator: torch.Generator | None, device) -> torch.Tensor:
    source = _source(generator, device)
    return torch.randint(0, high, shape, generator=generator, device=source).to(device)


def randperm(n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    source = _source(generator, device)
    return torch.randperm(n, generator=generator, device=source).to(device)
