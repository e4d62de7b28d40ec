"""Sinusoid regression tasks (Finn et al. 2017): y = A sin(x - phase), no files needed."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .sampling import Task
from .splits import SPLITS


class SinusoidSampler:
    """Amplitude ~ U(0.1, 5), phase ~ U(0, pi), x ~ U(-5, 5); x and y are [K, 1] float32."""

    task_kind = "regression"
    input_shape = (1,)

    def __init__(self, amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    def check(self, ways: int, shots: int, query: int, split: str) -> None:
        """Any number of points can be drawn."""

    def function(self, gen: torch.Generator) -> tuple[float, float]:
        """The task's (amplitude, phase); drawn first, so it is the same for any K and Q."""
        a, p = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        return (self.amplitude[0] + a * (self.amplitude[1] - self.amplitude[0]),
                self.phase[0] + p * (self.phase[1] - self.phase[0]))

    def sample(self, gen: torch.Generator, ways: int, shots: int, query: int) -> Task:
        amplitude, phase = self.function(gen)
        low, high = self.x_range
        x = low + (high - low) * torch.rand(shots + query, 1, generator=gen)
        y = amplitude * torch.sin(x - phase)
        return x[:shots], y[:shots], x[shots:], y[shots:]


def load_sinusoid(root: Path, options) -> dict[str, SinusoidSampler]:
    """Every split draws from the same task distribution; splits differ only by their seeds."""
    return {split: SinusoidSampler() for split in SPLITS}
