"""Loading CogVideoX-1.5 I2V components (hub id or local folder).

`models.video` names a pipeline folder or hub id with the usual subfolders (tokenizer,
text_encoder, vae, transformer, scheduler): THUDM/CogVideoX1.5-5B-I2V, or the tiny stack
`stance models make-tiny video` saves. The STANCE transformer built on them is
`stance.train.weights`' (kept apart so that encoding and the tiny stacks, which use these
loaders, do not depend on the STANCE model's code).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

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
