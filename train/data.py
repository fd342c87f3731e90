"""Training data: a clip's item (cached latents, keyframes and prompt, and its cue map
from the clip's cue store) and the order of micro-batches, a function of the step so that
a resumed run reads what an uninterrupted one would."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from stance import stores
from stance.cues import store as cue_store
from stance.train import encode

MEMORY_BUDGET = 2 * 2**30  # bytes of training items a process keeps after reading them


class CacheDataset(torch.utils.data.Dataset):
    """Training items: a clip's cache (latents, keyframes, prompt) + its cue map, read from
    the clip's cue store (the cache holds no cues, so cue changes never re-encode)."""

    def __init__(
        self,
        files: Sequence[Path],
        aux: str,
        cue_stores: Mapping[str, Path] | None,
        image_noise: str = "per_step",
    ):
        if not files:
            raise FileNotFoundError(
                "no training cache files (*.safetensors): run the encode "
                "stage (stance train encode)"
            )
        known = cue_stores if cue_stores is not None else {p.stem for p in files}
        missing = sorted(p.stem for p in files if p.stem not in known)
        if missing:
            raise stores.StoreError(
                f"no cue store for {len(missing)} cached clip(s) ({', '.join(missing[:3])}"
                f"{', ...' if len(missing) > 3 else ''}): run the cue stage for their shards "
                "(snakemake cue_shard targets) or pass the matching --cues folders"
            )
        # None: items without cues (the pretrained backbone reads no cue store)
        self.files, self.aux = list(files), aux
        self.cue_stores = None if cue_stores is None else dict(cue_stores)
        self.image_noise = image_noise
        self.kept: dict[int, dict[str, torch.Tensor]] = {}
        self.keep: bool | None = None  # whether the set fits MEMORY_BUDGET: at the 1st read

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """A clip's item, kept in memory after its first read when the whole set fits in
        MEMORY_BUDGET: a small model's step is then not spent opening stores (opening and
        checking a cue store costs ~10 ms, the small-scale model's step ~0.12 s for 16)."""
        if index in self.kept:
            return self.kept[index]
        item = self.read(index)
        if self.keep is None:
            size = sum(t.numel() * t.element_size() for t in item.values()) * len(self)
            self.keep = size <= MEMORY_BUDGET
        if self.keep:
            self.kept[index] = item
        return item

    def read(self, index: int) -> dict[str, torch.Tensor]:
        # batch key -> cache tensor: keyframes (noised per step) or cached image latents
        conditions = {"image_latents": "rgb"}
        wanted = {"video_latents": "video_latents", "prompt_embeds": "prompt_embeds"}
        if self.aux != "none":
            conditions["aux_image_latents"] = self.aux
            wanted["aux_latents"] = f"{self.aux}_latents"
        for key, stream in conditions.items():
            if self.image_noise == "per_step":
                wanted[f"{key}_keyframe"] = f"{stream}_keyframe"
            else:
                wanted[key] = encode.image_latent_name(stream)
        tensors, _ = encode.read_cache(self.files[index], tuple(wanted.values()))
        item = {key: tensors[name] for key, name in wanted.items()}
        if self.cue_stores is None:
            return item
        cue = cue_store.read_cue(self.cue_stores[self.files[index].stem])
        item["cues"] = torch.from_numpy(cue[0]).permute(2, 0, 1).contiguous()
        return item


def cache_files(folders: Sequence[Path]) -> list[Path]:
    """The training cache files (*.safetensors) of the cache shard folders, sorted."""
    return sorted(p for folder in folders for p in Path(folder).glob("*.safetensors"))


def cue_store_paths(folders: Sequence[Path]) -> dict[str, Path]:
    """clip id -> cue store, over the cue shard folders."""
    return {p.stem: p for folder in folders for p in sorted(Path(folder).glob("*.zarr"))}


def batch_indices(
    step: int, size: int, n: int, seed: int, rank: int = 0, world: int = 1
) -> list[int]:
    """Dataset indices of a process's micro-batch at a global step: a seeded permutation
    per epoch, so any step's batch is known without replaying the ones before it."""
    out = []
    for slot in range(size):
        position = (step * world + rank) * size + slot
        epoch, offset = divmod(position, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[offset]))
    return out


class StepBatches(torch.utils.data.Sampler):
    """Each step's micro-batch indices from `start` on (`batch_indices`), for a DataLoader
    whose workers read ahead: the order stays a function of the step, so resuming works."""

    def __init__(self, start: int, steps: int, size: int, n: int, seed: int, rank, world):
        self.start, self.steps, self.args = start, steps, (size, n, seed, rank, world)

    def __iter__(self):
        return (batch_indices(step, *self.args) for step in range(self.start, self.steps))

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


def loader_workers(device: torch.device) -> int:
    """Reader processes: none on a CPU (they would take cores from the model); on a GPU a
    few, so that reading caches and cue stores overlaps the steps instead of stalling them."""
    return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) // 2))
