"""Shared zarr v3 plumbing for every stage's per-clip stores.

Each stage documents its own format (arrays, dtypes, shapes, attrs) in its store module;
this module gives them the same guarantees: atomic publication (write under a temporary
name, rename at the end, so a killed job leaves nothing a reader accepts), a format name
and version checked on every read, a `complete` flag, and every chunk file present (all
are written, so a deleted one is detected instead of reading as fill values).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from stance.errors import UserError


class StoreError(UserError, ValueError):
    """A store is missing, incomplete, malformed, or of another format version."""


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: np.asarray(o).tolist()))


def write_group(
    path: str | Path,
    fill: Callable[[zarr.Group], None],
    attrs: Mapping[str, Any],
    format_name: str,
    version: int,
) -> Path:
    """Create a zarr group at `path` atomically: `fill(group)` writes the arrays."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # Every chunk is written, also one equal to the fill value (zarr skips those by
    # default): then a chunk file missing later is damage that readers can detect.
    with zarr.config.set({"array.write_empty_chunks": True}):
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        fill(root)
    root.attrs.update(
        jsonable({**attrs, "format": format_name, "version": version, "complete": True})
    )
    # Never delete a published store in place (a kill mid-delete would leave a store marked
    # complete with chunks missing): move it aside, publish, then delete the old one.
    old = path.with_name(f"{path.name}.partial-old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def per_frame_chunks(data: np.ndarray) -> tuple[int, ...]:
    return (1, *data.shape[1:])


def regenerate(path: Path, producer: str) -> str:
    """How to get a good copy of a store back: the command, and the Snakemake way."""
    return (
        f"regenerate it with {producer} (with Snakemake: delete {path.parent} and rerun;"
        " the shard is rebuilt)"
    )


@contextmanager
def reading(path: str | Path, producer: str):
    """Turn any failure while reading a store (missing or truncated array, garbage bytes,
    wrong metadata) into a StoreError naming the store and the command that rebuilds it."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:  # zarr/codec/OS errors differ per backend: one clear message
        path = Path(path)
        raise StoreError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); {regenerate(path, producer)}"
        ) from exc


def open_checked(path: str | Path, format_name: str, version: int, producer: str) -> zarr.Group:
    """Open a store for reading after checking its format, version and completeness.

    `producer` names the command that (re)creates it, for the error messages.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no {format_name} store at {path}; run {producer}")
    with reading(path, producer):
        group = zarr.open_group(path, mode="r")
    attrs = group.attrs
    if attrs.get("format") != format_name:
        raise StoreError(f"{path} is not a {format_name} store (format {attrs.get('format')!r})")
    if attrs.get("version") != version:
        raise StoreError(
            f"{path} is a {format_name} store of version {attrs.get('version')}, this code "
            f"reads version {version}: regenerate it with {producer}"
        )
    if not attrs.get("complete"):
        raise StoreError(f"{path} is incomplete (a killed job?): {regenerate(path, producer)}")
    with reading(path, producer):
        check_chunks(path, group, producer)
    return group


def check_chunks(path: Path, group: zarr.Group, producer: str) -> None:
    """Every array of a published store has all its chunk files (write_group writes them
    all), so a deleted chunk is an error rather than a silent block of fill values."""
    for name, member in group.members(max_depth=None):
        if isinstance(member, zarr.Array) and member.nchunks_initialized < member.nchunks:
            missing = member.nchunks - member.nchunks_initialized
            raise StoreError(
                f"{path / name} lacks {missing} of its {member.nchunks} chunk files: "
                + regenerate(path, producer)
            )


def remove_partials(folder: str | Path) -> None:
    """Delete what killed writers left behind in a folder."""
    for stale in Path(folder).glob("*.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
