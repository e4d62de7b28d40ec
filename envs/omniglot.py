"""Omniglot from torchvision's folder layout, resized to 28x28 with ink = 1, split by alphabet.

Reads <root>/omniglot-py/images_background (and images_evaluation beside it when present);
folders are listed sorted, because torchvision's unsorted listing changes labels across machines.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .folders import load_class_folders, sorted_dirs
from .held_out import held_out_samplers
from .paths import announce_download, quiet, require

NAME = "omniglot"
IMAGE_SETS = ("images_background", "images_evaluation")
SIZE = 28
FIX = ("set data.download: true when online, or pass --data-root to the folder that holds "
       "omniglot-py/")


def omniglot_folder(root: Path) -> Path:
    """<root>/omniglot-py, or root itself when it already is that folder."""
    if not (root / "omniglot-py").is_dir() and (root / IMAGE_SETS[0]).is_dir():
        return root
    return root / "omniglot-py"


def download_omniglot(root: Path) -> None:
    """Fetch both image sets through torchvision (online users only)."""
    announce_download(NAME, root / "omniglot-py")
    for background in (True, False):
        try:
            with quiet():  # whatever torchvision prints on import or while downloading
                from torchvision.datasets import Omniglot

                Omniglot(str(root), background=background, download=True)
        except Exception as exc:
            raise DataError(f"{NAME}: downloading into {root} failed "
                            f"({type(exc).__name__}: {exc}); "
                            f"check the connection or download omniglot-py by hand") from exc


def load_omniglot_pool(root: Path, download: bool = False):
    """Every character of every alphabet found, as one pool grouped by alphabet."""
    folder = omniglot_folder(root)
    if download and not (folder / IMAGE_SETS[0]).is_dir():
        download_omniglot(root)
    require(folder / IMAGE_SETS[0], NAME, "Omniglot's images_background folder", FIX, folder=True)
    class_dirs, names, groups = [], [], []
    for image_set in IMAGE_SETS:
        if not (folder / image_set).is_dir():
            continue
        for alphabet in sorted_dirs(folder / image_set):
            for character in sorted_dirs(alphabet):
                class_dirs.append(character)
                names.append(f"{image_set}/{alphabet.name}/{character.name}")
                groups.append(alphabet.name)
    if not class_dirs:
        raise DataError(f"{NAME}: expected <alphabet>/<character>/ folders under {folder}, "
                        f"found none; {FIX}")
    return load_class_folders(class_dirs, names, groups, NAME, origin=f"{NAME} at {folder}",
                              mode="L", size=SIZE, invert=True, fix=FIX)


def load_omniglot(root: Path, options):
    return held_out_samplers(load_omniglot_pool(root, options.download), options, NAME)
