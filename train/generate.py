"""Generate videos with a trained STANCE variant from cue stores (test clips or hints).

Output folder: `<clip_id>.mp4` (RGB), `<clip_id>.aux.mp4` (decoded auxiliary stream, for
RGB+Depth / RGB+Seg variants) and `generate.resolved.json`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stance import provenance, stores, video
from stance.cues import store as cue_store
from stance.train import components

log = logging.getLogger(__name__)


def load_pipeline(model_source: str, trained: Path, allow_download: bool = True):
    """The base pipeline's frozen parts + the fine-tuned STANCE transformer."""
    from stance.train.model import StanceTransformer
    from stance.train.pipeline import StanceImageToVideoPipeline

    if not (trained / "transformer" / "config.json").exists():
        raise stores.StoreError(f"{trained} holds no trained transformer: run stance train fit")
    frozen = components.load_frozen(model_source, allow_download)
    transformer = StanceTransformer.from_pretrained(trained / "transformer").eval()
    pipe = StanceImageToVideoPipeline(transformer=transformer, **frozen)
    pipe.to("cuda" if torch.cuda.is_available() else "cpu")
    pipe.set_progress_bar_config(disable=True)
    record = json.loads((trained / "train.resolved.json").read_text())
    (variant,) = record["variant"].values()
    return pipe, variant["aux"] != "none"


def sample(
    pipe,
    cue: cue_store.CueClip,
    prompt: str,
    frames: int,
    settings: Mapping[str, Any],
    max_text: int,
    aux: bool,
):
    cues = cue.cue[0] if pipe.transformer.config.cue_mode != "none" else None
    return pipe.generate(
        cue.keyframe,
        cues,
        prompt,
        frames,
        settings["steps"],
        settings["guidance_scale"],
        settings["seed"],
        aux=aux,
        max_sequence_length=max_text,
    )


def write_result(result, path: Path, fps: int) -> None:
    """`<name>.mp4` for RGB and `<name>.aux.mp4` for the auxiliary stream, if any."""
    video.write_mp4(path, result.video, fps)
    if result.aux is not None:
        video.write_mp4(path.with_suffix(".aux.mp4"), result.aux, fps)


def generate_shard(
    cue_dir: Path,
    trained: Path,
    out_dir: Path,
    model_source: str,
    settings: Mapping[str, Any],
    train: Mapping[str, Any],
    frames: int,
    fps: int,
    code_hash: str,
    allow_download: bool = True,
) -> None:
    from tqdm import tqdm

    from stance.train.captions import describe

    out_dir.mkdir(parents=True, exist_ok=True)
    pipe, aux = load_pipeline(model_source, trained, allow_download)
    paths = sorted(cue_dir.glob("*.zarr"))
    if not paths:
        raise stores.StoreError(f"{cue_dir} holds no cue stores; run the cue stage")
    start = time.perf_counter()
    for path in tqdm(paths, desc=f"generate {cue_dir.name}", unit="clip"):
        cue = cue_store.read(path)
        prompt = describe(_instances(cue))
        result = sample(pipe, cue, prompt, frames, settings, train["max_text_seq_length"], aux)
        write_result(result, out_dir / f"{path.stem}.mp4", fps)
    provenance.write_resolved_config(
        out_dir,
        "generate",
        {
            "generate": dict(settings),
            "model": model_source,
            "trained": str(trained),
            "code_hash": code_hash,
            "clips": [p.stem for p in paths],
            "seconds": time.perf_counter() - start,
        },
    )


def _instances(cue: cue_store.CueClip) -> list[dict]:
    """Caption inputs from the render store the cue came from (colour/shape/material)."""
    from stance.render import store as clip_store

    source = cue.attrs.get("render_store")
    if source and Path(source).exists():
        return clip_store.open_attrs(source)["instances"]
    return [
        {"color": (0.5, 0.5, 0.5), "material": "rubber", "shape": "object"}
        for _ in cue.instances["u"]
    ]


def generate_from_store(
    store_path: Path,
    trained: Path,
    out: Path,
    model_source: str,
    settings: Mapping[str, Any],
    train: Mapping[str, Any],
    frames: int,
    fps: int,
    prompt: str,
    allow_download: bool = True,
) -> Path:
    pipe, aux = load_pipeline(model_source, trained, allow_download)
    result = sample(
        pipe,
        cue_store.read(store_path),
        prompt,
        frames,
        settings,
        train["max_text_seq_length"],
        aux,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(result, out, fps)
    log.info("generated %s", out)
    return out
