"""Clips, seeds and shards: how a split is cut into jobs.

A clip is identified by its split and seed (``test-02000003``). Seeds of a split are the
contiguous range [seed_offset, seed_offset + clips); shard k holds the k-th run of
``clips_per_shard`` of them, so the DAG has one job per shard, never one per clip.
"""

from __future__ import annotations

from dataclasses import dataclass

from stance.settings import Data

SHARD_DIGITS = 5


@dataclass(frozen=True)
class Clip:
    split: str
    seed: int

    @property
    def clip_id(self) -> str:
        return f"{self.split}-{self.seed:08d}"


def shard_name(index: int) -> str:
    return f"{index:0{SHARD_DIGITS}d}"


def num_shards(data: Data, split: str) -> int:
    return -(-data.splits[split].clips // data.clips_per_shard)


def shards(data: Data, split: str) -> list[str]:
    return [shard_name(i) for i in range(num_shards(data, split))]


def shard_clips(data: Data, split: str, shard: str) -> list[Clip]:
    spec, per = data.splits[split], data.clips_per_shard
    index = int(shard)
    if not 0 <= index < num_shards(data, split):
        raise ValueError(f"shard {shard} does not exist in split {split}")
    start = index * per
    stop = min(start + per, spec.clips)
    return [Clip(split, spec.seed_offset + i) for i in range(start, stop)]
