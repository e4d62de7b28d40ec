"""Deterministic N-way K-shot task sampling from a ClassPool.

Why a generator per task: task `index` of `split` under `seed` must be the same tensors no
matter which tasks were drawn before, so every problem is tested on identical episodes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .pool import ClassPool
from .splits import SPLIT_CODES, SPLITS

Task = tuple[Tensor, Tensor, Tensor, Tensor]  # support_x, support_y, query_x, query_y


def task_generator(seed: int, split: str, index: int) -> torch.Generator:
    """A fresh torch.Generator that is a pure function of (seed, split, index)."""
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; valid splits are {', '.join(SPLITS)}")
    state = np.random.SeedSequence([seed, SPLIT_CODES[split], index]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


class TaskSampler(Protocol):
    """What MAMLEnv needs from one split of a dataset."""

    task_kind: str                  # "classification" or "regression"
    input_shape: tuple[int, ...]

    def check(self, ways: int, shots: int, query: int, split: str) -> None:
        """Raise DataError if such tasks cannot be drawn."""

    def sample(self, gen: torch.Generator, ways: int, shots: int, query: int) -> Task:
        """One task, drawn only from `gen`."""


class ClassTaskSampler:
    """N distinct classes relabelled 0..N-1 in draw order; K support + Q query distinct images
    each."""

    task_kind = "classification"

    def __init__(self, pool: ClassPool):
        self.pool = pool
        self.input_shape = pool.image_shape
        self._counts = torch.tensor(pool.counts(), dtype=torch.long)

    def check(self, ways: int, shots: int, query: int, split: str) -> None:
        pool = self.pool
        if ways > len(pool):
            raise DataError(f"{pool.origin}: {ways}-way tasks need {ways} classes in the {split} "
                            f"split, found {len(pool)}; {pool.fix_more_classes}")
        need = shots + query
        if len(pool) and int(self._counts.min()) < need:
            c = int(self._counts.argmin())
            raise DataError(f"{pool.origin}: class {pool.names[c]!r} of the {split} split has "
                            f"{int(self._counts[c])} examples, but shots+query = {shots}+{query} = "
                            f"{need} are needed per class; lower data.shots or data.query")

    def sample(self, gen: torch.Generator, ways: int, shots: int, query: int) -> Task:
        classes = torch.randperm(len(self.pool), generator=gen)[:ways].tolist()
        picks = [self.pool.rows[c][torch.randperm(len(self.pool.rows[c]),
                                                  generator=gen)[:shots + query]]
                 for c in classes]
        chosen = torch.stack(picks)                                  # [N, K+Q] row indices
        images = self.pool.images[chosen.reshape(-1)].reshape(ways, shots + query,
                                                              *self.input_shape)
        images = images.float().div_(255.0).contiguous()
        labels = torch.arange(ways).unsqueeze(1)
        support_x = images[:, :shots].reshape(ways * shots, *self.input_shape)
        query_x = images[:, shots:].reshape(ways * query, *self.input_shape)
        support_y = labels.expand(ways, shots).reshape(-1)
        return support_x, support_y, query_x, labels.expand(ways, query).reshape(-1)
