"""mini-ImageNet from learn2learn's cache pickles (Ravi & Larochelle splits: 64/16/20 classes).

Each <root>/mini-imagenet-cache-<split>.pkl holds {'image_data': uint8 [N, 84, 84, 3],
'class_dict': {class name: [row, ...]}}. We read the files ourselves (learn2learn yields
0-255 floats and keeps a second copy); its downloader is used only to fetch missing files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .paths import announce_download, quiet, require
from .pool import ClassPool
from .readers import is_html, read_pickle
from .sampling import ClassTaskSampler
from .splits import SPLITS

NAME = "mini-imagenet"
FIX = ("set data.download: true when online, or pass --data-root to a folder holding "
       "mini-imagenet-cache-{train,validation,test}.pkl")
MORE_CLASSES = "use fewer ways (the standard splits have 64/16/20 classes) or supply the full files"


def cache_file(root: Path, split: str) -> Path:
    return root / f"mini-imagenet-cache-{split}.pkl"


def download_split(root: Path, split: str) -> None:
    """Let learn2learn fetch the pickle; afterwards the caller re-checks what actually arrived."""
    announce_download(NAME, cache_file(root, split))
    try:
        with quiet():  # learn2learn's import banner and its per-source "Downloading ..." lines
            from learn2learn.vision.datasets import MiniImagenet

            root.mkdir(parents=True, exist_ok=True)
            MiniImagenet(str(root), mode=split, download=True)
    except Exception as exc:
        path = cache_file(root, split)
        if path.is_file() and path.stat().st_size and is_html(path):
            return  # read_pickle below reports the HTML page with its fix
        raise DataError(f"{NAME}: downloading {path} with learn2learn failed "
                        f"({type(exc).__name__}: {exc}); retry, or download the file "
                        f"by hand") from exc


def _bad(path: Path, found: str) -> DataError:
    return DataError(f"{NAME}: {path} should hold a dict with 'image_data' "
                     f"(uint8 [N, 84, 84, 3]) and "
                     f"'class_dict' (class -> row indices), but {found}; delete it and "
                     f"download again")


def _contents(path: Path, data) -> tuple[np.ndarray, list[str], list[torch.Tensor]]:
    """Check the unpickled dict; return images, sorted class names and each class's rows."""
    if not isinstance(data, dict) or not {"image_data", "class_dict"} <= set(data):
        keys = f" with keys {sorted(map(str, data))}" if isinstance(data, dict) else ""
        raise _bad(path, f"it holds a {type(data).__name__}{keys}")
    images, class_dict = data["image_data"], data["class_dict"]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
            and images.shape[-1] == 3):
        raise _bad(path, f"image_data is {type(images).__name__} "
                         f"{getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}")
    if not isinstance(class_dict, dict) or not class_dict:
        raise _bad(path, f"class_dict is an empty or non-dict {type(class_dict).__name__}")
    names = sorted(class_dict)
    try:
        rows = [torch.as_tensor(np.asarray(class_dict[n], dtype=np.int64)).reshape(-1)
                for n in names]
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"a class_dict entry is not a list of integers ({exc})") from exc
    for name, r in zip(names, rows):
        if len(r) and (int(r.min()) < 0 or int(r.max()) >= len(images)):
            raise _bad(path, f"class {name!r} lists rows outside 0..{len(images) - 1}")
    return images, [str(n) for n in names], rows


def load_split_pool(root: Path, split: str, download: bool = False) -> ClassPool:
    """One split's pickle as a pool, images channels-first (a view: no second copy)."""
    path = cache_file(root, split)
    if download and not path.is_file():
        download_split(root, split)
    require(path, NAME, f"the {split} cache pickle", FIX)
    images, names, rows = _contents(path, read_pickle(path, NAME))
    chw = torch.from_numpy(images).permute(0, 3, 1, 2)
    return ClassPool(chw, rows, names, names, origin=f"{NAME} {split} split at {path}",
                     fix_more_classes=MORE_CLASSES)


def load_mini_imagenet(root: Path, options) -> dict[str, ClassTaskSampler]:
    return {split: ClassTaskSampler(load_split_pool(root, split, options.download))
            for split in SPLITS}
