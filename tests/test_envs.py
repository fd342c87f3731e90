"""The per-stage conda envs (`--sdm conda`) against the code the rules run.

No conda channel is reachable here, so the envs cannot be built in CI; these checks catch
what would break on a cluster: every third-party package the code of a rule imports
(read from its import statements, lazy imports included) is installed by that rule's
env, and every pin in an env equals the pin `scripts/setup.sh` installs.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from stance import provenance
from stance.cli import STAGES

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def setup_pins() -> dict[str, str]:
    pins = {"torch": "2.13.0"}  # scripts/setup.sh installs it first, pinned
    for path in (REPO / "requirements").glob("*.txt"):
        for line in path.read_text().splitlines():
            if m := PIN.match(line.split("#")[0].strip()):
                pins[_norm(m.group(1))] = m.group(2)
    return pins


@cache
def env_installs(env: str) -> tuple[dict[str, str], set[str]]:
    """(pins, names installed with --no-deps) of envs/<env>.yaml + its post-deploy."""
    spec = yaml.safe_load((REPO / "envs" / f"{env}.yaml").read_text())
    pins, no_deps = {}, set()
    for dep in spec["dependencies"]:
        for line in dep.get("pip", []) if isinstance(dep, dict) else []:
            name, version = PIN.match(line).groups()
            pins[_norm(name)] = version
    post = REPO / "envs" / f"{env}.post-deploy.sh"
    for line in post.read_text().splitlines() if post.exists() else []:
        if line.startswith("pip install"):
            for name, version in re.findall(r"([A-Za-z0-9_.\-]+)==(\S+)", line):
                pins[_norm(name)] = version
                if "--no-deps" in line:
                    no_deps.add(_norm(name))
    return pins, no_deps


def with_dependencies(names: set[str], no_deps: set[str]) -> set[str]:
    """The distributions pip installs for `names` (dependencies resolved in this venv)."""
    seen, pending = set(), set(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in no_deps:
            continue
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            pending.add(_norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]))
    return seen


@cache
def installed_by(env: str) -> frozenset[str]:
    pins, no_deps = env_installs(env)
    return frozenset(with_dependencies(set(pins), no_deps))


def import_nodes(path: Path, module_level_only: bool) -> list[ast.stmt]:
    tree = ast.parse(path.read_bytes())
    nodes = []
    if module_level_only:  # statements that run on import: not function bodies
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            nodes.append(node)
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                stack.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    return [n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)]


def imported_top_level(path: Path, module_level_only: bool) -> set[str]:
    names = set()
    for node in import_nodes(path, module_level_only):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"stance", "__future__"}


def rule_envs() -> dict[str, tuple[str, str]]:
    """rule -> (env name, stance subcommand) from rules/*.smk."""
    out = {}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.MULTILINE)[1:]:
            name = block.split(":", 1)[0]
            env = re.search(r'conda:\s*"\.\./envs/(\w+)\.yaml"', block)
            command = re.search(r'"(?:stance|\{params\.launcher\}) (\w+)', block)
            if command:
                out[name] = (env.group(1) if env else None, command.group(1))
    return out


def import_time_files(modules) -> set[Path]:
    """Files executed by importing `modules` (and their packages): module-level imports
    only, followed through stance modules."""
    pending, seen = set(modules), {}
    while pending:
        name = pending.pop()
        path = provenance._module_file(name)
        if name in seen or path is None or path.suffix != ".py":
            continue
        seen[name] = path
        parts = name.split(".")
        pending |= {".".join(parts[:i]) for i in range(1, len(parts))}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in import_nodes(path, module_level_only=True):
            if isinstance(node, ast.Import):
                pending |= {a.name for a in node.names}
            else:
                base = node.module or ""
                if node.level:
                    prefix = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*prefix, base] if base else prefix)
                pending |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {p for n, p in seen.items() if n.split(".")[0] == "stance"}


@cache  # several rules run the same command: read its imports once per session
def needed_distributions(command: str) -> set[str]:
    """Distributions the `stance <command>` process imports: the CLI parser imports every
    stage's CLI module (module-level imports); the command's module then runs with all
    its imports, lazy ones included."""
    dists = import_names()
    imports = set()
    for path in import_time_files(["stance.cli", *(m for m, _ in STAGES.values())]):
        imports |= imported_top_level(path, module_level_only=True)
    for _, path in provenance.source_files(STAGES[command][0]):
        imports |= imported_top_level(path, module_level_only=False)
    missing = {name for name in imports if name.lower() not in dists}
    assert not missing, f"imports that no installed distribution provides: {missing}"
    return {dists[name.lower()] for name in imports}


@cache
def import_names() -> dict[str, str]:
    """Top-level import name (lower case) -> distribution, from the installed files
    (packages_distributions misses top-level extension modules such as OpenEXR's)."""
    out = {}
    for dist in md.distributions():
        name = _norm(dist.metadata["Name"])
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("__pycache__", "..", "bin"):
                continue
            out.setdefault(top.split(".")[0].lower(), name)
    return out


RULES = rule_envs()


def test_every_rule_with_a_command_has_an_env():
    assert len(RULES) >= 12, RULES
    assert not [rule for rule, (env, _) in RULES.items() if env is None]
    assert {env for env, _ in RULES.values()} == {"render", "cues", "train", "evaluate"}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_env_installs_what_the_rule_imports(rule):
    env, command = RULES[rule]
    lacking = needed_distributions(command) - installed_by(env)
    where = f"rule {rule} runs `stance {command}` in envs/{env}.yaml"
    assert not lacking, f"{where}, which lacks {sorted(lacking)}"


@pytest.mark.parametrize("env", ["render", "cues", "train", "evaluate"])
def test_env_pins_equal_the_setup_pins(env):
    pins, _ = env_installs(env)
    reference = setup_pins()
    wrong = {n: (v, reference.get(n)) for n, v in pins.items() if reference.get(n) != v}
    assert not wrong, f"envs/{env} pins differ from requirements/ (env, setup): {wrong}"
