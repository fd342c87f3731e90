"""Carry a run's training inputs to another machine in a few MB, and rebuild them there.

The training cache of configs/small.yaml holds float32 latents of an exact codec: about 40x
the bytes of the uint8 videos they encode (1.6 GB for 1,200 clips of 48 px), too much to
ship to a GPU machine that sees no shared file system. A pack holds what the encode stage
reads instead, and the cue stores as they are; `unpack` runs the encode stage's own
functions on it, so the cache files it writes are the ones `stance train encode` writes
(bit for bit with the same torch build; tests/test_carry.py), and `stance train fit` then
runs unchanged on the other machine.

    python -m stance.train.carry pack --render R/train/* --cues C/train/* --out PACK
    python -m stance.train.carry unpack PACK --model M --max-text 32 --code-hash H \
        --latents results/train/cache/train --cues results/cues/train

A pack is a folder: pack.json (format, clips with shard, caption and encode seed),
videos.npz (the RGB, depth and segmentation videos, uint8, one array per stream) and
cues.tar.xz (the cue shard folders without their PNG previews).
"""

from __future__ import annotations

import argparse
import json
import logging
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stance import stores
from stance.train import encode

log = logging.getLogger(__name__)
FORMAT, VERSION = "stance.train.carry", "1"


def pack(render_dirs: Sequence[Path], cue_dirs: Sequence[Path], out: Path) -> Path:
    """Write the pack of the clips in `render_dirs` (their cue shards: `cue_dirs`)."""
    from tqdm import tqdm

    from stance.render import store as clip_store

    render_dirs, cue_dirs = [Path(d) for d in render_dirs], [Path(d) for d in cue_dirs]
    if sorted(d.name for d in render_dirs) != sorted(d.name for d in cue_dirs):
        raise ValueError("--render and --cues must name the same shards of one split")
    clips, videos = [], {s: [] for s in encode.STREAMS}
    for render_dir in render_dirs:
        paths = clip_store.clip_paths(render_dir)
        for k, path in enumerate(tqdm(paths, desc=f"pack {render_dir.name}", unit="clip")):
            clip_id, clip_videos, caption, seed = encode.clip_inputs(path, k)
            for stream in encode.STREAMS:
                videos[stream].append(clip_videos[stream])
            clips.append(
                {
                    "shard": render_dir.name,
                    "stem": path.stem,
                    "clip_id": clip_id,
                    "caption": caption,
                    "seed": seed,
                }
            )
    if not clips:
        raise ValueError("no rendered clips in the --render folders")
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "videos.npz", **{s: np.stack(v) for s, v in videos.items()})
    with tarfile.open(out / "cues.tar.xz", "w:xz") as tar:
        for cue_dir in cue_dirs:
            tar.add(cue_dir, arcname=cue_dir.name, filter=_stores_only)
    record = {"format": FORMAT, "version": VERSION, "clips": clips}
    (out / "pack.json").write_text(json.dumps(record, indent=1))
    return out


def _stores_only(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Leave out the cue previews (*.png): training reads the stores alone."""
    return None if member.name.endswith(".png") else member


def read_pack(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(folder) / "pack.json"
    if not path.is_file():
        raise stores.StoreError(f"{folder} is not a training-set pack (no pack.json)")
    record = json.loads(path.read_text())
    if (record.get("format"), record.get("version")) != (FORMAT, VERSION):
        raise stores.StoreError(
            f"{folder} is a {record.get('format')} {record.get('version')} pack, expected "
            f"{FORMAT} {VERSION}: pack it again with this version (python -m {__name__} pack)"
        )
    with np.load(Path(folder) / "videos.npz") as data:
        videos = {s: data[s] for s in encode.STREAMS}
    if any(len(v) != len(record["clips"]) for v in videos.values()):
        raise stores.StoreError(f"{folder}: videos.npz and pack.json list different clips")
    return record, videos


def unpack(
    folder: Path,
    latents_root: Path,
    cues_root: Path,
    model: str,
    max_text: int,
    code_hash: str,
    allow_download: bool = False,
) -> int:
    """Encode the packed clips into `latents_root/<shard>/` and extract their cue stores
    into `cues_root/<shard>/`; returns the number of clips."""
    from tqdm import tqdm

    record, videos = read_pack(folder)
    frozen = encode.load_encoders(model, allow_download)
    by_shard: dict[str, list[str]] = {}
    for k, clip in enumerate(tqdm(record["clips"], desc="encode pack", unit="clip")):
        clip_videos = {s: videos[s][k] for s in encode.STREAMS}
        out_dir = Path(latents_root) / clip["shard"]
        out_dir.mkdir(parents=True, exist_ok=True)
        encode.write_clip_cache(
            frozen,
            out_dir / f"{clip['stem']}.safetensors",
            clip["clip_id"],
            clip_videos,
            clip["caption"],
            clip["seed"],
            max_text,
            model,
            code_hash,
        )
        by_shard.setdefault(clip["shard"], []).append(f"{clip['stem']}.zarr")
    for shard, names in by_shard.items():
        encode.write_shard_record(Path(latents_root) / shard, model, max_text, code_hash, names)
    Path(cues_root).mkdir(parents=True, exist_ok=True)
    with tarfile.open(Path(folder) / "cues.tar.xz") as tar:
        tar.extractall(cues_root, filter="data")
    return len(record["clips"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("pack", help="write a pack from render and cue shard folders")
    p.add_argument("--render", nargs="+", required=True, type=Path)
    p.add_argument("--cues", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    u = sub.add_parser("unpack", help="encode a pack into cache shards, extract its cues")
    u.add_argument("pack", type=Path)
    u.add_argument("--model", required=True, help="the video model the DAG encodes with")
    u.add_argument("--max-text", required=True, type=int)
    u.add_argument("--code-hash", default="unknown", help="the encode rule's code hash")
    u.add_argument("--latents", required=True, type=Path, help="e.g. results/train/cache/train")
    u.add_argument("--cues", required=True, type=Path, help="e.g. results/cues/train")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.action == "pack":
        pack(args.render, args.cues, args.out)
        log.info("pack -> %s", args.out)
    else:
        n = unpack(args.pack, args.latents, args.cues, args.model, args.max_text, args.code_hash)
        log.info("%d clips -> %s, %s", n, args.latents, args.cues)


if __name__ == "__main__":
    main()
