"""A tqdm bar with the latest loss and accuracy (it/s and ETA come with tqdm); log lines are
written through it so they do not break the bar. Off when stderr is not a terminal."""
from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, start: int, enabled: bool = True, stream=None,
                 desc: str = "meta-train", unit: str = "it"):
        stream = stream or sys.stderr
        self.bar = tqdm(total=total, initial=start, unit=unit, dynamic_ncols=True, file=stream,
                        disable=not enabled or not stream.isatty(), desc=desc)

    def advance_to(self, done: int, total: int) -> None:
        """For callbacks that report (done, total), such as engines.evaluation.evaluate."""
        self.bar.update(done - self.bar.n)

    def update(self, stats: dict) -> None:
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
        self.bar.update(1)

    def wrap(self, log):
        if self.bar.disable:
            return log
        return lambda line: self.bar.write(line)

    def close(self) -> None:
        self.bar.close()
