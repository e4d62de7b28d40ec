"""Episode: a meta-batch of few-shot tasks stacked on dim 0, moved and sliced as one object."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class Episode:
    support_x: Tensor   # [T, N*K, C, H, W] float32 (sinusoid: [T, K, 1])
    support_y: Tensor   # [T, N*K] int64          (sinusoid: [T, K, 1] float32)
    query_x: Tensor     # [T, N*Q, C, H, W]
    query_y: Tensor     # [T, N*Q]

    def _map(self, fn) -> "Episode":
        return Episode(*(fn(getattr(self, f.name)) for f in fields(self)))

    def to(self, device) -> "Episode":
        return self._map(lambda t: t.to(device))

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def task(self, i: int) -> "Episode":
        """Task i alone, keeping the leading task dimension (T=1)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"task {i} out of range for an episode of {len(self)} tasks")
        i = i % len(self)
        return self._map(lambda t: t[i:i + 1])

    def split(self, parts: int, part: int) -> "Episode":
        """Contiguous chunk `part` of `parts` (sizes differ by at most one), e.g. per
        data-parallel rank."""
        if not 0 <= part < parts or parts > len(self):
            raise ValueError(f"cannot take part {part} of {parts} from an episode of "
                             f"{len(self)} tasks")
        return self._map(lambda t: torch.tensor_split(t, parts)[part])

    @staticmethod
    def stack(tasks: list[tuple[Tensor, Tensor, Tensor, Tensor]]) -> "Episode":
        """Stack per-task (support_x, support_y, query_x, query_y) tuples."""
        return Episode(*(torch.stack(column) for column in zip(*tasks)))
