"""Peak memory of one call, the measure `run.py compare` reports and `benchmarks/memory.py`
records: on the CPU from torch.profiler's allocation events, on CUDA from the allocator's peak
counter. MEMORY_METHODS says in words what each number is. Imports only torch."""
from __future__ import annotations

import contextlib
import gc
import os

import torch


@contextlib.contextmanager
def quiet_stderr():
    """The profiler's C++ side (kineto) prints start/stop lines to fd 2; hide them."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_cpu_bytes(fn) -> int:
    """Peak bytes held by torch's CPU allocator during fn(), above the level at its start:
    the running sum of the allocation (+) and free (−) events that torch.profiler records
    with profile_memory=True. Python objects outside tensors are not counted."""
    from torch.profiler import ProfilerActivity, profile
    # Python's cycle collector would otherwise free earlier calls' tensors inside the window
    # (their frees count as negative and can hide the whole peak); collect first, then hold it.
    gc.collect()
    gc.disable()
    try:
        with quiet_stderr(), profile(activities=[ProfilerActivity.CPU],
                                     profile_memory=True) as prof:
            fn()
    finally:
        gc.enable()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
              and str(e.device_type()).endswith("CPU")]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return peak


def peak_cuda_bytes(fn) -> int:
    """torch.cuda.max_memory_allocated during fn(), above the level at its start."""
    torch.cuda.synchronize()
    start = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - start)


def peak_bytes(fn, cuda: bool) -> int:
    """peak_cuda_bytes(fn) when the call runs on a GPU, else peak_cpu_bytes(fn)."""
    return peak_cuda_bytes(fn) if cuda else peak_cpu_bytes(fn)


MEMORY_METHODS = {
    "cpu": "torch.profiler(profile_memory=True): peak of the running sum of CPU allocator "
           "allocations minus frees during one call, above the level at its start",
    "cuda": "torch.cuda.max_memory_allocated() during one call minus memory_allocated() "
            "at its start",
}
