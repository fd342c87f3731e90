"""The layout of a generation folder (written by `stance generate shard`, read by the
evaluation): per test clip and cue condition one RGB video, and for RGB+aux variants the
decoded auxiliary stream beside it.

    <clip_id>[.<condition>].mp4        RGB
    <clip_id>[.<condition>].aux.mp4    auxiliary stream (depth or segmentation colours)

Conditions (all sampled with the same seed as the clip's own video):
- "" (none): the clip's cues as given;
- "flipped": every instance's arrow reversed (u, v and dz negated; mass kept);
- "placebo": another test clip's cue map (a seeded derangement within the shard);
- "placebo.flipped": that cue map with its arrows reversed.
"""

from __future__ import annotations

from pathlib import Path

CONDITIONS = ("", "flipped", "placebo", "placebo.flipped")


def video_path(folder: Path, clip_id: str, condition: str = "", aux: bool = False) -> Path:
    """Where the video of a clip under a cue condition lives in a generation folder."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown cue condition {condition!r}; expected one of {CONDITIONS}")
    parts = [clip_id, condition, "aux" if aux else "", "mp4"]
    return Path(folder) / ".".join(p for p in parts if p)
