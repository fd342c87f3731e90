"""The results page: the evaluation tables, every variant's loss curve on one plot (the
pretrained backbone's too), cue control on the validation clips during training,
cue-comparison videos (ground truth | no cues | cues | reversed cues) of the test clips,
and the video autoencoder's reconstruction PSNR on those clips.

Writes `results.md`, `loss_curves.png`, `cue_comparison.png` (the last frame of each
panel, one row per clip) and `cue_comparison/<clip_id>.mp4`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stance import video
from stance.errors import UserError
from stance.evaluate.metrics import fit
from stance.render import store as clip_store
from stance.report.videos import compose

log = logging.getLogger(__name__)
PANELS = ("ground truth", "no cues", "cues", "reversed cues")


def loss_curves(losses: dict[str, Path], path: Path, window: int = 25) -> None:
    """Every variant's training loss (running mean over `window` steps, fewer for a short
    run: a tenth of its steps) on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    frames = {name: pd.read_csv(csv) for name, csv in sorted(losses.items())}
    longest = max((len(f) for f in frames.values()), default=0)
    window = max(1, min(window, longest // 10))
    for name, frame in frames.items():
        smooth = frame["loss"].rolling(window, min_periods=1).mean()
        ax.plot(frame["step"], smooth, label=name, alpha=0.8)
    label = f"loss (mean of {window} steps)" if window > 1 else "loss"
    ax.set(xlabel="step", ylabel=label, title="Training loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def validation_curves(logs: dict[str, Path], path: Path) -> None:
    """Cue control on the validation clips during training (train.validate_every), per
    variant: directional response (solid) and motion gain (dashed) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for k, (name, csv) in enumerate(sorted(logs.items())):
        frame = pd.read_csv(csv)
        colour = f"C{k}"
        ax.plot(frame["step"], frame["response"], marker="o", color=colour, label=name)
        ax.plot(frame["step"], frame["gain"], linestyle="--", color=colour)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set(
        xlabel="step",
        ylabel="response (solid), gain (dashed)",
        title="Cue control on the validation clips during training",
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def comparison_panels(
    clip_id: str, render_dir: Path, uncued: Path | None, cued: Path
) -> tuple[list[str], list[np.ndarray]]:
    """(names, videos) of one clip: truth, the no-cue variant's, the cue variant's and its
    reversed-cue generation; a generation that is absent is left out."""
    truth = clip_store.read_clip(render_dir / f"{clip_id}.zarr", names=("rgb",)).arrays["rgb"]
    candidates = [
        uncued / f"{clip_id}.mp4" if uncued else None,
        cued / f"{clip_id}.mp4",
        cued / f"{clip_id}.flipped.mp4",
    ]
    names, panels = [PANELS[0]], [truth]
    for name, path in zip(PANELS[1:], candidates, strict=True):
        if path is not None and path.exists():
            names.append(name)
            panels.append(fit(video.read_video(path), truth))
    return names, panels


def reconstruction_psnr(model_source: str, videos: Sequence[np.ndarray]) -> list[float]:
    """PSNR (dB, inf = exact) of each (T,H,W,3) uint8 video after the stack's VAE (or
    invertible codec) encodes it (distribution mode) and decodes it."""
    import torch

    from stance.evaluate import quality
    from stance.train import components, encode

    cls = components.vae_class(model_source)
    vae = components.load_component(cls, model_source, "vae").eval()
    out = []
    with torch.no_grad():
        for frames in videos:
            latents = vae.encode(encode.to_unit(frames)).latent_dist.mode()
            decoded = vae.decode(latents).sample[0].clamp(-1, 1)
            pixels = decoded.add(1).mul(127.5).round().byte().permute(1, 2, 3, 0).numpy()
            n = min(len(frames), len(pixels))  # a VAE may decode another frame count
            out.append(quality.psnr(frames[:n], pixels[:n]))
    return out


def sheet(rows: Sequence[tuple[str, list[str], list[np.ndarray]]], path: Path) -> None:
    """Last frame of each panel, one row per clip, titled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(panels) for _, _, panels in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2 * cols, 2 * len(rows)), squeeze=False)
    for r, (clip_id, names, panels) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(panels):
                ax.imshow(panels[c][-1])
                ax.set_title(f"{names[c]}\n{clip_id}" if c == 0 else names[c], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class Shown:
    """A test clip on the results page, with the folders its videos come from."""

    clip_id: str
    render: Path
    cued: Path
    uncued: Path | None


def shown_clips(
    renders: Sequence[Path], cued: Sequence[Path], uncued: Sequence[Path], count: int
) -> tuple[list[Shown], int]:
    """The first `count` test clips over the shards in order (their render, cue-variant
    and no-cue-variant folders taken shard by shard), and how many clips there are."""
    if len(cued) != len(renders) or (uncued and len(uncued) != len(renders)):
        raise UserError(
            f"{len(renders)} rendered shards, {len(cued)} cue-variant and {len(uncued)} "
            "no-cue-variant shard folders: give one of each per shard, in the same order"
        )
    every = [
        Shown(path.stem, render, cued_dir, uncued[k] if uncued else None)
        for k, (render, cued_dir) in enumerate(zip(renders, cued, strict=True))
        for path in clip_store.clip_paths(render)
    ]
    return every[:count], len(every)


def cue_comparison(shown: Sequence[Shown], out_dir: Path, fps: int) -> list:
    """Per clip a comparison video (cue_comparison/<clip>.mp4) and, for all, a sheet of
    their last frames; the (clip, panel names, panels) rows."""
    videos_dir = out_dir / "cue_comparison"
    videos_dir.mkdir(exist_ok=True)
    rows = []
    for item in shown:
        names, panels = comparison_panels(item.clip_id, item.render, item.uncued, item.cued)
        video.write_mp4(videos_dir / f"{item.clip_id}.mp4", compose(panels), fps)
        rows.append((item.clip_id, names, panels))
    if rows:
        sheet(rows, out_dir / "cue_comparison.png")
    return rows


def autoencoder_note(model_source: str | None, truths: Sequence[np.ndarray]) -> str:
    """The video autoencoder's reconstruction PSNR on the page's clips, or nothing."""
    psnr = reconstruction_psnr(model_source, truths) if model_source else []
    if not psnr:
        return ""
    return (
        f"Video autoencoder of {model_source}: reconstruction PSNR on these {len(psnr)} "
        f"test clips: min {min(psnr):.2f} dB, mean {np.mean(psnr):.2f} dB (inf = exact)."
    )


def write(
    tables_md: Path,
    *,
    trained: Sequence[Path],
    renders: Sequence[Path],
    cued: Sequence[Path],
    uncued: Sequence[Path] = (),
    out_dir: Path,
    clips: int,
    fps: int,
    run_name: str,
    model_source: str | None = None,
) -> Path:
    """The results page (results.md) and its pictures and videos: `clips` test clips
    over the test shards (`renders`, with each shard's generated folders of the cue
    variant and of the no-cue variant, if any)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    losses = {d.name: d / "losses.csv" for d in trained if (d / "losses.csv").exists()}
    loss_curves(losses, out_dir / "loss_curves.png")
    validations = {d.name: d / "validation.csv" for d in trained}
    validations = {k: v for k, v in validations.items() if v.exists()}
    if validations:
        validation_curves(validations, out_dir / "validation_curves.png")
    shown, available = shown_clips(renders, cued, uncued, clips)
    ids = [item.clip_id for item in shown]
    rows = cue_comparison(shown, out_dir, fps)
    autoencoder = autoencoder_note(model_source, [panels[0] for _, _, panels in rows])
    page = [
        f"# Results of run `{run_name}`",
        "",
        f"Variants trained: {', '.join(sorted(losses))}. Cue comparison: "
        f"{uncued[0].parts[-3] if uncued else '(no variant without cues)'} (no cues) against "
        f"{cued[0].parts[-3]} (cues, and the same seed with every arrow reversed).",
        "",
        autoencoder,
        "",
        "![loss curves](loss_curves.png)",
        "",
        "![cue control during training](validation_curves.png)" if validations else "",
        "",
        "![cue comparison: last frames](cue_comparison.png)",
        "",
        f"Videos of the first {len(ids)} of the {available} test clips "
        "(evaluate.side_by_side_clips; "
        + " | ".join(PANELS)
        + "): "
        + ", ".join(f"[{i}](cue_comparison/{i}.mp4)" for i in ids),
        "",
        "![cue following](../evaluate/cue_following.png)",
        "",
        "![Physics IQ](../evaluate/physics_iq.png)",
        "",
        *pooled_section(tables_md.parent),
        tables_md.read_text().replace("# Results", "# Tables", 1),
    ]
    out = out_dir / "results.md"
    out.write_text("\n".join(page))
    log.info("results page -> %s", out)
    return out


def pooled_section(evaluate_dir: Path) -> list[str]:
    """The plot of variants pooled over their training seeds, when the run has replicates
    (evaluate/replicates.py writes it beside the tables)."""
    if not (evaluate_dir / "replicates.png").exists():
        return []
    return [
        "![variants pooled over their training seeds](../evaluate/replicates.png)",
        "",
        "Replicated variants pooled over their seeds: [replicates.md](../evaluate/replicates.md).",
        "",
    ]
