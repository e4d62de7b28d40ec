"""Renders benchmarks/results/*.jsonl (written by `make bench`) as markdown tables for the
README's "Speed and memory" section. Every number comes from those files.

    PYTHONPATH=. .venv/bin/python benchmarks/table.py [benchmarks/results]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compare.tables import markdown_table  # noqa: E402


def read(folder: Path) -> list[dict]:
    rows = []
    for file in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return rows


def speed_tables(rows: list[dict]) -> list[str]:
    out = []
    runs = [r for r in rows if r.get("benchmark") == "speed" and "tasks_per_s" in r]
    checks = [r for r in rows if r.get("benchmark") == "speed" and r.get("check")]
    if runs:
        r0 = runs[0]
        out += [f"Throughput (tasks/s, median over the timed meta-iterations; {r0['device']}, "
                f"torch {r0['torch']}, {r0['threads']} threads, meta-batch {r0['meta_batch']}, "
                f"{r0['inner_steps']} inner steps):", "",
                markdown_table(["setting", "method", "tasks/s", "s/iteration", "iterations timed"],
                               [[r["setting"], r["method"], f"{r['tasks_per_s']:.2f}",
                                 f"{r['median_s_per_iter']:.3f}", str(r["iters"])] for r in runs], left=2)]
    for summary in (r for r in rows if r.get("benchmark") == "speed" and r.get("summary")):
        out += ["", markdown_table(["ratio (tasks/s, same run)", "value"],
                                   [[k, f"{v:.2f}"] for k, v in summary["ratios_tasks_per_s"].items()])]
    if checks:
        out += ["", markdown_table(["setting", "ours", "reference", "meta-gradient rel. error"],
                                   [[c["setting"], c["ours"], c["reference"], f"{c['rel_err']:.1e}"]
                                    for c in checks], left=3)]
    return out


def memory_tables(rows: list[dict]) -> list[str]:
    runs = [r for r in rows if r.get("benchmark") == "memory" and "peak_mb" in r]
    if not runs:
        return []
    steps = sorted({r["inner_steps"] for r in runs})
    methods = list(dict.fromkeys(r["method"] for r in runs))
    peak = {(r["method"], r["inner_steps"]): r["peak_mb"] for r in runs}
    out = ["", f"Peak memory of one meta-gradient, MB ({runs[0]['setting']}; {runs[0]['measure']}):", "",
           markdown_table(["method", *(f"K={k}" for k in steps)],
                          [[m, *(f"{peak.get((m, k), float('nan')):.0f}" for k in steps)] for m in methods])]
    for r in rows:
        if r.get("benchmark") == "memory" and r.get("check"):
            out += ["", f"Checkpointed MAML's meta-gradient vs plain MAML at K={r['inner_steps']}: "
                        f"relative error {r['rel_err']:.1e}."]
    return out


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    rows = read(folder)
    print("\n".join(speed_tables(rows) + memory_tables(rows)))


if __name__ == "__main__":
    main()
