"""Which floating-point precision a job computes in, decided in one place.

`auto` trains in bf16 autocast where the hardware has bf16 arithmetic: every CUDA GPU the
project targets, and CPUs with bf16 instructions (AVX512-BF16 or AMX), where a small
transformer's training step runs ~1.7x faster than in float32. Elsewhere float32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPU_BF16_MATRIX_FLAG = "amx_bf16"


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(
        next(
            (
                line.split(":", 1)[1].split()
                for line in text.splitlines()
                if line.startswith("flags")
            ),
            [],
        )
    )


def cpu_has_bf16() -> bool:
    """True when the CPU advertises bf16 arithmetic."""
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


# What attention runs in under CPU bf16 autocast: "auto" decides by the CPU; "bf16" and
# "float32" are set by `stance bench train --cpu-attention` to time both on one machine.
cpu_attention = "auto"


def cpu_attention_in_float32() -> bool:
    """Whether attention under CPU bf16 autocast runs in float32. Where bf16 comes from
    AVX512-BF16 alone (no AMX matrix units), PyTorch's CPU flash-attention kernel is slower
    in bf16 than in float32: a `smallfine` training step runs ~15 % faster with float32
    attention there (docs/benchmarks.md). With AMX, bf16 stays."""
    if cpu_attention != "auto":
        return cpu_attention == "float32"
    return CPU_BF16_MATRIX_FLAG not in cpu_flags()


def attention_in_float32(device: torch.device) -> bool:
    """True for attention on a CPU under bf16 autocast that should run in float32."""
    return device.type == "cpu" and torch.is_autocast_enabled("cpu") and cpu_attention_in_float32()


def resolve(setting: str, cuda: bool | None = None) -> str:
    """train.mixed_precision -> the accelerate mixed-precision mode ("no", "bf16", "fp16")."""
    if setting != "auto":
        return setting
    cuda = torch.cuda.is_available() if cuda is None else cuda
    return "bf16" if cuda or cpu_has_bf16() else "no"


def inference_dtype(device: str | torch.device) -> torch.dtype:
    """What frozen networks run in when the config says `auto`: bf16 on a GPU, float32
    on a CPU (where frozen encoders and samplers gain little and drift from references)."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
