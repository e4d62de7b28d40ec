"""Character datasets (Omniglot, glyphs): a seeded held-out class split, then optional rotations.

Rotations come after the split so the four rotations of a character always share its split.
"""

from __future__ import annotations

from dataclasses import replace

from .pool import ClassPool
from .sampling import ClassTaskSampler
from .splits import SPLITS, split_pool

ROTATED_SPLITS = {"train": ("train",), "all": SPLITS, "none": ()}


def held_out_samplers(pool: ClassPool, options, dataset: str) -> dict[str, ClassTaskSampler]:
    """Split `pool` per options.split_by/fractions/seed, rotate per options.rotations, wrap for
    sampling."""
    if options.split_by == "alphabet":
        fix = ("use fewer ways, set data.split_by: character, or change "
               "data.split_fractions/data.split_seed")
    else:
        fix = "use fewer ways or change data.split_fractions"
    pool = replace(pool, fix_more_classes=fix)
    pools = split_pool(pool, options.split_by, options.split_fractions, options.split_seed, dataset)
    for split in ROTATED_SPLITS[options.rotations]:
        pools[split] = pools[split].with_rotations()
    return {split: ClassTaskSampler(p) for split, p in pools.items()}
