"""Where the data lives, and one-line messages for paths that are not what we expected."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from pathlib import Path

from .errors import DataError

DATA_ROOT_ENV = "METALEARN_DATA_ROOT"
DEFAULT_DATA_ROOT = "./data"


def resolve_data_root(arg: str | os.PathLike | None) -> Path:
    """Explicit argument, else $METALEARN_DATA_ROOT, else ./data; absolute so messages are clear."""
    explicit = arg not in (None, "")
    chosen = arg if explicit else os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    root = Path(chosen).expanduser().resolve()
    if root.is_file():
        how = ("pass --data-root" if explicit else
               f"set ${DATA_ROOT_ENV} to" if os.environ.get(DATA_ROOT_ENV) else "pass --data-root")
        raise DataError(f"data root {root} is a file, not a folder; {how} the folder that holds "
                        f"the data (perhaps {root.parent}), not a file")
    return root


def describe_folder(folder: Path, limit: int = 6) -> str:
    """A short 'what is there instead' phrase for error messages."""
    if not folder.is_dir():
        nearest = folder
        while not nearest.is_dir() and nearest != nearest.parent:
            if nearest.is_file():  # a file where a folder on the path should be
                return f"{nearest} is a file, not a folder"
            nearest = nearest.parent
        return f"{folder} does not exist (nearest existing folder: {nearest})"
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return f"{folder} is empty"
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit
                                        else "")
    return f"{folder} holds: {shown}"


def require(path: Path, dataset: str, what: str, fix: str, folder: bool = False) -> Path:
    """Return `path` if it exists as a file (or folder), else raise a DataError saying what is
    there."""
    ok = path.is_dir() if folder else path.is_file()
    if ok:
        return path
    if path.exists():
        kind, wanted = ("file", "folder") if path.is_file() else ("folder", "file")
        found = f"{path} is a {kind}, not a {wanted}"
    else:
        found = describe_folder(path.parent)
    raise DataError(f"{dataset}: expected {what} at {path}, but {found}; {fix}")


def announce_download(dataset: str, root: Path) -> None:
    """One line before a download (the downloaders' own output is hidden by `quiet`), so a
    long download is not mistaken for a hang."""
    print(f"{dataset}: downloading into {root} (no progress is shown; large files take minutes)",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet():
    """Swallow what third-party code prints or warns while it runs, so that a failure ends in
    our one `error:` line alone: learn2learn prints gym's deprecation banner when first imported
    (a print to stderr, not a warning), and its downloaders print a "Downloading ..." line for
    every source they try (mini-ImageNet tries Dropbox, then Google Drive)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
