"""Untrusted input: config strings never become shell code; no unsafe loaders in the package."""

from __future__ import annotations

import re
import shlex

import pytest
from helpers import REPO

from stance import config
from stance.train import launch

PACKAGE_DIRS = ("stance", "render", "depth", "cues", "train", "generate", "evaluate", "report")
UNSAFE = {
    r"\bpickle\.loads?\(": "pickle",
    r"\byaml\.load\(": "yaml.load (use yaml.safe_load)",
    r"(?<![.\w])eval\(": "eval",
    r"(?<![.\w])exec\(": "exec",
    r"shell=True": "subprocess with shell=True",
    r"torch\.load\((?![^)]*weights_only=True)": "torch.load without weights_only=True",
    r"os\.system\(": "os.system",
}


def test_the_package_has_no_unsafe_loaders():
    found = []
    for folder in PACKAGE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            for pattern, what in UNSAFE.items():
                for match in re.finditer(pattern, text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert not found, "\n".join(found)


def test_the_unsafe_loader_check_catches_what_it_names(tmp_path):
    sample = "x = torch.load(p)\ny = yaml.load(s)\nz = torch.load(p, weights_only=True)\n"
    hits = [what for pattern, what in UNSAFE.items() if re.search(pattern, sample)]
    assert hits == ["yaml.load (use yaml.safe_load)", "torch.load without weights_only=True"]


@pytest.mark.parametrize("nodes", [1, 2])
def test_the_accelerate_config_path_is_one_shell_word(nodes):
    path = "configs/a b $(touch x) `y`; z.yaml"
    prefix = launch.command_prefix(
        config.section_settings(
            "train", {"num_gpus": 2, "num_nodes": nodes, "accelerate_config": path}
        )
    )
    words = shlex.split(prefix)
    if nodes == 1:
        assert words[words.index("--config_file") + 1] == path
    else:
        assert words[0] == f"STANCE_ACCELERATE_CONFIG={path}"
        assert "$(touch" not in prefix.split("bash -c", 1)[1]
