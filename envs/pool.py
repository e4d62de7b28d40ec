"""ClassPool: every image of one split, in memory, grouped by class.

Why this shape: episodes are drawn thousands of times, so images are decoded once into one
uint8 tensor and classes are just row-index lists into it (ragged sizes allowed, and class
subsets for splits cost no image copies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class ClassPool:
    images: Tensor        # [N, C, H, W] uint8; 255 means 1.0 (ink for Omniglot/glyphs)
    rows: list[Tensor]    # rows[c]: int64 indices into `images` of class c's examples
    names: list[str]      # class names, unique within the pool
    groups: list[str]     # per class: what a held-out split keeps together (alphabet, or name)
    origin: str           # "dataset split at path", for error messages
    fix_more_classes: str = "use fewer ways"  # what to tell a user whose split is too small

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"ClassPool images must be uint8 [N, C, H, W], got "
                             f"{self.images.dtype} {tuple(self.images.shape)}")
        if not (len(self.rows) == len(self.names) == len(self.groups)):
            raise ValueError("ClassPool rows, names and groups must have one entry per class")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def counts(self) -> list[int]:
        return [len(r) for r in self.rows]

    @classmethod
    def from_arrays(cls, images: np.ndarray | Tensor, labels: Sequence[int] | np.ndarray,
                    names: Sequence[str], groups: Sequence[str] | None = None,
                    **kwargs) -> "ClassPool":
        """Build from [N, C, H, W] uint8 images and a class index (into `names`) per image."""
        images = torch.as_tensor(images)
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=len(names)).tolist()
        rows = list(torch.split(order, counts))
        groups = list(groups) if groups is not None else list(names)
        return cls(images, rows, list(names), groups, **kwargs)

    def select(self, classes: Sequence[int], origin: str | None = None) -> "ClassPool":
        """A pool of some classes, sharing this pool's image storage."""
        return ClassPool(self.images, [self.rows[c] for c in classes],
                         [self.names[c] for c in classes], [self.groups[c] for c in classes],
                         origin or self.origin, self.fix_more_classes)

    def union(self, other: "ClassPool") -> "ClassPool":
        """This pool's classes, then `other`'s, as one pool (each class keeps its own images;
        a name both pools use gets `other`'s origin appended so names stay unique)."""
        if self.image_shape != other.image_shape:
            raise ValueError(f"cannot join {other.origin} {other.image_shape} to {self.origin} "
                             f"{self.image_shape}: images differ in shape")
        offset = len(self.images)
        taken = set(self.names)
        names = [n if n not in taken else f"{n} ({other.origin})" for n in other.names]
        return ClassPool(torch.cat([self.images, other.images]),
                         self.rows + [r + offset for r in other.rows], self.names + names,
                         self.groups + list(other.groups),
                         f"{self.origin} + {other.origin}", self.fix_more_classes)

    def with_rotations(self) -> "ClassPool":
        """Each class plus its 90/180/270-degree rotations as three new classes (same group)."""
        used = torch.cat(self.rows) if self.rows else torch.zeros(0, dtype=torch.long)
        base = self.images[used]                       # only images of this pool's classes
        images = torch.cat([torch.rot90(base, k, dims=(-2, -1)) for k in range(4)])
        starts = np.cumsum([0] + self.counts()[:-1])
        rows, names, groups = [], [], []
        for k in range(4):
            for c, start in enumerate(starts):
                offset = k * len(base) + int(start)
                rows.append(torch.arange(offset, offset + len(self.rows[c])))
                names.append(self.names[c] if k == 0 else f"{self.names[c]}@rot{90 * k}")
                groups.append(self.groups[c])
        return ClassPool(images.contiguous(), rows, names, groups, self.origin + " (+rotations)",
                         self.fix_more_classes)
