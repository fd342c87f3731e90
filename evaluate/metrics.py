"""Per-shard evaluation: one row per (method, test clip) with every metric's raw parts.

Rows keep the per-frame lists Physics-IQ aggregates over (spatiotemporal IoU and MSE, for
the generated clip and for the physical-variance twin), so shards merge exactly in the
gather step (`tables`). Methods:
- a trained variant: videos in `results/generate/<variant>/...`;
- `copy_first_frame`: the keyframe repeated (a lower bound: no motion at all);
- `twin`: the physical-variance twin itself (the upper bound, 100 by construction when
  PV comes from the twins);
- an external method: `<external_dir>/<method>/<clip_id>.mp4` (e.g. SG-I2V outputs).
Cue following (evaluate/motion.py): per moving instance, the tracked displacement against
the rendered one, and, where the variant also generated the clip with reversed cues
(`<clip_id>.flipped.mp4`), whether the displacement reversed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stance import config, provenance, video
from stance.evaluate import motion, physics_iq, quality
from stance.generated import CONDITIONS, video_path
from stance.palette import palette
from stance.render import store as clip_store
from stance.settings import Evaluate
from stance.stores import StoreError

log = logging.getLogger(__name__)
OWN_VIDEO = None  # a cue condition's video is the method's own video (it takes no cues)


def fit(frames: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Generated frames cut to the clip's length and resized to its size if needed (for
    PSNR/SSIM and trajectories; Physics-IQ takes each video at its own size)."""
    frames = frames[: len(like)]
    if frames.shape[1:3] != like.shape[1:3]:
        h, w = like.shape[1:3]
        frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
    return frames


