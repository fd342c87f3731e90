"""Cue control measured on the validation clips while a variant trains.

Every `train.validate_every` steps the training job samples each validation clip with the
model as it is, with its cues as given and with every arrow reversed (the same seed), and
measures what the evaluation measures on the test clips (stance/evaluate/motion.py):
the directional response (a - b) / (2 |truth|), the motion gain a / |truth| and the share
of instances with a > b, over the instances that move in the rendered clip. The run then
shows when control appears (`validation.csv` and `validation.png` beside the weights,
TensorBoard scalars `val/...`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stance import config
from stance.cues import store as cue_store
from stance.errors import UserError
from stance.evaluate import metrics, motion
from stance.render import store as clip_store
from stance.settings import Train, Variant

log = logging.getLogger(__name__)
COLUMNS = ("step", "response", "gain", "follows", "instances")


class CueControlProbe:
    """Samples the validation clips with a model under training and scores cue control."""

    def __init__(
        self,
        model_source: str,
        render_dirs: Sequence[Path],
        cue_dirs: Sequence[Path],
        settings: Train,
        allow_download: bool = True,
    ):
        from stance.train import components

        cues = {p.stem: p for folder in cue_dirs for p in sorted(Path(folder).glob("*.zarr"))}
        clips = [p for folder in render_dirs for p in clip_store.clip_paths(Path(folder))]
        pairs = [(clip, cues[clip.stem]) for clip in clips if clip.stem in cues]
        if not pairs:
            raise UserError(
                "train.validate_every is set but no validation clip has both a render and a "
                "cue store: give data.splits.val clips, or set train.validate_every: 0"
            )
        self.clips = [read_clip(clip, cue) for clip, cue in pairs]  # once, not every check
        self.settings = settings
        self.frozen = components.load_frozen(model_source, allow_download)
        self.sampling = config.section_settings(
            "generate", {"steps": settings.validate_sampling_steps, "seed": settings.seed}
        )

    def start(self, run_dir: Path, step: int) -> None:
        """Attach to a run's folder; a resumed run drops rows logged after its checkpoint."""
        self.path = Path(run_dir) / "validation.jsonl"
        rows = self.rows()
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["step"] <= step))

    def rows(self) -> list[dict[str, float]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def check(self, transformer, variant: Variant, step: int) -> dict[str, float]:
        """Measure, append the row to the run's log, return it."""
        row = self(transformer, variant, step)
        log.info("validation at step %d: %s", step, row)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        return row

    def finish(self, out_dir: Path, title: str) -> None:
        """validation.csv and validation.png beside the trained weights."""
        import pandas as pd

        rows = self.rows()
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(out_dir / "validation.csv", index=False)
        plot(rows, out_dir / "validation.png", title)

    def __call__(self, transformer, variant: Variant, step: int) -> dict[str, float]:
        """{response, gain, follows, instances} of the model as it is at `step`."""
        from stance.generate.pipeline import StanceImageToVideoPipeline
        from stance.generate.sampling import Trained, reversed_arrows, sample

        pipe = StanceImageToVideoPipeline(transformer=transformer, **self.frozen)
        pipe.set_progress_bar_config(disable=True)
        info = Trained(variant, self.settings)
        cued = variant.cue_mode != "none"
        a, b, truth = [], [], []
        was_training = transformer.training
        transformer.eval()
        try:
            for clip, cue, prompt in self.clips:
                rgb = clip.arrays["rgb"]
                args = {
                    "prompt": prompt,
                    "frames": len(rgb),
                    "settings": self.sampling,
                    "max_text": self.settings.max_text_seq_length,
                    "info": info,
                }
                with torch.no_grad():
                    video = metrics.fit(sample(pipe, cue, **args).video, rgb)
                    others = {"flipped": metrics.OWN_VIDEO}
                    if cued:
                        flipped = sample(pipe, reversed_arrows(cue), **args).video
                        others["flipped"] = metrics.fit(flipped, rgb)
                dynamic = np.array([inst["dynamic"] for inst in clip.attrs["instances"]])
                row = metrics.cue_following(clip, video, others, dynamic)
                a += row[motion.along_column("")]
                b += row[motion.along_column("flipped")]
                truth += row["instance_truth_px"]
        finally:
            transformer.train(was_training)
        return summarise(step, np.array(a), np.array(b), np.array(truth))


def read_clip(clip_path: Path, cue_path: Path):
    """(render store: RGB + keyframe labels + tracks, cue store, prompt) of a validation clip."""
    from stance.generate.sampling import caption_instances
    from stance.train.captions import describe

    clip = clip_store.read_clip(clip_path, frames={"rgb": slice(None), "segmentation": [0]})
    cue = cue_store.read(cue_path)
    return clip, cue, describe(caption_instances(cue))


def summarise(step: int, a: np.ndarray, b: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """One validation row: instance means of response and gain, the follows share."""
    if not len(truth):
        return {"step": step, "response": np.nan, "gain": np.nan, "follows": np.nan, "instances": 0}
    return {
        "step": step,
        "response": float(motion.directional_response(a, b, truth).mean()),
        "gain": float(motion.motion_gain(a, truth).mean()),
        "follows": motion.follows_share(a, b)[0],
        "instances": len(truth),
    }


def plot(rows: Sequence[dict[str, float]], path: Path, title: str) -> None:
    """Response, gain and follows share against the training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for key, label in (
        ("response", "directional response"),
        ("gain", "motion gain"),
        ("follows", "share a > b"),
    ):
        ax.plot(steps, [r[key] for r in rows], marker="o", label=label)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set(xlabel="step", ylabel="validation clips", title=f"{title}: cue control")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
