"""This machine's floating-point limit, measured, and the work of one meta-iteration, counted.

Why: a speed ratio against another library says nothing about how far either is from what the
hardware can do. `gemm_peak` times a large float32 matrix product (the best case for the BLAS),
`conv_peak` a 3x3 convolution of the shapes CNN4 runs on Omniglot (through oneDNN, as training
runs it), each on one thread and on every core (for the convolution: one thread per core, each
running its own convolution, which is how task threads use the cores). `count_flops` counts the
convolution and matrix-product FLOPs of one call with torch's FlopCounterMode (2 per
multiply-add; elementwise work is not counted), so achieved GFLOP/s = counted FLOPs / seconds.
"""
from __future__ import annotations

import threading
import time

import torch
import torch.nn.functional as F


def _best_rate(run, flops: float, repeats: int) -> float:
    run()  # warm-up (allocations, oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def gemm_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n x n float32 matrix product on `threads` intra-op threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        return _best_rate(lambda: torch.mm(a, b), 2.0 * n ** 3, repeats)
    finally:
        torch.set_num_threads(previous)


def conv_peak(parallel: int, shape=(75, 64, 14, 14), repeats: int = 5) -> float:
    """GFLOP/s of 3x3 convolutions (padding 1, as CNN4's) on inputs of `shape`, `parallel`
    threads each running its own on one intra-op thread."""
    n, c, h, w = shape
    flops = 2.0 * n * c * c * 9 * h * w
    inputs = [(torch.randn(shape), torch.randn(c, c, 3, 3)) for _ in range(parallel)]
    barrier = threading.Barrier(parallel)

    def one(x, weight, out, index):
        torch.set_num_threads(1)
        barrier.wait()
        for _ in range(4):
            F.conv2d(x, weight, padding=1)
        out[index] = time.perf_counter()

    def run():
        ends = [0.0] * parallel
        workers = [threading.Thread(target=one, args=(x, wt, ends, i))
                   for i, (x, wt) in enumerate(inputs)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return max(ends) - start
    run()
    best = min(run() for _ in range(repeats))
    return parallel * 4 * flops / best / 1e9


def count_flops(run) -> float:
    """Convolution and matrix-product FLOPs of `run()` (on the calling thread: FlopCounterMode
    does not see work done on other threads, so count with task threads off)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def machine_peaks(cores: int) -> dict:
    """The four peaks every speed row is read against."""
    return {"gemm_gflops_1_thread": round(gemm_peak(1), 1),
            f"gemm_gflops_{cores}_threads": round(gemm_peak(cores), 1),
            "conv_gflops_1_thread": round(conv_peak(1), 1),
            f"conv_gflops_{cores}_threads": round(conv_peak(cores), 1),
            "conv_shape": [75, 64, 14, 14], "gemm_n": 2048}
