"""Typed, frozen settings: one dataclass per config section, built from a validated config.

The schema (config.schema.yaml) stays the one place for keys, ranges and defaults; these
classes carry no defaults, so a value has exactly one (tests/test_settings.py checks that
every schema key has a field of the matching type and nothing more). Jobs receive
`Render`, `Cues`, `Train`... from `config.section_from_json`, read `settings.key` (a typo
fails at once instead of returning another section's value) and cannot change them; a key
their rule did not pass raises `UnpassedSetting` when read (`restrict`). `as_dict` gives
back the plain mapping that stores and run records keep.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

from stance.errors import UserError

frozen = dataclasses.dataclass(frozen=True)


@frozen
class Split:
    clips: int
    seed_offset: int


@frozen
class Data:
    seed: int
    clips_per_shard: int
    splits: dict[str, Split]


@frozen
class Collisions:
    min_objects: int
    max_objects: int


@frozen
class Composite:
    min_static: int
    max_static: int
    min_dynamic: int
    max_dynamic: int


@frozen
class SmallObjects:
    test_fraction: float
    train_fraction: float
    size_scale: float
    area_threshold: float


@frozen
class Twins:
    enabled: bool
    position_jitter_m: float
    velocity_jitter: float


@frozen
class Render:
    resolution: int
    frames: int
    fps: int
    samples_per_pixel: int
    denoise: bool
    family_mix: dict[str, float]  # scene family -> weight
    collisions: Collisions
    composite: Composite
    small_objects: SmallObjects
    twins: Twins
    max_attempts: int
    threads: int


@frozen
class Depth:
    input_size: int
    batch_size: int
    device: str
    dtype: str


@frozen
class Dz:
    method: str
    align_to: str
    erode_px: int
    dilate_px: int
    units: str


@frozen
class Mass:
    normalization: str
    reference_kg: float


@frozen
class FromVideo:
    cue_frames: int
    min_area_px: int
    max_instances: int
    mass_kg: float


@frozen
class Cues:
    reference_frame: int
    dz: Dz
    mass: Mass
    from_video: FromVideo


@frozen
class Models:
    depth: str
    video: str
    fvd: str | None
    fvd_videomae: str | None


@frozen
class Variant:
    """What makes a trained model a variant (config.VARIANT_KEYS)."""

    aux: str
    cue_mode: str
    motion_tokens: int
    seed: int | None


@frozen
class TimestepSampling:
    distribution: str
    location: float
    scale: float


@frozen
class Train:
    steps: int
    pretrain_steps: int
    lr_warmup_steps: int
    ema_decay: float
    validate_every: int
    validate_sampling_steps: int
    num_gpus: int
    num_nodes: int
    accelerate_config: str
    micro_batch: int
    gradient_accumulation: int
    learning_rate: float
    pretrain_learning_rate: float | None
    pretrain_cpu_processes: int
    betas: tuple[float, ...]
    weight_decay: float
    max_grad_norm: float
    lambda_aux: float
    aux_loss: str
    image_latent_scaling: str
    aux_keyframe: str
    image_noise: str
    timestep_sampling: TimestepSampling
    motion_weighting: float
    cue_dropout: float
    mixed_precision: str
    gradient_checkpointing: bool
    checkpoint_every: int
    stop_before_limit_s: int
    keep_checkpoints: int
    seed: int
    max_text_seq_length: int
    variants: dict[str, Variant]


@frozen
class Generate:
    steps: int
    guidance_scale: float
    cue_guidance: float | None
    cue_guidance_above: float
    use_dynamic_cfg: bool
    project_output_span: bool
    seed: int
    splits: tuple[str, ...]
    memory_profile: str
    cue_flip: bool
    placebo: bool


@frozen
class Evaluate:
    pv_source: str
    scale: float | str  # "reference" (w // 4, h // 4 of take 1) or a fraction
    lossy_masks: bool
    threshold: int
    baselines: tuple[str, ...]
    external_methods: tuple[str, ...]
    external_dir: str
    stance_variant: str
    bootstrap: int
    side_by_side_clips: int
    physics_iq_benchmark: str | None
    physics_iq_descriptions: str | None
    physics_iq_seeds: int
    physics_iq_track: str  # auto (from the folder's name), original, verified
    physics_iq_prompts: str  # op (original descriptions) or bpp (templated)


@frozen
class Settings:
    """The whole configuration."""

    run_name: str
    data: Data
    render: Render
    depth: Depth
    cues: Cues
    models: Models
    train: Train
    generate: Generate
    evaluate: Evaluate


SECTIONS: dict[str, type] = {
    field.name: get_type_hints(Settings)[field.name] for field in dataclasses.fields(Settings)
}
del SECTIONS["run_name"]


def build(cls: type, values: Mapping[str, Any], where: str = "config"):
    """`cls` from validated `values`; their keys must be exactly the fields (a mismatch is
    a schema/class disagreement, a bug here, never a user error)."""
    names = [field.name for field in dataclasses.fields(cls)]
    if set(values) != set(names):
        raise TypeError(
            f"{where}: the keys {sorted(values)} do not match {cls.__name__}'s fields {names};"
            " stance/settings.py and stance/config.schema.yaml disagree"
        )
    hints = get_type_hints(cls)
    return cls(**{name: _convert(hints[name], values[name], f"{where}.{name}") for name in names})


def _convert(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    origin = get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin is dict:
        _, item = get_args(hint)
        return {key: _convert(item, v, f"{where}.{key}") for key, v in value.items()}
    if hint is float:
        return float(value)  # YAML writes 1 for 1.0
    if origin in (Union, types.UnionType) or hint in (int, str, bool):
        return value
    raise TypeError(f"{where}: no conversion for the type {hint}")


def section(name: str, values: Mapping[str, Any]):
    """The typed settings of config section `name` from its validated values."""
    return build(SECTIONS[name], values, name)


# Train settings added after runs existed, at the value that computes what those runs did:
# left out of the rule's params and the run identity at that value, so existing runs
# neither rerun nor change their hashes.
NEUTRAL_DEFAULTS = {"pretrain_cpu_processes": 1}


def without_neutral(values: dict[str, Any]) -> dict[str, Any]:
    """`values` less the keys that hold their `NEUTRAL_DEFAULTS` value."""
    return {
        k: v for k, v in values.items() if k not in NEUTRAL_DEFAULTS or v != NEUTRAL_DEFAULTS[k]
    }


def as_dict(settings, every_field: bool = False) -> dict[str, Any]:
    """The plain, JSON-ready mapping of typed settings (tuples become lists); a job's
    restricted settings give only the keys it was passed, unless `every_field` (identities
    such as run hashes, which must not depend on which keys a rule passes)."""
    return _plain(settings, every_field)


def _plain(value, every_field: bool = False):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (
            as_fields(value) if every_field else {k: getattr(value, k) for k in _readable(value)}
        )
        return {name: _plain(v, every_field) for name, v in fields.items()}
    if isinstance(value, dict):
        return {key: _plain(v, every_field) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, every_field) for v in value]
    return value


# -- a job reads only what its rule passed ---------------------------------------------------
class UnpassedSetting(UserError):
    """A job read a config key that its rule does not pass (so Snakemake would not rerun
    the job when the key changes, and the job would silently use the schema default)."""


class _Restricted:
    """Mixin for a section whose withheld keys raise on reading instead of giving the
    schema default (`restrict`)."""

    _base: type  # the section's own dataclass
    _withheld: frozenset[str]
    _section: str

    def __getattribute__(self, name: str):
        if name in object.__getattribute__(self, "_withheld"):
            section = object.__getattribute__(self, "_section")
            raise UnpassedSetting(
                f"{section}.{name} was not passed to this job: the --settings JSON of its "
                f"rule leaves it out, so the job would use the schema default instead of "
                f"your value. Add '{name}' to the keys the rule passes (settings() in "
                "rules/*.smk), which also makes Snakemake rerun the job when it changes"
            )
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in _readable(self))
        return f"{type(self).__name__}({shown}; withheld {sorted(self._withheld)})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and as_dict(self) == as_dict(other)

    __hash__ = None

    def __reduce__(self):  # picklable (DataLoader workers), restriction kept
        return _rebuild, (self._base, as_fields(self), self._section, self._withheld)


def restrict(settings, section: str, given: Iterable[str]):
    """`settings` (one section) where reading a key not in `given` raises UnpassedSetting."""
    withheld = frozenset(f.name for f in dataclasses.fields(settings)) - set(given)
    if not withheld:
        return settings
    return _rebuild(type(settings), as_fields(settings), section, withheld)


def replace(settings, **changes):
    """dataclasses.replace that keeps a restriction (a key set here becomes readable)."""
    withheld = getattr(settings, "_withheld", frozenset())
    base = getattr(settings, "_base", type(settings))
    fresh = base(**(as_fields(settings) | changes))
    if not withheld - set(changes):
        return fresh
    return _rebuild(base, as_fields(fresh), settings._section, withheld - set(changes))


def as_fields(settings) -> dict[str, Any]:
    """Every field's value, withheld ones included (for rebuilding, never for reading)."""
    return {f.name: object.__getattribute__(settings, f.name) for f in dataclasses.fields(settings)}


def _rebuild(cls: type, state: dict[str, Any], section: str, withheld: frozenset[str]):
    restricted = _RESTRICTED.setdefault(cls, type(cls.__name__, (_Restricted, cls), {"_base": cls}))
    instance = restricted(**state)
    object.__setattr__(instance, "_withheld", frozenset(withheld))
    object.__setattr__(instance, "_section", section)
    return instance


_RESTRICTED: dict[type, type] = {}


def _readable(settings) -> list[str]:
    withheld = getattr(settings, "_withheld", frozenset())
    return [f.name for f in dataclasses.fields(settings) if f.name not in withheld]
