"""Class-per-folder image trees (Omniglot, CIFAR-FS) decoded once into a ClassPool."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError
from .pool import ClassPool
from .readers import read_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def sorted_dirs(folder: Path) -> list[Path]:
    """Subfolders in a stable order (os.listdir order differs between machines)."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_class_folders(class_dirs: Sequence[Path], names: Sequence[str], groups: Sequence[str],
                       dataset: str, origin: str, mode: str, size: int | None = None,
                       invert: bool = False, fix: str = "download the dataset again") -> ClassPool:
    """One class per folder; mode 'L' gives [N, 1, H, W], 'RGB' [N, 3, H, W]; invert makes ink
    255."""
    files, labels = [], []
    for c, folder in enumerate(class_dirs):
        found = image_files(folder)
        if not found:
            raise DataError(f"{dataset}: expected .png/.jpg images in class folder {folder}, "
                            f"found none; {fix}")
        files += found
        labels += [c] * len(found)
    if not files:
        raise DataError(f"{dataset}: expected class folders of images for {origin}, "
                        f"found none; {fix}")
    pixels = read_images(files, dataset, mode, size)
    if invert:
        pixels = 255 - pixels
    images = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)
    return ClassPool.from_arrays(np.ascontiguousarray(images), labels, names, groups, origin=origin)
