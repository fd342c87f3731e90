"""The trained variant the demo samples with (`find_model`: one rule for the demo and the
results tables) and what the page says about it: its identity, how it was trained, whether
its weights are random, and the depth model that estimates an upload's keyframe depth.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stance import config
from stance.errors import UserError
from stance.settings import Settings

SMALL_CONFIG = Path("configs/small.yaml")  # the smallest stack trained to do something


class DemoError(UserError, ValueError):
    """Bad input on the page: shown to the user as a message, never as a traceback."""


@dataclass
class Model:
    """The trained variant the demo samples with, how it was trained, and the depth model
    (models.depth) that estimates keyframe depth for depth streams."""

    trained: Path
    config_path: Path
    cfg: Settings
    record: dict[str, Any]
    depth_net: Any = field(default=None, repr=False)  # depth.model.Estimator, once loaded
    depth_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.trained.name

    @property
    def size(self) -> int:
        return self.cfg.render.resolution

    @property
    def frames(self) -> int:
        return self.cfg.render.frames

    @property
    def identity(self) -> dict[str, Any]:
        (identity,) = self.record["variant"].values()
        return identity

    @property
    def aux(self) -> str:
        """The auxiliary stream generated beside RGB: none, depth or seg."""
        return self.identity["aux"]

    @property
    def streams(self) -> list[str]:
        """The streams of a generated video, left to right."""
        aux = {"depth": "depth", "seg": "segmentation"}.get(self.aux)
        return ["RGB", aux] if aux else ["RGB"]

    @property
    def needs_disparity(self) -> bool:
        """A depth stream conditioned on its own keyframe needs the keyframe's disparity
        (train.aux_keyframe: aux, the authors' way); one conditioned on RGB does not."""
        aux_keyframe = self.record.get("train", {}).get("aux_keyframe", "aux")
        return self.aux == "depth" and aux_keyframe == "aux"

    @property
    def random_weights(self) -> bool:
        """The video stack is the tiny one `stance models make-tiny video` builds with
        random weights (a few fine-tuning steps do not change that), or nothing trained."""
        built = config.BUILT_MODELS["video"].get(self.record["model"])
        return built == "tiny" or self.record["steps"] == 0

    def describe(self) -> str:
        identity = self.identity
        cues = identity["cue_mode"]
        if cues == "dense_rope":
            cues = f"Dense RoPE, {identity['motion_tokens']} motion tokens"
        return (
            f"variant {self.name} (cues: {cues}; auxiliary stream: {identity['aux']}) of run "
            f"'{self.cfg.run_name}' ({self.config_path}): {self.record['model']} trained "
            f"{self.record['steps']} steps on {len(self.record['data'])} clips; generates "
            f"{self.frames} frames at {self.size}x{self.size} with {self.cfg.generate.steps}"
            f" sampling steps, memory profile {self.cfg.generate.memory_profile}."
        )

    def weights_note(self) -> str:
        """What a user should expect of the videos when the weights are random, and which
        trained model the demo would use instead; empty for a trained model."""
        if not self.random_weights:
            return ""
        small = _stance_variant(SMALL_CONFIG)
        variant = f"its variant {small}" if small else "the variant its tables report"
        return (
            f"This model has random weights: {self.record['model']} is the tiny test stack "
            f"that `stance models make-tiny video` builds, fine-tuned {self.record['steps']} "
            "steps, so its videos are noise. They show that cues, sampling and the hints "
            "work, not what STANCE learns. For a trained model run the small-scale "
            f"reproduction (`snakemake --cores 2 --configfile={SMALL_CONFIG}`, about 70 min "
            f"on 2 CPU cores): the demo then uses {variant} (evaluate.stance_variant of "
            f"{SMALL_CONFIG}). Or start it with `stance demo --trained DIR`."
        )

    def depth_note(self) -> str:
        """Where an estimated keyframe depth comes from (said in the page and the bundle)."""
        source = self.cfg.models.depth
        if config.BUILT_MODELS["depth"].get(source) == "tiny":
            return f"estimated by {source} (tiny, random weights: a placeholder depth map)"
        return f"estimated by {source}"

    def estimate_disparity(self, keyframe: np.ndarray) -> np.ndarray:
        """(H,W) float32 disparity of a keyframe from models.depth, loaded and run as the
        depth stage runs it (stance.depth.model: device, dtype and input size of the
        config's depth section). The network is loaded once and kept."""
        from stance.depth.model import estimator

        with self.depth_lock:
            if self.depth_net is None:
                self.depth_net = estimator(self.cfg.models.depth, self.cfg.depth)
            return self.depth_net(keyframe[None])[0]


def _stance_variant(path: Path) -> str | None:
    """evaluate.stance_variant of a config file, or None when it cannot be read here."""
    try:
        return config.load_settings(path).evaluate.stance_variant
    except (UserError, OSError, ValueError):
        return None


def reported_variant(results: Path) -> str | None:
    """The variant the results tables report as STANCE (evaluate.stance_variant, written
    to results/evaluate/published.csv), or None before the tables exist."""
    path = results / "evaluate" / "published.csv"
    if not path.exists():
        return None
    import pandas as pd

    rows = pd.read_csv(path)
    ours = rows.loc[rows["paper row"].str.startswith("STANCE"), "our row"]
    return str(ours.iloc[0]) if len(ours) and ours.iloc[0] != "-" else None


def find_model(results: Path = Path("results"), trained: Path | None = None) -> Model:
    """`trained`, or the variant the tables report as STANCE (one rule for the demo and the
    report: `evaluate.stance_variant`); before the tables exist, the first trained Dense
    RoPE variant, else the first cue variant. Its config is configs/small.yaml when it was
    trained on the small-scale stack, else config.yaml."""
    if trained is None:
        folders = sorted(p.parent.parent for p in (results / "train").glob("*/transformer/*.json"))
        cued = [f for f in folders if _variant(f)["cue_mode"] != "none"]
        if not cued:
            raise DemoError(
                f"no trained cue variant under {results / 'train'}: run `snakemake --cores 2` "
                "(tiny default) or `snakemake --cores 2 --configfile=configs/small.yaml` "
                "first, or pass --trained DIR"
            )
        reported = reported_variant(results)
        dense = [f for f in cued if _variant(f)["cue_mode"] == "dense_rope"]
        trained = min(cued, key=lambda f: (f.name != reported, f not in dense, f.name))
    record_path = trained / "train.resolved.json"
    if not record_path.exists():
        raise DemoError(f"{trained} is not a trained variant folder (no train.resolved.json)")
    record = json.loads(record_path.read_text())
    config_path = Path(config.BUILT_VIDEO_CONFIGS.get(record["model"], "config.yaml"))
    return Model(trained, config_path, config.load_settings(config_path), record)


def _variant(trained: Path) -> dict[str, Any]:
    return json.loads((trained / "transformer" / "config.json").read_text())
