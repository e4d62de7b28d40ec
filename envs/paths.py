"""Where the data lives, and one-line messages for paths that are not what we expected."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

DATA_ROOT_ENV = "METALEARN_DATA_ROOT"
DEFAULT_DATA_ROOT = "./data"


def resolve_data_root(arg: str | os.PathLike | None) -> Path:
    """Explicit argument, else $METALEARN_DATA_ROOT, else ./data; absolute so messages are clear."""
    chosen = arg if arg not in (None, "") else os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(chosen).expanduser().resolve()


def describe_folder(folder: Path, limit: int = 6) -> str:
    """A short 'what is there instead' phrase for error messages."""
    if not folder.is_dir():
        nearest = folder
        while not nearest.is_dir() and nearest != nearest.parent:
            nearest = nearest.parent
        return f"{folder} does not exist (nearest existing folder: {nearest})"
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return f"{folder} is empty"
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")
    return f"{folder} holds: {shown}"


def require(path: Path, dataset: str, what: str, fix: str, folder: bool = False) -> Path:
    """Return `path` if it exists as a file (or folder), else raise a DataError saying what is there."""
    ok = path.is_dir() if folder else path.is_file()
    if ok:
        return path
    if path.exists():
        kind, wanted = ("file", "folder") if path.is_file() else ("folder", "file")
        found = f"{path} is a {kind}, not a {wanted}"
    else:
        found = describe_folder(path.parent)
    raise DataError(f"{dataset}: expected {what} at {path}, but {found}; {fix}")
