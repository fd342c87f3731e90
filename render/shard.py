"""Render one shard of clips: resample rejected scenes, twins, previews, manifest.

Shard folder layout (the render rule's output):
  <clip_id>.zarr          clip store (see store.py)
  <clip_id>.twin.zarr     physical-variance twin (test split only)
  <clip_id>.mp4           H.264 preview
  manifest.parquet        one row per clip (see MANIFEST_COLUMNS)
  render.resolved.json    settings, code hash and timings the shard ran with
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from stance import provenance, stores, video
from stance.render import scene, store, worker
from stance.settings import Render, as_dict
from stance.shards import Clip

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("split", pa.string()),
        ("seed", pa.int64()),
        ("family", pa.string()),
        ("small_objects", pa.bool_()),
        ("small_object_split", pa.bool_()),
        ("dynamic_area_fraction", pa.float32()),
        ("num_objects", pa.int32()),
        ("num_dynamic", pa.int32()),
        ("num_static", pa.int32()),
        ("object_sizes", pa.list_(pa.float32())),
        ("object_masses", pa.list_(pa.float32())),
        ("num_contacts", pa.int32()),
        ("num_object_contacts", pa.int32()),
        ("attempts", pa.int32()),
        ("store", pa.string()),
        ("twin_store", pa.string()),
        ("preview", pa.string()),
        ("render_seconds", pa.float32()),
    ]
)


def dynamic_area_fraction(segmentation: np.ndarray, dynamic: Sequence[bool]) -> float:
    """Median first-frame projected area of the launched objects, as an image fraction."""
    first = segmentation[0]
    areas = [(first == i + 1).mean() for i, d in enumerate(dynamic) if d]
    return float(np.median(areas)) if areas else 0.0


def clip_attrs(
    clip: Clip,
    spec: scene.SceneSpec,
    rendered: worker.RenderedClip,
    render: Render,
    code_hash: str,
    twin_of: str | None = None,
) -> dict[str, Any]:
    return {
        "clip_id": clip.clip_id,
        "split": clip.split,
        "seed": clip.seed,
        "family": spec.family,
        "small_objects": spec.small_objects,
        "attempts": spec.attempt + 1,
        "twin_of": twin_of,
        "render": as_dict(render),
        "code_hash": code_hash,
        "camera": rendered.camera,
        "instances": [worker.object_record(o) for o in spec.objects],
        "events": rendered.events,
        "scene": spec.to_dict(),
        "timings": rendered.timings,
    }


def sample_valid(
    clip: Clip, render: Render, threads: int
) -> tuple[scene.SceneSpec, worker.RenderedClip]:
    """Sample attempts until a scene passes the physics checks, then return its render."""
    reasons = []
    for attempt in range(render.max_attempts):
        spec = scene.sample_scene(clip.seed, attempt, render, split=clip.split)
        try:
            return spec, worker.render_clip(spec, render, threads)
        except worker.PhysicsRejected as reason:
            log.info("%s attempt %d rejected: %s", clip.clip_id, attempt, reason)
            reasons.append(str(reason))
    raise RuntimeError(
        f"{clip.clip_id}: no physically valid scene in {render.max_attempts} attempts "
        f"({reasons}); raise render.max_attempts or relax the scene settings"
    )


def render_shard_clip(
    clip: Clip, render: Render, out_dir: Path, threads: int, code_hash: str
) -> dict[str, Any]:
    start = time.perf_counter()
    spec, rendered = sample_valid(clip, render, threads)
    path = store.write_clip(
        out_dir / f"{clip.clip_id}.zarr",
        store_arrays(rendered),
        rendered.tracks,
        clip_attrs(clip, spec, rendered, render, code_hash),
    )
    video.write_mp4(out_dir / f"{clip.clip_id}.mp4", rendered.rgb, render.fps)
    twin_path = ""
    twins = render.twins
    if clip.split == "test" and twins.enabled:
        twin_spec = scene.perturb(spec, clip.seed, twins.position_jitter_m, twins.velocity_jitter)
        twin = worker.render_clip(twin_spec, render, threads, check=False)
        twin_path = store.write_clip(
            out_dir / f"{clip.clip_id}.twin.zarr",
            store_arrays(twin),
            twin.tracks,
            clip_attrs(clip, twin_spec, twin, render, code_hash, twin_of=clip.clip_id),
        ).name
    dynamic = [o.dynamic for o in spec.objects]
    area = dynamic_area_fraction(rendered.segmentation, dynamic)
    sizes = [o.size for o in spec.objects]
    return {
        "clip_id": clip.clip_id,
        "split": clip.split,
        "seed": clip.seed,
        "family": spec.family,
        "small_objects": spec.small_objects,
        "small_object_split": clip.split == "test" and area < render.small_objects.area_threshold,
        "dynamic_area_fraction": area,
        "num_objects": len(spec.objects),
        "num_dynamic": sum(dynamic),
        "num_static": len(dynamic) - sum(dynamic),
        "object_sizes": sizes,
        "object_masses": [o.mass for o in spec.objects],
        "num_contacts": len(rendered.events),
        "num_object_contacts": sum(min(e["instances"]) >= 0 for e in rendered.events),
        "attempts": spec.attempt + 1,
        "store": path.name,
        "twin_store": twin_path,
        "preview": f"{clip.clip_id}.mp4",
        "render_seconds": time.perf_counter() - start,
    }


def store_arrays(rendered: worker.RenderedClip) -> dict[str, np.ndarray]:
    return {name: getattr(rendered, name) for name in store.FRAME_ARRAYS}


def render_shard(
    clips: Sequence[Clip],
    render: Render,
    out_dir: str | Path,
    threads: int,
    code_hash: str,
) -> Path:
    """Render every clip of a shard into `out_dir`; returns the manifest path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stores.remove_partials(out_dir)  # left by a killed job
    rows = []
    start = time.perf_counter()
    for clip in tqdm(clips, desc=f"render {out_dir.name}", unit="clip"):
        rows.append(render_shard_clip(clip, render, out_dir, threads, code_hash))
        log.info(
            "%s: %s, %d objects, %.1f s",
            clip.clip_id,
            rows[-1]["family"],
            rows[-1]["num_objects"],
            rows[-1]["render_seconds"],
        )
    manifest = out_dir / "manifest.parquet"
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    pq.write_table(table, manifest.with_suffix(".tmp"))
    manifest.with_suffix(".tmp").replace(manifest)
    provenance.write_resolved_config(
        out_dir,
        "render",
        {
            "render": as_dict(render),
            "code_hash": code_hash,
            "threads": threads,
            "clips": [c.clip_id for c in clips],
            "seconds": time.perf_counter() - start,
        },
    )
    return manifest


def read_manifests(paths: Sequence[str | Path]) -> pa.Table:
    """Concatenate shard manifests, checking each against the manifest schema."""
    tables = []
    for path in paths:
        table = pq.read_table(path)
        if not table.schema.equals(MANIFEST_SCHEMA):
            raise store.StoreError(
                f"{path} does not have the render manifest schema; re-render its shard"
            )
        tables.append(
            table.append_column(
                "shard_dir", pa.array([str(Path(path).parent)] * table.num_rows, pa.string())
            )
        )
    return pa.concat_tables(tables) if tables else MANIFEST_SCHEMA.empty_table()


def write_manifest(shard_dirs: Sequence[Path], out: Path) -> pa.Table:
    """One parquet of every clip of the given rendered shards."""
    table = read_manifests([Path(d) / "manifest.parquet" for d in shard_dirs])
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    log.info("manifest: %d clips from %d shards -> %s", table.num_rows, len(shard_dirs), out)
    return table
