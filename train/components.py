"""Loading CogVideoX-1.5 I2V components (hub id or local folder) and the STANCE transformer.

`models.video` names a pipeline folder or hub id with the usual subfolders (tokenizer,
text_encoder, vae, transformer, scheduler): THUDM/CogVideoX1.5-5B-I2V, or the tiny stack
`stance models make-tiny video` saves. The STANCE transformer is built from the base
transformer's config plus the STANCE options and takes every base weight; only the new
modules (cue tokenizer, domain embedding) may be missing from the checkpoint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stance.errors import UserError

log = logging.getLogger(__name__)


def _missing(source: str, cause: Exception) -> UserError:
    return UserError(
        f"CogVideoX weights {source!r} are not available here ({type(cause).__name__}: "
        f"{str(cause).splitlines()[0][:200]}). Download them where the hub is reachable: "
        f"`huggingface-cli download {source}` (into the Hugging Face cache, $HF_HOME), or set "
        "models.video to a local pipeline folder (model_index.json, tokenizer/, "
        "text_encoder/, vae/, transformer/, scheduler/). For the tiny test stack run "
        "`stance models make-tiny video --out <folder>`."
    )


def _kwargs(source: str, allow_download: bool) -> dict:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false")
    local = Path(source).exists() or not allow_download or offline
    return {"local_files_only": local}


def load_component(cls, source: str, subfolder: str, allow_download: bool = True, **kwargs):
    if Path(source).exists() and not (Path(source) / subfolder).exists():
        raise UserError(f"{source} has no {subfolder}/ folder: not a CogVideoX pipeline folder")
    try:
        return cls.from_pretrained(
            source, subfolder=subfolder, **_kwargs(source, allow_download), **kwargs
        )
    except OSError as exc:
        raise _missing(source, exc) from exc


def load_config(cls, source: str, subfolder: str, allow_download: bool = True):
    """A component's config only (no weights), with attribute access."""
    from types import SimpleNamespace

    try:
        values = cls.load_config(source, subfolder=subfolder, **_kwargs(source, allow_download))
    except OSError as exc:
        raise _missing(source, exc) from exc
    return SimpleNamespace(**values)


def vae_class(source: str, allow_download: bool = True):
    """The VAE's class, by the `_class_name` of its config: CogVideoX's autoencoder, or the
    invertible codec of the small-scale stack."""
    from diffusers import AutoencoderKLCogVideoX

    from stance.train.codec import PixelFoldCodec

    classes = {cls.__name__: cls for cls in (AutoencoderKLCogVideoX, PixelFoldCodec)}
    name = load_config(AutoencoderKLCogVideoX, source, "vae", allow_download)._class_name
    if name not in classes:
        raise UserError(f"{source}/vae is a {name}; expected one of {sorted(classes)}")
    return classes[name]


def vae_spatial_factor(source: str, allow_download: bool = True) -> int:
    """Pixels per latent cell of the pipeline's VAE, as diffusers' pipelines derive it."""
    vae = load_config(vae_class(source, allow_download), source, "vae", allow_download)
    return 2 ** (len(vae.block_out_channels) - 1)


def load_frozen(source: str, allow_download: bool = True, dtype=None) -> dict:
    """Tokenizer, text encoder, VAE and scheduler (frozen during training)."""
    from diffusers import CogVideoXDPMScheduler
    from transformers import T5EncoderModel, T5Tokenizer

    out = {
        "tokenizer": load_component(T5Tokenizer, source, "tokenizer", allow_download),
        "text_encoder": load_component(
            T5EncoderModel, source, "text_encoder", allow_download, torch_dtype=dtype
        ),
        "vae": load_component(
            vae_class(source, allow_download), source, "vae", allow_download, torch_dtype=dtype
        ),
        "scheduler": load_component(CogVideoXDPMScheduler, source, "scheduler", allow_download),
    }
    for name in ("text_encoder", "vae"):
        out[name].requires_grad_(False).eval()
    return out


def pretrained_transformer(init: Path, dtype=None):
    """The shared backbone's transformer (`stance train pretrain`), as a base to fine-tune."""
    from stance.train.model import StanceTransformer

    folder = Path(init) / "transformer"
    if not (folder / "config.json").exists():
        raise UserError(
            f"{init} holds no pretrained backbone (no transformer/config.json): run "
            "`stance train pretrain` (rule pretrain_backbone) or set train.pretrain_steps: 0"
        )
    return StanceTransformer.from_pretrained(folder, torch_dtype=dtype)


def stance_transformer(
    source: str,
    options: Mapping[str, Any],
    allow_download: bool = True,
    dtype=None,
    init: Path | None = None,
):
    """A StanceTransformer carrying every weight of the base CogVideoX transformer, or of
    the pretrained backbone `init` (its new modules are not taken: each variant
    initialises its own cue tokenizer and domain embedding, as from a base checkpoint).

    The STANCE model is built without weights (meta device) and takes the base's tensors
    themselves (`assign=True`): one copy of the weights in memory and no random
    initialisation of what the checkpoint replaces; only the new modules are initialised,
    from the seeded generator."""
    from accelerate import init_empty_weights
    from diffusers import CogVideoXTransformer3DModel

    from stance.train.model import StanceTransformer

    if init is not None:
        base = pretrained_transformer(init, dtype)
        source, spatial = str(init), base.config.vae_spatial
    else:
        base = load_component(
            CogVideoXTransformer3DModel, source, "transformer", allow_download, torch_dtype=dtype
        )
        spatial = vae_spatial_factor(source, allow_download)
    with init_empty_weights():  # parameters on the meta device; buffers computed as usual
        model = StanceTransformer.from_config({**base.config, "vae_spatial": spatial, **options})
    weights = {
        k: v for k, v in base.state_dict().items() if not k.startswith(model.new_module_prefixes)
    }
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    unexpected_new = [k for k in missing if not k.startswith(model.new_module_prefixes)]
    if unexpected or unexpected_new:
        raise UserError(
            f"{source}: transformer weights do not fit STANCE (missing "
            f"{unexpected_new}, unexpected {unexpected}); is it CogVideoX-1.5 I2V?"
        )
    model.init_new_modules()
    log.info(
        "STANCE transformer from %s: %d base tensors, new modules %s",
        source,
        len(weights),
        sorted({k.split(".")[0] for k in missing}),
    )
    del base
    return model.to(dtype) if dtype is not None else model
