"""Seeded, held-out class splits (by alphabet or by character) that work on any subset.

Why our own: learn2learn's Omniglot split uses an unseeded shuffle and fixed class counts,
so it is neither reproducible nor usable on a subset of alphabets.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import DataError
from .pool import ClassPool

SPLITS = ("train", "validation", "test")
#: What a held-out split keeps apart: whole alphabets (groups), or single characters.
SPLIT_BY = ("alphabet", "character")
SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}


def split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """How many keys each split gets: nearest to the fractions, at least one each."""
    n_val = max(1, math.floor(fractions[1] * n + 0.5))
    n_test = max(1, math.floor(fractions[2] * n + 0.5))
    return n - n_val - n_test, n_val, n_test


def split_keys(keys: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Partition distinct keys into train/validation/test, a pure function of (keys, fractions,
    seed)."""
    unique = sorted(set(keys))
    sizes = split_sizes(len(unique), fractions)
    if min(sizes) < 1:
        raise ValueError(f"cannot split {len(unique)} keys into three non-empty parts")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5B1])).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    cuts = np.cumsum(sizes)
    parts = (shuffled[:cuts[0]], shuffled[cuts[0]:cuts[1]], shuffled[cuts[1]:])
    return {name: sorted(part) for name, part in zip(SPLITS, parts)}


def split_pool(pool: ClassPool, split_by: str, fractions: Sequence[float], seed: int,
               dataset: str) -> dict[str, ClassPool]:
    """Split a pool's classes so no alphabet (or character) appears in two splits."""
    keys = pool.groups if split_by == "alphabet" else pool.names
    n_keys = len(set(keys))
    if n_keys < 3:
        unit = "alphabets" if split_by == "alphabet" else "classes"
        raise DataError(
            f"{dataset}: {pool.origin} has {n_keys} {unit}, but a train/validation/test split "
            f"needs at least 3; add data or use data.split_by: character"
        )
    assigned = split_keys(keys, fractions, seed)
    where = {key: name for name, part in assigned.items() for key in part}
    pools = {}
    for name in SPLITS:
        classes = [c for c, key in enumerate(keys) if where[key] == name]
        pools[name] = pool.select(
            classes, f"{dataset} {name} split (by {split_by}, split_seed {seed}) of {pool.origin}")
    return pools
