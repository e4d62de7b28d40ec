"""The datasets by name: `data.name` -> loader(root, options) -> {split: TaskSampler}.

Why a module of its own: the typed `data:` options name this registry as the closed set of
`data.name`, and make_env uses it to load; both import it, neither imports the other."""
from __future__ import annotations

from .cifar_fs import load_cifar_fs
from .glyphs import load_glyphs
from .mini_imagenet import load_mini_imagenet
from .omniglot import load_omniglot
from .sinusoid import load_sinusoid

DATASETS = {
    "sinusoid": load_sinusoid,
    "omniglot": load_omniglot,
    "glyphs": load_glyphs,
    "mini-imagenet": load_mini_imagenet,
    "cifar-fs": load_cifar_fs,
}
