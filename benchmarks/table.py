"""Renders benchmarks/results/*.jsonl (written by `make bench`) as markdown tables for the
README's "Speed and memory" section. Every number comes from those files.

    PYTHONPATH=. .venv/bin/python benchmarks/table.py [benchmarks/results]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measures.tables import markdown_table  # noqa: E402


def read(folder: Path) -> list[dict]:
    rows = []
    for file in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return rows


def speed_tables(rows: list[dict]) -> list[str]:
    out = []
    speed = [r for r in rows if r.get("benchmark") == "speed"]
    peaks = next((r for r in speed if r.get("peaks")), None)
    if peaks:
        cores = peaks["cpus"]
        out += ["Peaks measured in the same run (GFLOP/s, float32; benchmarks/peak.py):", "",
                markdown_table(["kernel", "1 thread", f"{cores} cores"], [
                    [f"GEMM {peaks['gemm_n']}³", f"{peaks['gemm_gflops_1_thread']:.0f}",
                     f"{peaks[f'gemm_gflops_{cores}_threads']:.0f}"],
                    ["3x3 conv " + "x".join(map(str, peaks["conv_shape"]))
                     + " (oneDNN; one per core)",
                     f"{peaks['conv_gflops_1_thread']:.0f}",
                     f"{peaks[f'conv_gflops_{cores}_threads']:.0f}"]],
                    left=1), ""]
    for setting in dict.fromkeys(r["setting"] for r in speed if "tasks_per_s" in r):
        runs = [r for r in speed if r.get("setting") == setting and "tasks_per_s" in r]
        r0 = runs[0]
        out += [f"**{setting}** ({r0['source']}; {r0['ways']}-way, meta-batch {r0['meta_batch']}, "
                f"{r0['inner_steps']} inner steps; {r0['device']}, torch {r0['torch']}; median of "
                f"{r0['iters']} timed meta-iterations):", "",
                markdown_table(["method", "threads", "tasks/s", "s/iteration", "GFLOP/iteration",
                                "GFLOP/s", "of conv peak", "of GEMM peak"],
                               [[r["method"],
                                 str(r["thread_setting"])
                                 + ("" if r["thread_setting"] != "default"
                                    else f" ({r['threads']})"),
                                 f"{r['tasks_per_s']:.2f}", f"{r['median_s_per_iter']:.3f}",
                                 _num(r.get("gflop_per_iter"), ".1f"), _num(r.get("gflops"), ".1f"),
                                 _num(r.get("frac_conv_peak"), ".0%"),
                                 _num(r.get("frac_gemm_peak"), ".0%")]
                                for r in runs], left=2)]
        summary = next((r for r in speed if r.get("summary") and r.get("setting") == setting), None)
        if summary:
            out += ["", markdown_table(["ratio (tasks/s; each side at its fastest thread setting)",
                                        "value"],
                                       [[k, f"{v:.2f}"]
                                        for k, v in summary["ratios_tasks_per_s"].items()])]
        checks = [r for r in speed if r.get("check") and r.get("setting") == setting]
        if checks:
            out += ["", markdown_table(["ours", "reference",
                                        "meta-gradient rel. error (float32, 1 thread)"],
                                       [[c["ours"], c["reference"], f"{c['rel_err']:.1e}"]
                                        for c in checks],
                                       left=2)]
        out.append("")
    return out


def evaluation_tables(rows: list[dict]) -> list[str]:
    runs = [r for r in rows if r.get("benchmark") == "evaluation" and "way" in r]
    summary = next((r for r in rows if r.get("benchmark") == "evaluation" and r.get("summary")),
                   None)
    if not runs:
        return []
    r0 = runs[0]
    out = [f"The standard test, {r0['episodes']} episodes x {r0['steps']} steps "
           f"({r0['checkpoint']}; each way in a fresh process):", "",
           markdown_table(["way", "threads", "seconds", "episodes/s", "mean accuracy",
                           "max accuracy difference"],
                          [[r["way"], f"{r.get('thread_setting', r['threads'])}"
                            + (f" ({r['threads']})" if r.get("thread_setting") == "default"
                               else ""),
                            f"{r['median_s']:.1f}", f"{r['episodes_per_s']:.2f}",
                            f"{r['mean_accuracy']:.4f}",
                            f"{next(v for k, v in r.items() if k.startswith('max_abs_diff')):.3f}"]
                           for r in runs], left=2)]
    if summary:
        key = next(k for k in summary if k.startswith("speedup_vs_"))
        out += ["", markdown_table([f"{key.replace('_', ' ')} (each at its fastest setting)",
                                    "value"],
                                   [[w, f"{v:.2f}"] for w, v in summary[key].items()])]
    return out


def profile_tables(rows: list[dict]) -> list[str]:
    out = []
    for r in (r for r in rows if r.get("benchmark") == "profile"):
        out += ["", f"Where one {r['method']} meta-iteration's time goes ({r['setting']}, one "
                    f"thread, task threads off; torch.profiler self time, "
                    f"{r['seconds_profiled']:.3f} s in all; its "
                    f"{r['gflop']:.1f} GFLOP would take {r['seconds_at_conv_peak']:.3f} s at the "
                    f"one-thread convolution peak of {r['conv_peak_gflops_1_thread']:.0f} "
                    f"GFLOP/s):", "",
                markdown_table(["kernels", "seconds", "share"],
                               [[k, f"{v:.3f}", f"{v / r['seconds_profiled']:.0%}"]
                                for k, v in r["seconds_by_kind"].items()], left=1)]
    return out


def _num(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def memory_tables(rows: list[dict]) -> list[str]:
    runs = [r for r in rows if r.get("benchmark") == "memory" and "peak_mb" in r]
    if not runs:
        return []
    steps = sorted({r["inner_steps"] for r in runs})
    methods = list(dict.fromkeys(r["method"] for r in runs))
    peak = {(r["method"], r["inner_steps"]): r["peak_mb"] for r in runs}
    out = ["", f"Peak memory of one meta-gradient, MB "
               f"({runs[0]['setting']}; {runs[0]['measure']}):", "",
           markdown_table(["method", *(f"K={k}" for k in steps)],
                          [[m, *(f"{peak.get((m, k), float('nan')):.0f}" for k in steps)]
                           for m in methods])]
    for r in rows:
        if r.get("benchmark") == "memory" and r.get("check"):
            out += ["", f"Checkpointed MAML's meta-gradient vs plain MAML at K={r['inner_steps']}: "
                        f"relative error {r['rel_err']:.1e}."]
    return out


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    rows = read(folder)
    print("\n".join(speed_tables(rows) + evaluation_tables(rows) + memory_tables(rows)
                    + profile_tables(rows)))


if __name__ == "__main__":
    main()
