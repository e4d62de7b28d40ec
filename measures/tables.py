"""Tables for people to read: aligned plain text (what `run.py compare` prints, the README's
results section) and markdown (the README's speed and memory tables from benchmarks/table.py).
Only formatting; the caller turns every number into its cell. Imports nothing."""
from __future__ import annotations


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A markdown table; the first `left` columns are aligned left, the others right."""
    line = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    rule = "|" + "---|" * left + "---:|" * (len(headers) - left)
    return "\n".join([line(headers), rule, *map(line, rows)])


def megabytes(value) -> str:
    """Bytes as a megabyte cell with two decimals; '-' for None (not measured)."""
    return "-" if value is None else f"{value / 2**20:.2f}"
