"""Meta-training throughput (tasks/second) of this project's methods against learn2learn's
MAML loop and a plain Betty iMAML loop, on the same model, data, θ and settings.

Before timing, the meta-gradients of each compared pair are computed at the same θ on the same
meta-batch and their relative error is printed. Each configuration is then timed in its own
fresh subprocess (warm-up, then the median of the timed meta-iterations), interleaved in rounds
with the order rotated each round, so that load from other processes hits all configurations
alike; ratios are taken within this run only. One JSON line per configuration, then a summary.

    PYTHONPATH=. .venv/bin/python benchmarks/speed.py [--iters 20] [--rounds 2] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.harness import (SETTINGS, JsonLines, config, configure, episodes,  # noqa: E402
                                parse_or_work, run_worker, sync)
from compare.reference import rel_err  # noqa: E402

POOL = 4  # distinct meta-batches cycled through
#: Timed only when asked for (--methods): on CPU the loop variants are what `auto` runs for
#: CNN4 anyway, and FOMAML's reference costs a minute of the `make bench` budget.
OPTIONAL = ("maml-loop", "imaml-loop", "l2l-fomaml")


def worker(spec: dict) -> dict:
    """Runs in a fresh process: build one method, warm up, time `iters` meta-iterations."""
    from benchmarks.methods import speed_methods
    configure(spec["threads"])
    info = configure(spec["threads"])
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
    return {"times": times, **info}


def check_gradients(setting: str, names: list[str], pairs, device: str) -> list[dict]:
    """Relative error between each pair's meta-gradients at the same θ and meta-batch."""
    from benchmarks.methods import speed_methods
    methods = speed_methods()
    episode = episodes(setting, 1, device)[0]
    grads = {n: methods[n](setting, device).meta_gradient(episode) for n in names}
    return [{"setting": setting, "check": "meta_gradient", "ours": a, "reference": b,
             "rel_err": rel_err(grads[a], grads[b])} for a, b in pairs if a in grads and b in grads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--methods", default=None, help="comma list (default: all available)")
    parser.add_argument("--iters", type=int, default=20, help="timed meta-iterations per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parse_or_work(parser, worker)
    if args is None:
        return

    from benchmarks.methods import PAIRS, speed_methods
    info = configure(args.threads)
    names = (args.methods.split(",") if args.methods
             else [n for n in speed_methods() if n not in OPTIONAL])
    names = [n for n in names if n in speed_methods()]
    emit = JsonLines(args.out)
    pairs = [(a, b) for a, b in PAIRS if a in names and b in names]
    rows, checks = {}, []
    for setting in args.settings.split(","):
        for check in check_gradients(setting, names, pairs, info["device"]):
            checks.append(check)
            emit({"benchmark": "speed", **check})
        times = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                result = run_worker(__file__, {"method": name, "setting": setting, "iters": args.iters,
                                               "warmup": args.warmup, "threads": args.threads})
                times[name] += result["times"]
        tasks = config("maml", setting).data.meta_batch
        for name in names:
            median = statistics.median(times[name])
            rows[setting, name] = tasks / median
            emit({"benchmark": "speed", "setting": setting, "source": SETTINGS[setting][2],
                  "method": name, "tasks_per_s": round(tasks / median, 3),
                  "median_s_per_iter": round(median, 4), "iters": len(times[name]),
                  "rounds": args.rounds, "meta_batch": tasks, "inner_steps": config("maml", setting).inner.steps,
                  **info})
    ratios = {f"{s}: {a}/{b}": round(rows[s, a] / rows[s, b], 3)
              for s in args.settings.split(",") for a, b in pairs if (s, a) in rows and (s, b) in rows}
    emit({"benchmark": "speed", "summary": True, "ratios_tasks_per_s": ratios,
          "max_meta_gradient_rel_err": max((c["rel_err"] for c in checks), default=None), **info})


if __name__ == "__main__":
    main()
