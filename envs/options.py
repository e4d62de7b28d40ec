"""The `data:` config section as a typed object, checked once when it is built.

Why: a typo such as `rotations: trian` must fail at start-up with the valid choices listed,
not silently fall back to a default. The closed sets are the registries that use them: dataset
names are envs.datasets.DATASETS, rotations are held_out.ROTATED_SPLITS, split_by splits.SPLIT_BY.
The defaults are configs/defaults.yaml's (tests/test_presets.py checks they agree), so that
envs can be used on its own with `make_env({"name": "omniglot"}, root, seed)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from configs.typed import Options, option

from . import datasets, held_out, splits
from .errors import DataError


def _datasets():
    return datasets.DATASETS  # read at each check, so a dataset registered later is valid


@dataclass(frozen=True)
class DataOptions(Options):
    """rotations/split_by/split_fractions/split_seed shape the held-out splits of the character
    datasets (omniglot, glyphs); mini-ImageNet and CIFAR-FS keep their published class splits, and
    sinusoid ignores ways. rotations: which splits get 90/180/270-degree copies as new classes."""

    section = "data"
    error = DataError

    name: str = option(choices=_datasets)
    train_name: str | None = option(choices=_datasets, default=None)
    train_extra: str | None = option(choices=_datasets, default=None)
    ways: int = option(at_least=1, default=5)
    shots: int = option(at_least=1, default=1)
    query: int = option(at_least=1, default=15)
    train_query: int | None = option(at_least=1, default=None)
    meta_batch: int = option(at_least=1, default=4)
    rotations: str = option(choices=lambda: held_out.ROTATED_SPLITS, default="train")
    split_by: str = option(choices=lambda: splits.SPLIT_BY, default="alphabet")
    split_fractions: tuple[float, ...] = (0.6, 0.2, 0.2)
    split_seed: int = option(at_least=0, default=0)
    download: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_extra and self.train_extra in (self.name, self.train_name):
            raise DataError(f"config: data.train_extra is {self.train_extra}, whose train split "
                            "the run already meta-trains on; name another dataset or unset it")
        fractions = self.split_fractions
        if (len(fractions) != 3 or any(f <= 0 for f in fractions)
                or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)):
            raise DataError(f"config: data.split_fractions is {list(fractions)!r}, but it must be "
                            "three positive numbers (train, validation, test) summing to 1, "
                            "e.g. [0.6, 0.2, 0.2]")
