"""Meta-training throughput (tasks/second) of this project's methods against learn2learn's MAML
loop and a plain Betty iMAML loop, on the same model, data, θ and settings, with the floating-
point work of one meta-iteration and this machine's measured peak beside every row.

Before timing, the meta-gradients of each compared pair are computed at the same θ on the same
meta-batch and their relative error is printed. Each configuration is then timed in its own
fresh subprocess (warm-up, then the median of the timed meta-iterations), interleaved in rounds
with the order rotated each round, so that load from other processes hits all configurations
alike; ratios are taken within this run only. Every anchor (and every forced variant of ours)
is timed at each intra-op thread setting in `--threads` and counts at its fastest; this project
at its defaults is timed as `run.py` runs it (torch's default thread count, task threads on).
FLOPs are counted once per configuration (benchmarks/peak.py: FlopCounterMode, convolutions and
matrix products), so a row's GFLOP/s is counted FLOPs / median seconds. One JSON line per
configuration, then a summary per setting.

    PYTHONPATH=. .venv/bin/python benchmarks/speed.py [--settings omniglot5w1s,omniglot20w1s] \\
        [--iters 8] [--rounds 1] [--threads 1,2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.harness import (SETTINGS, JsonLines, config, configure, episodes,  # noqa: E402
                                parse_or_work, run_worker, sync)
from measures.errors import rel_err  # noqa: E402

POOL = 4  # distinct meta-batches cycled through
#: Timed only when asked for (--methods).
OPTIONAL = ("maml-vectorized", "imaml-vectorized", "anil")


def worker(spec: dict) -> dict:
    """Runs in a fresh process: the machine's peaks, or one method: warm up, time `iters`
    meta-iterations, then count one meta-iteration's FLOPs (task threads off: the counter only
    sees the calling thread; the work is the same)."""
    info = configure(spec["threads"])
    if spec.get("peaks"):
        from benchmarks.peak import machine_peaks
        return {**machine_peaks(spec["cores"]), **info}
    from benchmarks.methods import speed_methods
    from benchmarks.peak import count_flops
    pool = episodes(spec["setting"], POOL, info["device"])
    method = speed_methods()[spec["method"]](spec["setting"], info["device"])
    for i in range(spec["warmup"]):
        method.step(pool[i % POOL])
    sync(info["device"])
    times = []
    for i in range(spec["iters"]):
        start = time.perf_counter()
        method.step(pool[i % POOL])
        sync(info["device"])
        times.append(time.perf_counter() - start)
    runner = getattr(getattr(method, "inner", None), "runner", None)
    if runner is not None:  # this project's problems: the task runner owns the task threads
        runner.task_threads = 1
    flops = count_flops(lambda: method.step(pool[0])) if info["device"] == "cpu" else None
    return {"times": times, "flops": flops, **info}


def check_gradients(setting: str, names: list[str], pairs, device: str) -> list[dict]:
    """Relative error between each pair's meta-gradients at the same θ and meta-batch, every
    side at one intra-op thread: task threads run their workers at one, and in float32 the
    anchors' own answers move by ~1e-4 between one and two threads (oneDNN and batch-norm
    reductions split differently), which would hide any real difference."""
    import torch
    from benchmarks.methods import speed_methods
    methods = speed_methods()
    episode = episodes(setting, 1, device)[0]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        grads = {n: methods[n](setting, device).meta_gradient(episode) for n in names}
    finally:
        torch.set_num_threads(previous)
    return [{"setting": setting, "check": "meta_gradient", "ours": a, "reference": b,
             "rel_err": rel_err(grads[a], grads[b])} for a, b in pairs if a in grads and b in grads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="omniglot5w1s,omniglot20w1s")
    parser.add_argument("--methods", default=None, help="comma list (default: all but "
                                                        f"{', '.join(OPTIONAL)})")
    parser.add_argument("--iters", type=int, default=8, help="timed meta-iterations per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    args = parse_or_work(parser, worker)
    if args is None:
        return

    from benchmarks.methods import DEFAULTS, PAIRS, speed_methods
    info = configure(None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    names = (args.methods.split(",") if args.methods
             else [n for n in speed_methods() if n not in OPTIONAL])
    names = [n for n in names if n in speed_methods()]
    emit = JsonLines(args.out)
    peaks = {}
    if info["device"] == "cpu":
        peaks = run_worker(__file__, {"peaks": True, "cores": cores, "threads": None})
        emit({"benchmark": "speed", "peaks": True, **peaks})
    gemm, conv = (peaks.get(f"gemm_gflops_{cores}_threads"),
                  peaks.get(f"conv_gflops_{cores}_threads"))
    pairs = [(a, b) for a, b in PAIRS if a in names and b in names]
    for setting in args.settings.split(","):
        checks = check_gradients(setting, names, pairs, info["device"])
        for check in checks:
            emit({"benchmark": "speed", **check})
        runs = [(n, t) for n in names for t in ([None] if n in DEFAULTS else args.threads)]
        times, flops, threads_of = {run: [] for run in runs}, {}, {}
        for r in range(args.rounds):
            for name, threads in runs[r % len(runs):] + runs[:r % len(runs)]:
                result = run_worker(__file__, {"method": name, "setting": setting,
                                               "iters": args.iters, "warmup": args.warmup,
                                               "threads": threads})
                times[name, threads] += result["times"]
                flops[name] = result["flops"]
                threads_of[name, threads] = result["threads"]
        cfg = config("maml", setting)
        tasks = cfg.data.meta_batch
        best = {}
        for (name, threads), values in times.items():
            median = statistics.median(values)
            if name not in best or median < best[name][0]:
                best[name] = (median, threads_of[name, threads])
            row = {"benchmark": "speed", "setting": setting, "source": SETTINGS[setting][2],
                   "method": name, "tasks_per_s": round(tasks / median, 3),
                   "median_s_per_iter": round(median, 4), "iters": len(values),
                   "rounds": args.rounds,
                   "meta_batch": tasks, "ways": cfg.data.ways, "inner_steps": cfg.inner.steps,
                   **info, "threads": threads_of[name, threads],
                   "thread_setting": "default" if threads is None else threads}
            if flops.get(name):
                achieved = flops[name] / median / 1e9
                row.update(gflop_per_iter=round(flops[name] / 1e9, 2), gflops=round(achieved, 1))
                if gemm and conv:
                    row.update(frac_gemm_peak=round(achieved / gemm, 3),
                               frac_conv_peak=round(achieved / conv, 3))
            emit(row)
        ratios = {f"{a}/{b}": round(best[b][0] / best[a][0], 3)
                  for a, b in pairs if a in best and b in best}
        emit({"benchmark": "speed", "summary": True, "setting": setting,
              "ratios_tasks_per_s": ratios,
              "fastest_threads": {n: best[n][1] for n in best},
              "max_meta_gradient_rel_err": max((c["rel_err"] for c in checks), default=None),
              **{k: v for k, v in info.items() if k != "threads"}})


if __name__ == "__main__":
    main()
