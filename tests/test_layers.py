"""Which parts of the package may import which: code hashes follow imports, so an import
across stages decides what a Snakemake edit reruns. Stages import only the core and the
stages before them; the listed exceptions say why they exist."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO

from stance import provenance

# lowest first: a part may import itself, the core and the parts before it
LAYERS = ("core", "render", "depth", "cues", "train", "evaluate", "generate", "report", "demo")
FOLDERS = {"stance": REPO / "stance", "stance.demo": REPO / "stance" / "demo"}
FOLDERS |= {f"stance.{part}": REPO / part for part in LAYERS[1:-1]}
EXCEPTIONS = {
    # `stance models make-tiny` builds every stage's tiny test models from their configs
    ("stance.models_cli", "depth"): "tiny depth model",
    ("stance.models_cli", "train"): "tiny video stack",
    ("stance.models_cli", "evaluate"): "tiny VideoMAE",
    # the fit command hands a training job the validation probe (sampling + scoring)
    ("stance.train.cli", "generate"): "cue control on the validation clips",
}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def imports() -> list[tuple[str, str]]:
    """(importing module, imported stance module) over the whole package."""
    out = []
    for package, folder in FOLDERS.items():
        for path in sorted(Path(folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out += [(name, imported) for imported in provenance._imported_modules(name, path)]
    return out


def test_every_import_points_down_the_layers():
    found = imports()
    assert len(found) > 100  # the package was read
    wrong = sorted(
        f"{importer} -> {imported}"
        for importer, imported in found
        if LAYERS.index(part_of(imported)) > LAYERS.index(part_of(importer))
        and (importer, part_of(imported)) not in EXCEPTIONS
    )
    assert not wrong, "imports against the layers (move the shared code down):\n" + "\n".join(wrong)


def test_every_exception_is_still_needed():
    used = {(importer, part_of(imported)) for importer, imported in imports()}
    assert set(EXCEPTIONS) <= used, set(EXCEPTIONS) - used
