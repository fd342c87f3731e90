"""One import namespace: every stage folder is packaged under `stance`, none at top level."""

import subprocess
import sys
import tomllib

from helpers import REPO

STAGE_FOLDERS = ["render", "cues", "train", "evaluate"]


def _setuptools():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_in_the_packaging_list():
    tool = _setuptools()
    mapped = {folder: name for name, folder in tool["package-dir"].items()}
    for init in REPO.glob("*/**/__init__.py"):
        folder = init.parent.relative_to(REPO)
        if folder.parts[0] in {".venv", "tests", "results", ".snakemake"}:
            continue
        top = folder.parts[0]
        assert top in mapped, f"{top}/ holds a package but is not in [tool.setuptools] package-dir"
        name = ".".join([mapped[top], *folder.parts[1:]])
        assert name in tool["packages"], f"{name} ({folder}/) is missing from packages"


def test_stage_folders_map_into_the_stance_namespace():
    tool = _setuptools()
    for name, folder in tool["package-dir"].items():
        assert name == "stance" or name == f"stance.{folder}", (name, folder)
    for folder in STAGE_FOLDERS:
        if (REPO / folder / "__init__.py").exists():
            assert tool["package-dir"].get(f"stance.{folder}") == folder


def test_no_generic_top_level_imports_are_installed(tmp_path):
    code = (
        "import importlib.util as u; import sys;"
        "names = ['render', 'cues', 'train', 'evaluate'];"
        "found = [n for n in names if u.find_spec(n) and 'stance' in str(u.find_spec(n).origin)];"
        "print(found); sys.exit(bool(found))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, f"top-level stage imports installed: {result.stdout}"
    assert (
        subprocess.run(
            [sys.executable, "-c", "import stance.render, stance.evaluate"], cwd=tmp_path
        ).returncode
        == 0
    )


def test_cli_help_lists_stages():
    from helpers import run_cli

    out = run_cli("--help").stdout
    for command in ["render", "report", "config", "bench"]:
        assert command in out
    assert "snakemake" in out
    assert "shard" in run_cli("render", "--help").stdout
