"""The command line's own mistakes as one-line ConfigErrors: an argparse parser whose errors are
raised (run.py prints them as `error: ...`) instead of printing a usage block, and argparse
types that name the valid range of a number."""
from __future__ import annotations

import argparse
import math

from configs.loader import ConfigError


class Parser(argparse.ArgumentParser):
    """A mistyped, unknown or out-of-range flag is a ConfigError (one line, exit 2); argparse's
    usage block is for --help only."""

    def error(self, message):
        raise ConfigError(f"{message} ({self.prog} --help lists every flag)")


def at_least(low: int):
    """argparse type: an integer >= `low`; the message names the range."""
    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value
    return integer


def number(text: str) -> float | None:
    """The finite float `text` spells, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive(unit: str):
    """argparse type: a finite number of `unit` > 0."""
    def parse(text: str) -> float:
        value = number(text)
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number of {unit} > 0, got {text!r}")
        return value
    return parse


positive_seconds, positive_minutes = positive("seconds"), positive("minutes")


def tolerance(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = number(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 0 (0: run all --ref-steps), got {text!r}")
    return value
