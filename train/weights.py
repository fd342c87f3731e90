"""The STANCE transformer with its base weights: built from the base transformer's config
(a CogVideoX-1.5 I2V checkpoint, or the shared pretrained backbone) plus the STANCE
options, taking every base weight; only the new modules (cue tokenizer, domain embedding)
may be missing from the checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stance.errors import UserError
from stance.train.components import load_component, vae_spatial_factor

log = logging.getLogger(__name__)


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