def method_video(
    method: str,
    clip_id: str,
    clip: np.ndarray,
    twin: np.ndarray,
    generated_dir: Path | None,
    external_dir: Path | None,
    takes_cues: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """(generated RGB at its own size and length, generated aux video fitted to the clip
    or None, {cue condition: RGB fitted to the clip} of the other cue conditions it has).

    A method that takes no cues (the baselines, a variant without cues) would make the
    same video under every cue condition: OWN_VIDEO (its own video) stands for each."""
    aux, own_for_all = None, dict.fromkeys(CONDITIONS[1:], OWN_VIDEO)
    if method == "copy_first_frame":
        return np.repeat(clip[:1], len(clip), axis=0), aux, own_for_all
    if method == "twin":
        return twin, aux, own_for_all
    folder = generated_dir if generated_dir is not None else external_dir / method
    path = video_path(folder, clip_id)
    if not path.exists():
        raise StoreError(
            f"{method}: no video for {clip_id} at {path}; generate it (stance "
            f"generate) or drop {method} from the evaluated methods"
        )
    aux_path = video_path(folder, clip_id, aux=True)
    aux = fit(video.read_video(aux_path), clip) if aux_path.exists() else None
    if not takes_cues:
        return video.read_video(path), aux, own_for_all
    others = {
        condition: fit(video.read_video(other), clip)
        for condition in CONDITIONS[1:]
        if (other := video_path(folder, clip_id, condition)).exists()
    }
    return video.read_video(path), aux, others


def cue_following(
    clip, generated: np.ndarray, others: Mapping[str, np.ndarray], dynamic: np.ndarray
) -> dict[str, list]:
    """Per moving instance: motion error (px), |rendered displacement| and the
    displacement along the rendered direction under each cue condition the method has
    (`instance_along_<condition>_px`, "" = as given), and, with a reversed-cue video,
    whether it reversed. The tables derive response, gain and follows from these."""
    truth = motion.truth_displacements(clip.tracks["image_positions"])
    labels = clip.arrays["segmentation"][0]
    measured = {"": motion.instance_displacements(generated, labels, len(truth))}
    for condition, frames in others.items():
        measured[condition] = (
            measured[""]
            if frames is OWN_VIDEO
            else motion.instance_displacements(frames, labels, len(truth))
        )
    keep = motion.moving(truth) & dynamic & np.isfinite(measured[""]).all(-1)
    out = {
        "instance_motion_error_px": motion.motion_errors(measured[""], truth, keep).tolist(),
        "instance_truth_px": np.linalg.norm(truth[keep], axis=-1).tolist(),
    }
    for condition in CONDITIONS:
        values = measured.get(condition)
        along = [] if values is None else motion.along(values[keep], truth[keep]).tolist()
        out[motion.along_column(condition)] = along
    reversed_ = []
    if "flipped" in measured:
        reversed_ = motion.reversed_by_flip(measured[""], measured["flipped"], truth, keep)
    out["instance_flip_reversed"] = [bool(r) for r in reversed_]
    return out


def physical_variance_take(path: Path, rgb: np.ndarray, pv_source: str):
    """(its path, frames) of the clip's take 2: its perturbed twin render, or the clip
    itself (`deterministic`)."""
    twin_path = path.with_name(path.name.replace(".zarr", ".twin.zarr"))
    if pv_source != "twin":
        return twin_path, rgb
    if not twin_path.exists():
        raise StoreError(
            f"{twin_path} is missing: physical variance from twins needs "
            "render.twins.enabled, or set evaluate.pv_source: deterministic"
        )
    return twin_path, clip_store.read_clip(twin_path, names=("rgb",)).arrays["rgb"]


def evaluate_clip(
    path: Path,
    method: str,
    settings: Evaluate,
    generated_dir,
    external_dir,
    aux_kind: str,
    takes_cues: bool = True,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(metrics row, ground-truth RGB, generated RGB) of one clip. takes_cues: False for a
    variant without cues (its own video stands for every cue condition)."""
    clip = clip_store.read_clip(path, frames={"rgb": slice(None), "segmentation": [0]})
    rgb, attrs = clip.arrays["rgb"], clip.attrs
    twin_path, twin = physical_variance_take(path, rgb, settings.pv_source)
    generated, aux, others = method_video(
        method, attrs["clip_id"], rgb, twin, generated_dir, external_dir, takes_cues
    )
    opts = physics_iq.Options.from_settings(settings)
    fps = attrs["render"]["fps"]  # generated videos keep the clip's fps
    scored = physics_iq.score_view(
        rgb,
        {"twin": twin, "generated": generated},
        fps,
        opts,
        names={
            "take1": str(path),
            "twin": f"the twin {twin_path}",
            "generated": f"{method}'s video of {path.stem}",
        },
    )
    real, ours = scored.real, scored.prepared["generated"]
    gen, pv = scored.metrics["generated"], scored.metrics["twin"]
    generated = fit(generated, rgb)
    dynamic = np.array([inst["dynamic"] for inst in attrs["instances"]])
    row = {
        "method": method,
        "clip_id": attrs["clip_id"],
        **gen.columns(pv),
        "psnr": quality.psnr(rgb, generated),
        "ssim": quality.ssim(rgb, generated),
        "motion_centroid_error": quality.centroid_error(
            quality.centroids(real.masks), quality.centroids(ours.masks)
        ),
        "trajectory_error": np.nan,
        "frames": len(generated),
        # moving pixels per frame (motion masks at the evaluation size): a video that
        # changes pixels where nothing moves shows more than the real clip
        "real_motion_px": float(real.masks.sum(axis=(1, 2)).mean()),
        "generated_motion_px": float(ours.masks.sum(axis=(1, 2)).mean()),
        "has_flip": "flipped" in others,
        **cue_following(clip, generated, others, dynamic),
    }
    if aux is not None and aux_kind == "seg":
        colours = palette(np.arange(1, len(dynamic) + 1))
        tracked = quality.instance_tracks_from_colours(aux, colours)
        truth = clip.tracks["image_positions"]
        visible = (clip.tracks["visibility"] > 0) & dynamic[:, None]
        row["trajectory_error"] = quality.trajectory_error(tracked, truth, visible)
    return row, rgb, generated


def evaluate_shard(
    render_dir: Path,
    out_path: Path,
    method: str,
    settings: Evaluate,
    generated_dir: Path | None = None,
    external_dir: Path | None = None,
    features: Mapping[str, Any] | None = None,
    code_hash: str = "",
) -> Path:
    """Metrics of `method` on one rendered test shard -> a parquet of per-clip rows.

    A trained variant's videos (`generated_dir`, a generate shard) carry the variant's
    identity (aux, cue_mode, motion_tokens) in their record; rows repeat it for the tables.

    features: {name: extractor} of feature networks for Fréchet distances (e.g. "fvd":
    I3D, "cd_fvd": VideoMAE-v2); rows get `<name>_real` and `<name>_generated` vectors,
    merged over shards by the tables step. code_hash: the evaluation code's hash, which
    rows carry as `evaluation_code` (None when not given), so that pooling runs scored
    by other code can say so."""
    from tqdm import tqdm

    features = features or {}
    variant = (
        provenance.read_resolved_config(generated_dir, "generate")["variant"]
        if generated_dir is not None
        else {}
    )
    aux_kind = variant.get("aux", "none")
    takes_cues = variant.get("cue_mode") != "none"  # external methods: the videos they have
    manifest = pq.read_table(render_dir / "manifest.parquet").to_pandas().set_index("clip_id")
    rows = []
    for path in tqdm(clip_store.clip_paths(render_dir), desc=f"evaluate {method}", unit="clip"):
        row, rgb, ours = evaluate_clip(
            path, method, settings, generated_dir, external_dir, aux_kind, takes_cues
        )
        row["small_object_split"] = bool(manifest.loc[row["clip_id"], "small_object_split"])
        row.update({key: variant.get(key) for key in config.VARIANT_KEYS})  # None: baselines
        row["train_seed"] = variant.get("seed")  # replicates of a variant differ here
        row["evaluation_code"] = code_hash or None
        # Features clip by clip: a job holds one clip's videos, never a whole shard's.
        for name, extract in features.items():
            row[f"{name}_real"] = extract(rgb[None])[0].tolist()
            row[f"{name}_generated"] = extract(ours[None])[0].tolist()
        rows.append(row)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, out_path.with_suffix(".tmp"))
    out_path.with_suffix(".tmp").replace(out_path)
    log.info("%s: %d clips -> %s", method, len(rows), out_path)
    return out_path


def feature_extractors(fvd_model: str, cd_fvd_model: str) -> dict[str, Any]:
    """{name: extractor} of the configured feature networks ('' leaves one out)."""
    from stance.evaluate import fvd, videomae

    features = {}
    if fvd_model:
        features["fvd"] = fvd.load_extractor(fvd_model)
    if cd_fvd_model:
        features["cd_fvd"] = videomae.load_extractor(cd_fvd_model)
    return features
