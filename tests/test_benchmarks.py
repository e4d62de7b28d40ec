"""The benchmark scripts' own arithmetic (no timings): FLOPs counted exactly, thread settings
parsed, and the committed results rendered into the README's tables."""
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_flops_are_counted_exactly():
    from benchmarks.peak import count_flops
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    assert count_flops(lambda: torch.mm(a, b)) == 2 * 64 * 32 * 16
    x, w = torch.randn(3, 4, 10, 10), torch.randn(5, 4, 3, 3)
    assert count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1)) == 2 * 3 * 5 * 4 * 9 * 100


def test_thread_settings():
    from benchmarks.harness import thread_settings
    assert thread_settings("2,1,2") == [1, 2]
    assert thread_settings("")[0] == 1


def test_committed_results_render_every_table():
    from benchmarks.table import evaluation_tables, memory_tables, profile_tables, read, speed_tables
    rows = read(ROOT / "benchmarks" / "results")
    text = "\n".join(speed_tables(rows) + evaluation_tables(rows) + memory_tables(rows)
                     + profile_tables(rows))
    for needle in ("GEMM 2048³", "maml/l2l-maml", "of conv peak", "speedup vs l2l", "K=50",
                   "Where one maml meta-iteration's time goes"):
        assert needle in text, needle
