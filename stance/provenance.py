"""Content hashes of the code a stage runs, and resolved-config records.

Snakemake reruns a job when a `params:` value changes. Each rule gets the hash of the
modules that do its work plus every `stance` module they import (transitively, found by
reading import statements, not by importing); the thin CLI modules that only parse
arguments are left out, so editing the trainer does not re-encode the training cache:
- a fresh clone or `touch` of every file changes nothing (content, not mtime);
- editing one stage's code reruns that stage and what depends on it, nothing else.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

NAMESPACE = "stance"


@cache
def _spec(name: str):
    """The module spec of `name`, or None, without executing any non-package module:
    `find_spec("a.b.c")` would import `a.b`, and a module such as stance.train.model
    imports torch. Only package __init__ files (kept light) may run."""
    parent = name.rpartition(".")[0]
    if parent:
        parent_spec = _spec(parent)
        if parent_spec is None or parent_spec.submodule_search_locations is None:
            return None  # `stance.mod.function`: a name inside a module, not a module
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _module_file(name: str) -> Path | None:
    spec = _spec(name)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    return Path(spec.origin)


def _is_package(name: str) -> bool:
    spec = _spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def _imported_modules(name: str, path: Path) -> set[str]:
    """Every `stance.*` module named by an import statement in `path`."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from stance.x import y` may name a submodule y.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == NAMESPACE or m.startswith(NAMESPACE + ".")}


def _package_modules(name: str) -> set[str]:
    """All modules inside a package folder (recursively)."""
    root = _module_file(name).parent
    modules = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        modules.add(".".join([name, *parts]))
    return modules


@cache
def source_files(*roots: str) -> tuple[tuple[str, Path], ...]:
    """(module name, file) for the given modules/packages and their stance imports."""
    pending = set()
    for root in roots:
        pending |= _package_modules(root) if _is_package(root) else {root}
    seen: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None or path.suffix != ".py":
            continue  # `from stance.x import some_function` names no module: fine
        seen[name] = path
        pending |= _imported_modules(name, path) - seen.keys()
        parent = name.rpartition(".")[0]
        if parent and parent not in seen:
            pending.add(parent)  # importing a.b.c executes a/__init__ and a/b/__init__
    return tuple(sorted(seen.items()))


@cache
def code_hash(*roots: str) -> str:
    """sha256 over the module names and bytes of everything `roots` runs (16 hex chars)."""
    digest = hashlib.sha256()
    for name, path in source_files(*roots):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def write_resolved_config(out_dir: str | Path, stage: str, record: dict[str, Any]) -> Path:
    """Write what a stage ran with (settings, code hash, versions) beside its outputs."""
    from stance import __version__

    out = Path(out_dir) / f"{stage}.resolved.json"
    payload = {"stage": stage, "stance_version": __version__, **record}
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(out)
    return out


def read_resolved_config(out_dir: str | Path, stage: str) -> dict[str, Any]:
    """What a stage recorded beside its outputs (see write_resolved_config)."""
    from stance.stores import StoreError

    path = Path(out_dir) / f"{stage}.resolved.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StoreError(
            f"{path} is missing: {out_dir} is not a complete output of the {stage} stage;"
            f" rerun `stance {stage}` (or snakemake) for it"
        ) from exc
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON ({exc}); rerun the {stage} stage") from exc
