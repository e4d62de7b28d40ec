"""`run.py compare --train`: meta-train each named problem with the same seed, dataset and
budget through engines.MetaEngine (the path `run.py` trains with), then put the validation
curves (against iterations and wall time) in one figure and the final tests in one table.
Every number is read back from each run's results.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

from compare.report import write_json
from measures.machine import hardware
from measures.tables import format_table
from problems.options import RunOptions, load_options
from engines.evaluation import format_metric
from engines.meta_engine import MetaEngine
from engines.run_folder import claim, commit_replacement
from envs import make_env


def train_config(args, problem: str, out: Path) -> RunOptions:
    values = {"seed": args.seed, "iterations": args.iterations, "out": str(out / problem)}
    if args.data_root:
        values["data_root"] = args.data_root
    sets = list(args.set)
    if not any(s.startswith("eval.val_every=") for s in sets):  # enough points for a curve
        sets.append(f"eval.val_every={max(1, args.iterations // 10)}")
    return load_options(problem, args.dataset or "sinusoid", sets, values)


def train_one(args, problem: str, cfg: RunOptions) -> dict:
    env = make_env(cfg.data, cfg.data_root, cfg.seed)
    engine = MetaEngine(cfg, env, out_dir=Path(cfg.out), progress=False, max_seconds=args.seconds,
                            log=lambda line: print(f"  {problem}: {line}", flush=True))
    start = time.perf_counter()
    engine.run()
    print(f"  {problem}: done in {time.perf_counter() - start:.1f} s", flush=True)
    return json.loads((Path(cfg.out) / "results.json").read_text())


def summary(results: dict) -> dict:
    validation = [h for h in results["history"] if h["split"] == "validation"]
    return {"problem": results["problem"], "iterations": results["iterations"],
            "train_seconds": results["train_seconds"], "test": results["test"],
            "best_validation": results["best_validation"],
            "validation": [{k: h[k] for k in ("iteration", "seconds", "mean", "ci95")}
                           for h in validation],
            "results": results.get("path")}


def train_table(runs: list[dict]) -> str:
    rows = []
    for r in runs:
        t = r["test"]
        rows.append([r["problem"], str(r["iterations"]), f"{r['train_seconds']:.1f}",
                     format_metric(t["mean"], t["ci95"], t["metric"]),
                     str(t["episodes"])])
    metric = runs[0]["test"]["metric"] if runs else "accuracy"
    return format_table(["problem", "iterations", "train s", f"test {metric} (95% CI)",
                         "episodes"], rows)


def plot_training(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = runs[0]["test"]["metric"]
    scale = 100 if metric == "accuracy" else 1
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in runs:
        points = r["validation"]
        values = [scale * p["mean"] for p in points]
        axes[0].plot([p["iteration"] for p in points], values, marker="o", markersize=3,
                     label=r["problem"])
        axes[1].plot([p["seconds"] for p in points], values, marker="o", markersize=3,
                     label=r["problem"])
    axes[0].set_xlabel("meta-iteration")
    axes[1].set_xlabel("wall time since the start of training (s, validation included)")
    for ax in axes:
        ax.set_ylabel("validation accuracy (%)" if metric == "accuracy" else "validation MSE")
        if metric != "accuracy":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_training(args, problems: list[str], out: Path) -> int:
    configs = {problem: train_config(args, problem, out) for problem in problems}
    for cfg in configs.values():  # every config is valid before any earlier run is touched
        claim(Path(cfg.out), args.overwrite)
        commit_replacement(Path(cfg.out))  # compare --train --overwrite replaces them all at once
    runs = []
    for problem, cfg in configs.items():
        results = train_one(args, problem, cfg)
        results["path"] = str(out / problem / "results.json")
        runs.append(summary(results))
    dataset = args.dataset or "sinusoid"
    budget = f"{args.iterations} iterations" + (f" or {args.seconds:g} s" if args.seconds else "")
    record = {"dataset": dataset, "seed": args.seed, "budget": budget, "problems": problems,
              "hardware": hardware(), "runs": runs}
    print(train_table(runs))
    write_json(record, out / "compare_train.json")
    plot_training(runs, out / "compare_train.png", f"{dataset}, seed {args.seed}, budget {budget}")
    print(f"\nwrote {out / 'compare_train.json'} and {out / 'compare_train.png'}")
    return 0
