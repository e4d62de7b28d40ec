"""CIFAR-FS (Bertinetto et al. 2019 splits of CIFAR-100: 64/16/20 classes, 32x32x3) in
learn2learn's layout.

Reads the processed copy <root>/cifarfs/processed/{train,val,test}/<class>/*.png when present,
else the raw tree <root>/cifarfs/cifar100/data/<class>/*.png with the class lists in
<root>/cifarfs/cifar100/splits/bertinetto/{train,val,test}.txt.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .errors import DataError
from .folders import load_class_folders, sorted_dirs
from .paths import announce_download, quiet, require
from .pool import ClassPool
from .readers import is_html
from .sampling import ClassTaskSampler
from .splits import SPLITS

NAME = "cifar-fs"
FILE_SPLIT = {"train": "train", "validation": "val", "test": "test"}
FIX = ("set data.download: true when online, or pass --data-root to a folder holding "
       "cifarfs/cifar100/ (or cifarfs/processed/)")
MORE_CLASSES = ("use fewer ways (the standard splits have 64/16/20 classes) or supply the full "
                "dataset")


def download_cifar_fs(root: Path) -> None:
    """Let learn2learn fetch, unzip and process the dataset (online users only)."""
    announce_download(NAME, root / "cifarfs")
    try:
        with quiet():  # learn2learn's import banner and its "Downloading CIFARFS ..." lines
            from learn2learn.vision.datasets import CIFARFS

            root.mkdir(parents=True, exist_ok=True)
            CIFARFS(str(root), mode="train", download=True)
    except Exception as exc:
        archive = root / "cifarfs.zip"
        if archive.is_file() and archive.stat().st_size and is_html(archive):
            raise DataError(f"{NAME}: {archive} is an HTML page (a failed Google Drive/Zenodo "
                            f"download), not a zip; delete it and download again") from exc
        raise DataError(f"{NAME}: downloading into {root / 'cifarfs'} with learn2learn failed "
                        f"({type(exc).__name__}: {exc}); retry, or download cifar100.zip by hand "
                        f"and unzip it into {root / 'cifarfs'}") from exc


def class_list(split_file: Path) -> list[str]:
    """Class names from a split file, one per line, blanks ignored."""
    names = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"{NAME}: split file {split_file} lists no classes; {FIX}")
    return names


def split_folders(root: Path, split: str) -> tuple[list[Path], str]:
    """The class folders of one split and where they came from (processed copy preferred)."""
    base = root / "cifarfs"
    processed = base / "processed" / FILE_SPLIT[split]
    if processed.is_dir():
        return sorted_dirs(processed), str(processed)
    splits_dir = base / "cifar100" / "splits" / "bertinetto"
    split_file = require(splits_dir / f"{FILE_SPLIT[split]}.txt", NAME, f"the {split} class list",
                         FIX)
    data = require(base / "cifar100" / "data", NAME, "the raw class folders", FIX, folder=True)
    folders = [data / name for name in class_list(split_file)]
    for folder in folders:
        require(folder, NAME, f"class folder listed in {split_file.name}", FIX, folder=True)
    return folders, str(data)


def load_split_pool(root: Path, split: str) -> ClassPool:
    folders, where = split_folders(root, split)
    if not folders:
        raise DataError(f"{NAME}: expected class folders in {where}, found none; {FIX}")
    names = [f.name for f in folders]
    pool = load_class_folders(folders, names, names, NAME,
                              origin=f"{NAME} {split} split at {where}", mode="RGB", fix=FIX)
    return replace(pool, fix_more_classes=MORE_CLASSES)


def load_cifar_fs(root: Path, options) -> dict[str, ClassTaskSampler]:
    if options.download and not (root / "cifarfs").is_dir():
        download_cifar_fs(root)
    return {split: ClassTaskSampler(load_split_pool(root, split)) for split in SPLITS}
