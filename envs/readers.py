"""Readers for pickle, npz and image files that turn every failure into a one-line DataError.

Why: a half-finished or HTML-page download otherwise surfaces as an UnpicklingError or a
PIL traceback from deep inside the loader, which does not tell the user what to do.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

_HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<?xml")
REDOWNLOAD = "delete it and download again, or pass --data-root to a folder holding the real file"


def is_html(path: Path) -> bool:
    """True if the file starts (after whitespace/BOM) like an HTML page, as failed downloads do."""
    with open(path, "rb") as f:
        head = f.read(512)
    head = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith(_HTML_STARTS)


def check_payload(path: Path, dataset: str, kind: str) -> None:
    """Raise if `path` is empty or an HTML page instead of a `kind` file."""
    if path.stat().st_size == 0:
        raise DataError(f"{dataset}: {path} is an empty file, not a {kind}; {REDOWNLOAD}")
    if is_html(path):
        raise DataError(
            f"{dataset}: {path} is an HTML page (a failed Google Drive/Dropbox download), "
            f"not a {kind}; {REDOWNLOAD}"
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: What learn2learn's mini-ImageNet caches hold: dicts of numpy arrays, lists and strings. Any
#: other global a pickle names (a function to call, a class to build) is refused.
SAFE_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
    ("collections", "OrderedDict"), ("_codecs", "encode"),  # protocol 2 writes bytes this way
}


class DataUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays and plain containers: reading a data file
    never runs code named in it."""

    def find_class(self, module: str, name: str):
        if ((module, name) in SAFE_PICKLE_GLOBALS
                or (module == "numpy.dtypes" and name.endswith("DType"))):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file may not hold")


def read_pickle(path: Path, dataset: str):
    """Unpickle a dataset cache (learn2learn's), admitting only arrays, dicts, lists and strings."""
    check_payload(path, dataset, "pickle")
    try:
        with open(path, "rb") as f:
            return DataUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{dataset}: {path} was refused ({exc}); {REDOWNLOAD}") from None
    except Exception as exc:  # corrupt or truncated files raise many different types
        raise DataError(
            f"{dataset}: {path} is not a readable pickle ({_reason(exc)}); "
            f"the file is corrupt or truncated; {REDOWNLOAD}"
        ) from exc


def read_npz(path: Path, dataset: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Load the named arrays of an .npz (no pickled objects) fully into memory."""
    check_payload(path, dataset, "npz archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(
                    f"{dataset}: {path} lacks arrays {missing} (it has {sorted(archive.files)}); "
                    f"rebuild it (e.g. scripts/build_glyphs.py) or point --data-root elsewhere"
                )
            return {k: archive[k] for k in keys}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{dataset}: {path} is not a readable npz archive ({_reason(exc)}); {REDOWNLOAD}"
        ) from exc


def read_image(path: Path, dataset: str, mode: str, size: int | None = None) -> np.ndarray:
    """Decode one image as uint8 [H, W] ('L') or [H, W, 3] ('RGB'), optionally resized to
    size x size."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.LANCZOS)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"{dataset}: {path} is not a readable image ({_reason(exc)}); {REDOWNLOAD}"
        ) from exc


def read_images(paths: Sequence[Path], dataset: str, mode: str,
                size: int | None = None) -> np.ndarray:
    """Decode many images of one size into a single uint8 array [N, H, W(, 3)]."""
    arrays = [read_image(p, dataset, mode, size) for p in paths]
    first = arrays[0].shape
    for p, a in zip(paths, arrays):
        if a.shape != first:
            raise DataError(
                f"{dataset}: {p} has shape {a.shape} but {paths[0]} has {first}; all images of a "
                f"dataset must share one size; replace the odd file or download the dataset again"
            )
    return np.stack(arrays)
