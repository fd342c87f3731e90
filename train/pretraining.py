"""The shared backbone: one model trained without cues on the train clips, from which
every variant is fine-tuned (train.pretrain_steps > 0), as the paper fine-tunes a
pretrained video model. Light to import: the Snakefile reads `passed_settings`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stance.errors import UserError
from stance.settings import (
    NEUTRAL_DEFAULTS,
    TimestepSampling,
    Train,
    Variant,
    as_dict,
    replace,
    without_neutral,
)

PRETRAINED = "pretrained"  # the shared backbone's name: results/train/pretrained
# Fine-tuning settings that pretraining replaces by these values: no cues to drop, no
# weight average, uniform timesteps and the plain loss, whatever the variants use.
PRETRAIN_FIXED = {
    "ema_decay": 0.0,
    "cue_dropout": 0.0,
    "timestep_sampling": TimestepSampling(distribution="uniform", location=0.0, scale=1.0),
    "motion_weighting": 0.0,
}
# What pretraining ignores: it trains no cues and no auxiliary stream, is not validated
# on cue control, keeps no weight average, and its length is pretrain_steps. The rule
# leaves these out, so editing them never reruns it.
PRETRAIN_IGNORES = (
    "steps",
    "variants",
    *PRETRAIN_FIXED,
    "lambda_aux",
    "aux_loss",
    "aux_keyframe",
    "validate_every",
    "validate_sampling_steps",
)

# Read by pretraining alone: the variants see their effect through the backbone's weights
# (their run hash covers the start weights), so their rule leaves them out.
PRETRAINING_ONLY = ("pretrain_learning_rate", "pretrain_cpu_processes")


def backbone_rate(train: Mapping[str, Any]) -> float | None:
    """The shared backbone's learning rate from (some of) the train section's values:
    pretrain_learning_rate when set, else learning_rate (None when neither is given)."""
    own = train.get("pretrain_learning_rate")
    return own if own is not None else train.get("learning_rate")


def passed_settings(train: Mapping[str, Any], operational: Iterable[str] = ()) -> dict:
    """The `train` section as the pretraining rule passes it: without what pretraining
    ignores and the `operational` keys, and with train.pretrain_learning_rate, when set,
    as its learning_rate. So a backbone pretrained at 5e-4 is the same run (the same
    params, the same run hash) whether 5e-4 came from learning_rate or from
    pretrain_learning_rate beside another rate for the variants. pretrain_cpu_processes
    is passed except at 1, where the params stay those of runs made before the key."""
    ignored = {*operational, *PRETRAIN_IGNORES, "pretrain_learning_rate"}
    section = without_neutral({k: v for k, v in train.items() if k not in ignored})
    rate = backbone_rate(train)
    if rate is not None:
        section["learning_rate"] = rate
    return section


def per_process_batch(settings: Train, world_size: int) -> int | None:
    """Each rank's share of train.micro_batch when pretrain_cpu_processes ranks run the
    job (None for one process: micro_batch as given); an error when the job was started
    as another number of processes. The rule passes the key only when it is above 1
    (as_dict: only the keys the job was given)."""
    processes = as_dict(settings).get(
        "pretrain_cpu_processes", NEUTRAL_DEFAULTS["pretrain_cpu_processes"]
    )
    if processes == 1:
        return None
    if world_size != processes:
        raise UserError(
            f"train.pretrain_cpu_processes is {processes} but this pretraining job runs as"
            f" {world_size} process(es); start it with the rule's command (accelerate launch"
            f" --num_processes {processes}), or set pretrain_cpu_processes to 1"
        )
    return settings.micro_batch // processes


def pretrain_backbone(
    *,
    cache_dirs: Sequence[Path],
    out_dir: Path,
    run_root: Path,
    settings: Train,
    model_source: str,
    code_hash: str,
    allow_download: bool = True,
) -> Path:
    """`stance train pretrain`: the shared backbone, trained without cues and without an
    auxiliary stream for train.pretrain_steps steps from models.video's transformer. It
    reads no cue stores, so a change of the cues never reruns it."""
    if settings.pretrain_steps <= 0:
        raise UserError(
            "train.pretrain_steps is 0: there is no backbone to pretrain; set it to the "
            "number of steps (variants are then fine-tuned from results/train/pretrained)"
        )
    from stance.train import data, trainer
    from stance.train.build import Job

    # the rule already passes the backbone's rate as learning_rate; a job run by hand
    # may still give pretrain_learning_rate (as_dict: only the keys the job was given)
    rate = backbone_rate(as_dict(settings))
    batch = per_process_batch(settings, int(os.environ.get("WORLD_SIZE", "1")))
    job = Job(
        cache_files=data.cache_files(cache_dirs),
        cue_dirs=(),
        out_dir=out_dir,
        run_root=run_root,
        # keeps the restriction to the keys the rule passed
        settings=replace(
            settings,
            steps=settings.pretrain_steps,
            variants={},
            pretrain_learning_rate=None,
            **({} if batch is None else {"micro_batch": batch}),
            **({} if rate is None else {"learning_rate": rate}),
            **PRETRAIN_FIXED,
        ),
        name=PRETRAINED,
        variant=Variant(aux="none", cue_mode="none", motion_tokens=1, seed=None),
        model_source=model_source,
        code_hash=code_hash,
        allow_download=allow_download,
    )
    return trainer.train(job)
