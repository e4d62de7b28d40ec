"""Where one meta-iteration's time goes: torch.profiler over one training step of a method (task
threads off, one intra-op thread: the profiler's CPU view of the work each core does), self time
grouped by kind of kernel, beside the share the counted FLOPs would take at the measured
convolution peak. The rest is what keeps a step below the peak.

    PYTHONPATH=. .venv/bin/python benchmarks/time_breakdown.py [--method maml]
        [--setting omniglot5w1s]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.harness import JsonLines, configure, episodes  # noqa: E402

#: kind -> substrings of aten op names (first match wins)
KINDS = {
    "convolution": ("convolution", "conv2d", "mkldnn_conv"),
    "batch norm": ("batch_norm", "BatchNorm"),
    "max-pool": ("max_pool",),
    "matrix product": ("mm", "addmm", "linear"),
    "elementwise and reductions": ("mul", "add", "sub", "div", "sum", "mean", "clamp", "threshold",
                                   "relu", "neg", "pow", "sqrt", "where", "fill", "copy",
                                   "softmax", "nll", "exp", "log"),
}


def kind_of(name: str) -> str:
    for kind, needles in KINDS.items():
        if any(n in name for n in needles):
            return kind
    return "other (autograd bookkeeping, views, allocation)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="maml")
    parser.add_argument("--setting", default="omniglot5w1s")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.methods import speed_methods
    from benchmarks.peak import conv_peak, count_flops
    info = configure(1)
    pool = episodes(args.setting, 2, info["device"])
    method = speed_methods()[args.method](args.setting, info["device"])
    runner = getattr(getattr(method, "inner", None), "runner", None)
    if runner is not None:  # this project's problems: the task runner owns the task threads
        runner.task_threads = 1
    method.step(pool[0])
    flops = count_flops(lambda: method.step(pool[1]))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        method.step(pool[0])
    events = [e for e in prof.key_averages() if e.key.startswith("aten::") or "Backward" in e.key]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
    groups: dict[str, float] = {}
    for e in events:
        groups[kind_of(e.key)] = groups.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / 1e6
    groups["other (autograd bookkeeping, views, allocation)"] = (
        groups.get("other (autograd bookkeeping, views, allocation)", 0.0) + total
        - sum(groups.values()))
    peak = conv_peak(1)
    JsonLines(args.out)({
        "benchmark": "profile", "method": args.method, "setting": args.setting,
        "seconds_profiled": round(total, 3), "gflop": round(flops / 1e9, 2),
        "conv_peak_gflops_1_thread": round(peak, 1),
        "seconds_at_conv_peak": round(flops / 1e9 / peak, 3),
        "seconds_by_kind": {k: round(v, 3)
                            for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_ops": [[e.key, round(e.self_cpu_time_total / 1e6, 4), e.count]
                    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]],
        **info})


if __name__ == "__main__":
    main()
