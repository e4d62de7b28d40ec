"""Progress of a long loop. On a terminal: a tqdm bar with the latest loss and accuracy (it/s and
ETA come with tqdm); log lines are written through it so they do not break the bar. Redirected
to a file (`nohup run.py ... > out.txt`): no bar, but a plain line at most once a minute with the
same numbers, so a log that is tailed hours into a run says how far it is and how long is left."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


def say(line: str) -> None:
    """print, flushed: a redirected stdout is block-buffered and would hold lines for hours."""
    print(line, flush=True)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    def __init__(self, total: int, start: int, enabled: bool = True, stream=None,
                 desc: str = "meta-train", unit: str = "it", log=None,
                 line_seconds: float = 60.0):
        stream = stream or sys.stderr
        on_terminal = stream.isatty()
        self.bar = tqdm(total=total, initial=start, unit=unit, dynamic_ncols=True, file=stream,
                        disable=not enabled or not on_terminal, desc=desc)
        # Plain lines only where the bar is off because the output is not a terminal.
        self.log = log if enabled and not on_terminal else None
        self.line_seconds = line_seconds
        self.total, self.desc, self.unit = total, desc, unit
        self.done, self.start = start, start
        self.started = self.last_line = time.perf_counter()

    def advance_to(self, done: int, total: int) -> None:
        """For callbacks that report (done, total), such as engines.evaluation.evaluate."""
        self.bar.update(done - self.bar.n)
        self._advance(done - self.done, {})

    def update(self, stats: dict) -> None:
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
        self.bar.update(1)
        self._advance(1, stats)

    def _advance(self, steps: int, stats: dict) -> None:
        self.done += steps
        if self.log is None:  # a terminal (the bar shows it) or progress off
            return
        now = time.perf_counter()
        if now - self.last_line < self.line_seconds:
            return
        self.last_line = now
        self.log(self.line(stats, now))

    def line(self, stats: dict, now: float) -> str:
        """`meta-train 2550/10400: loss 0.268, acc 0.900; 1.93 s/it, about 4.2 h left`."""
        shown = ", ".join(f"{k} {v:.3f}" for k, v in stats.items())
        text = f"{self.desc} {self.done}/{self.total}" + (f": {shown}" if shown else "")
        if self.done > self.start:
            per_step = (now - self.started) / (self.done - self.start)
            left = duration(per_step * (self.total - self.done))
            text += f"; {per_step:.2f} s/{self.unit}, about {left} left"
        return text

    def wrap(self, log):
        if self.bar.disable:
            return log
        return lambda line: self.bar.write(line)

    def close(self) -> None:
        self.bar.close()
