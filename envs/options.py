"""The `data:` section of the config, checked once into a typed object.

Why: a typo such as `rotations: trian` must fail at start-up with the valid choices listed,
not silently fall back to a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .errors import DataError

ROTATIONS = ("train", "all", "none")
SPLIT_BY = ("alphabet", "character")


@dataclass(frozen=True)
class DataOptions:
    """rotations/split_by/split_fractions/split_seed shape the held-out splits of the character
    datasets (omniglot, glyphs); mini-ImageNet and CIFAR-FS keep their published class splits, and
    sinusoid ignores ways. rotations: which splits get 90/180/270-degree copies as new classes."""

    name: str
    train_name: str | None = None
    ways: int = 5
    shots: int = 1
    query: int = 15
    meta_batch: int = 4
    rotations: str = "train"
    split_by: str = "alphabet"
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    download: bool = False


def _choice(key: str, value: Any, valid) -> Any:
    if value not in valid:
        raise DataError(f"config: data.{key} is {value!r}, which is not one of {', '.join(map(str, valid))}; "
                        f"set data.{key} to one of those")
    return value


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(f"config: data.{key} is {value!r}, but it must be an integer >= {minimum}; "
                        f"fix data.{key} in the config or --set data.{key}=...")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DataError(f"config: data.{key} is {value!r}, but it must be true or false; fix data.{key}")
    return value


def _fractions(value: Any) -> tuple[float, float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 3
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)
          and math.isclose(sum(value), 1.0, abs_tol=1e-6))
    if not ok:
        raise DataError(f"config: data.split_fractions is {value!r}, but it must be three positive "
                        f"numbers (train, validation, test) summing to 1, e.g. [0.6, 0.2, 0.2]")
    return tuple(float(v) for v in value)


def parse_options(data: dict, dataset_names) -> DataOptions:
    """Validate a `data:` dict against the known keys, values and dataset names."""
    if not isinstance(data, dict):
        raise DataError(f"config: the data section is {type(data).__name__}, not a mapping; "
                        f"write it as `data: {{name: omniglot, ways: 5, ...}}`")
    known = [f.name for f in fields(DataOptions)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DataError(f"config: unknown data keys {unknown}; valid keys are {', '.join(known)}")
    valid_names = sorted(dataset_names)
    if "name" not in data:
        raise DataError(f"config: data.name is missing; set it to one of {', '.join(valid_names)}")
    train_name = data.get("train_name")
    return DataOptions(
        name=_choice("name", data["name"], valid_names),
        train_name=None if train_name is None else _choice("train_name", train_name, valid_names),
        ways=_int("ways", data.get("ways", DataOptions.ways), 1),
        shots=_int("shots", data.get("shots", DataOptions.shots), 1),
        query=_int("query", data.get("query", DataOptions.query), 1),
        meta_batch=_int("meta_batch", data.get("meta_batch", DataOptions.meta_batch), 1),
        rotations=_choice("rotations", data.get("rotations", DataOptions.rotations), ROTATIONS),
        split_by=_choice("split_by", data.get("split_by", DataOptions.split_by), SPLIT_BY),
        split_fractions=_fractions(data.get("split_fractions", DataOptions.split_fractions)),
        split_seed=_int("split_seed", data.get("split_seed", DataOptions.split_seed), 0),
        download=_bool("download", data.get("download", DataOptions.download)),
    )
