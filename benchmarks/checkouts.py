"""This checkout's training speed against another checkout's (e.g. a worktree at the commit
before a restructuring): process CPU seconds per meta-iteration of the same method on the same
meta-batches, each measurement in a fresh process, the two checkouts interleaved round by round
so that load from other processes hits both alike. CPU time, not wall time: a busy machine
stretches the wall clock, not the work. One JSON object: medians per checkout and their ratio.

    git worktree add /tmp/before <commit>
    PYTHONPATH=. .venv/bin/python benchmarks/checkouts.py --other /tmp/before \\
        [--methods maml-serial,fomaml-serial,imaml-serial] [--iters 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
from benchmarks.harness import configure, episodes
from benchmarks.methods import speed_methods
configure(1)
pool = episodes("omniglot5w1s", 4, "cpu")
method = speed_methods()[sys.argv[2]]("omniglot5w1s", "cpu")
method.step(pool[0])  # warm-up
seconds = []
for i in range(int(sys.argv[3])):
    start = time.process_time()
    method.step(pool[i % 4])
    seconds.append(time.process_time() - start)
print(statistics.median(seconds))
"""


def measure(checkout: Path, method: str, iters: int) -> float:
    out = subprocess.run([sys.executable, "-c", WORKER, str(checkout), method, str(iters)],
                         cwd=checkout, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--methods", default="maml-serial,fomaml-serial,imaml-serial")
    parser.add_argument("--iters", type=int, default=8, help="timed meta-iterations per process")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from measures.machine import cpu_model
    other = args.other.resolve()
    samples = {(m, c): [] for m in args.methods.split(",") for c in ("this", "other")}
    for r in range(args.rounds):
        order = [("this", ROOT), ("other", other)]
        for method in args.methods.split(","):
            for label, checkout in (order if r % 2 == 0 else order[::-1]):
                samples[method, label].append(measure(checkout, method, args.iters))
    result = {"benchmark": "checkouts", "this": str(ROOT), "other": str(other),
              "cpu": cpu_model(), "threads": 1, "iters": args.iters, "rounds": args.rounds,
              "methods": {}}
    for method in args.methods.split(","):
        this = statistics.median(samples[method, "this"])
        them = statistics.median(samples[method, "other"])
        result["methods"][method] = {
            "cpu_s_per_iter_this": round(this, 4), "cpu_s_per_iter_other": round(them, 4),
            "ratio_this_over_other": round(this / them, 3),
            "samples_this": [round(s, 4) for s in samples[method, "this"]],
            "samples_other": [round(s, 4) for s in samples[method, "other"]]}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
