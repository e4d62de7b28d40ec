"""Validation accuracy against one-core CPU seconds: each problem's preset, and learn2learn's MAML
(the anchor) driving the same CNN4 from the same θ on the same episodes.

Why process time: it counts only this process's work, so a busy machine does not bend the
curves. Each method trains in its own process on one thread; training time excludes validation.
Every method is validated by the project's evaluator (same episodes, steps and step size) at the
same CPU-time marks, so the curves are read against each other at equal budgets.

    python benchmarks/time_to_accuracy.py --methods maml,imaml,l2l-maml --minutes 60 --jobs 2
    python benchmarks/time_to_accuracy.py --from-run maml=runs/maml-omniglot5w1s-s0   # a run's log
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The anchor: learn2learn's MAML at its Omniglot example's settings (examples/vision/
#: maml_omniglot.py: meta-batch 32, one adaptation step, Adam 0.003, and 2·shots images per class
#: split evenly, so one query per class in training) with this project's CNN4 step size 0.4 (the
#: example's is 0.5), on this project's episodes; validated like every method, on 15 queries.
ANCHOR = "l2l-maml"
ANCHOR_SETS = {"data.meta_batch": 32, "data.train_query": 1, "inner.steps": 1, "inner.lr": 0.4,
               "outer.lr": 0.003}
#: Budgets (CPU minutes) the summary reads every curve at.
BUDGETS = (5, 15, 30, 60)
DEFAULT_MARKS = (1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 120, 150)


# ---- arithmetic (tested on its own) ----------------------------------------------------------
def marks_within(minutes: float, marks=DEFAULT_MARKS) -> list[float]:
    """Validation marks in CPU seconds up to the budget; the budget itself is always the last."""
    seconds = [60.0 * m for m in marks if m < minutes]
    return seconds + [60.0 * minutes]


def value_at(curve: list[dict], seconds: float, extent: float = float("inf")) -> dict | None:
    """Validation accuracy at `seconds` of CPU time, read off the curve by linear interpolation
    between the validations either side of it (each method validates at its own times, so
    reading "the last validation before" would favour whichever validated just before a
    budget). None before the first validation or past the CPU time the method was given
    (`extent`); a run that stopped on its own holds its last value."""
    if not curve or seconds > extent + 1e-6:
        return None
    points = sorted(curve, key=lambda p: p["cpu_seconds"])
    if seconds < points[0]["cpu_seconds"] - 1e-9:
        return None
    if seconds >= points[-1]["cpu_seconds"]:
        return dict(points[-1])
    after = next(i for i, p in enumerate(points) if p["cpu_seconds"] >= seconds)
    a, b = points[max(after - 1, 0)], points[after]
    span = b["cpu_seconds"] - a["cpu_seconds"]
    w = (seconds - a["cpu_seconds"]) / span if span > 0 else 1.0
    mix = lambda key: None if a[key] is None or b[key] is None else a[key] + w * (b[key] - a[key])  # noqa: E731
    return {"cpu_seconds": seconds, "iteration": round(mix("iteration")), "mean": mix("mean"),
            "ci95": mix("ci95")}


def seconds_to_reach(curve: list[dict], accuracy: float) -> float | None:
    """CPU seconds of the first validation at or above `accuracy` (None: never reached)."""
    for point in sorted(curve, key=lambda p: p["cpu_seconds"]):
        if point["mean"] >= accuracy:
            return point["cpu_seconds"]
    return None


def summarise(curves: dict[str, list[dict]], extents: dict[str, float] | None = None,
              budgets=BUDGETS, anchor: str = ANCHOR) -> dict:
    """Each curve at each budget, its margin over the anchor there, and how much sooner (ratio
    of CPU seconds) it reaches the anchor's final validation accuracy. `extents`: CPU seconds
    each method was trained for (default: unbounded)."""
    extents = extents or {}
    table = {}
    reference = curves.get(anchor)
    final = reference[-1]["mean"] if reference else None
    for name, curve in curves.items():
        row = {}
        for minutes in budgets:
            point = value_at(curve, 60.0 * minutes, extents.get(name, float("inf")))
            base = (value_at(reference, 60.0 * minutes, extents.get(anchor, float("inf")))
                    if reference else None)
            row[str(minutes)] = {
                "mean": point["mean"] if point else None,
                "ci95": point["ci95"] if point else None,
                "iteration": point["iteration"] if point else None,
                "minus_anchor": (point["mean"] - base["mean"]) if point and base else None,
            }
        entry = {"at_minutes": row}
        if final is not None and name != anchor:
            mine, theirs = seconds_to_reach(curve, final), seconds_to_reach(reference, final)
            entry["speedup_to_anchor_final"] = (theirs / mine) if mine and theirs else None
        table[name] = entry
    return table


def curve_from_history(history: list[dict]) -> list[dict]:
    """Validation points of a run's history (results.json or log.csv rows) on the CPU clock."""
    out = []
    for row in history:
        if row.get("split") != "validation" or row.get("cpu_seconds") in (None, ""):
            continue
        out.append({"cpu_seconds": float(row["cpu_seconds"]), "iteration": int(row["iteration"]),
                    "mean": float(row["mean"]),
                    "ci95": float(row["ci95"]) if row.get("ci95") not in (None, "") else None})
    return out


def curve_from_run(folder: Path) -> tuple[list[dict], dict]:
    """A run folder's curve: results.json when the run finished, else its log.csv so far."""
    results = folder / "results.json"
    if results.exists():
        data = json.loads(results.read_text())
        return curve_from_history(data["history"]), {"config": data["config"],
                                                      "stopped": data.get("stopped")}
    log = folder / "log.csv"
    if not log.exists():
        raise SystemExit(f"error: {folder} has neither results.json nor log.csv; pass a run folder")
    with log.open() as handle:
        return (curve_from_history(list(csv.DictReader(handle))),
                {"config": None, "stopped": "running"})


# ---- one method, in its own process ----------------------------------------------------------
def train_curve(spec: dict) -> dict:
    """Train one method for spec['minutes'] of process CPU time, validating at the marks."""
    import torch
    torch.set_num_threads(1)
    from betty.logging.logger_base import get_logger
    import logging
    get_logger().setLevel(logging.WARNING)
    from engines.evaluation import evaluate
    from engines.meta_engine import MetaEngine
    from envs import make_env
    from problems.options import load_options
    from problems.system import TaskShape, build_system

    method, anchor = spec["method"], spec["method"] == ANCHOR
    sets = dict(ANCHOR_SETS) if anchor else {}
    sets.update({"seed": spec["seed"], "inner.task_threads": 1, "eval.val_every": 0,
                 **spec.get("sets", {})})
    cfg = load_options("maml" if anchor else method, spec["dataset"],
                       [f"{k}={v}" for k, v in sets.items()])
    env = make_env(cfg.data, cfg.data_root or os.environ.get("METALEARN_DATA_ROOT"), cfg.seed)
    engine = MetaEngine(cfg, env, out_dir=None, progress=False, log=lambda *_: None)
    if anchor:
        from benchmarks.baselines.l2l_maml import L2LMAML
        learner = L2LMAML(engine.inner.backbone, cfg.inner.lr, cfg.inner.steps, cfg.outer.lr)
        judge = build_system(cfg, TaskShape.of(env))  # the project's evaluator for the anchor's θ

        def step():
            learner.step(env.step())

        def validate():
            judge.inner.backbone.load_state_dict(learner.backbone.state_dict())
            return evaluate(judge.inner, env, "validation", spec["val_episodes"], cfg.eval.steps,
                            cfg.data.meta_batch)
    else:
        engine.train()

        def step():
            engine.global_step += 1
            engine.train_step()

        def validate():
            engine.eval()
            summary = evaluate(engine.inner, env, "validation", spec["val_episodes"],
                               cfg.eval.steps, cfg.data.meta_batch)
            engine.train()
            return summary

    curve, used, iteration = [], 0.0, 0
    for mark in spec["marks"]:
        while used < mark:
            start = time.process_time()
            step()
            used += time.process_time() - start
            iteration += 1
        summary = validate()
        curve.append({"cpu_seconds": round(used, 3), "iteration": iteration,
                      "mean": summary.mean, "ci95": summary.ci95})
        print(json.dumps({"progress": method, **curve[-1]}), file=sys.stderr, flush=True)
    return {"method": method, "settings": cfg.to_dict(), "curve": curve,
            "seconds_per_iteration": used / max(iteration, 1)}


def run_worker(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                         stdout=subprocess.PIPE, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"error: {spec['method']} failed (exit {out.returncode}); "
                         "see its output above")
    return json.loads(lines[-1])


# ---- the figure ------------------------------------------------------------------------------
def plot(record: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, method in record["methods"].items():
        curve = method["curve"]
        style = dict(color="black", linestyle="--") if name == ANCHOR else {}
        ax.errorbar([p["cpu_seconds"] / 60 for p in curve], [100 * p["mean"] for p in curve],
                    yerr=[100 * (p["ci95"] or 0.0) for p in curve], marker="o", markersize=3,
                    capsize=2, label=method.get("label", name), **style)
    ax.set(xlabel="training CPU minutes (one core, process time)",
           ylabel="validation accuracy (%)", title=f"Time to accuracy: {record['dataset']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, record["cpu"], fontsize=6, color="gray")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="omniglot5w1s")
    parser.add_argument("--methods", default=f"maml,imaml,{ANCHOR}",
                        help=f"problem presets to train, and {ANCHOR} for the anchor")
    parser.add_argument("--from-run", action="append", default=[], metavar="NAME=RUN_DIR",
                        help="take NAME's curve from a run folder (its cpu_seconds column)")
    parser.add_argument("--reuse", action="append", default=[], type=Path, metavar="JSON",
                        help="take the methods a previous record of this script holds")
    parser.add_argument("--minutes", type=float, default=60.0, help="CPU minutes per method")
    parser.add_argument("--val-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra setting for every trained method except the anchor")
    parser.add_argument("--jobs", type=int, default=1, help="methods trained side by side")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "benchmarks/results/time_to_accuracy.json")
    parser.add_argument("--figure", type=Path, default=None, help="default: --json with .png")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(train_curve(json.loads(args.worker))))
        return
    if args.minutes <= 0 or args.val_episodes < 2 or args.jobs < 1:
        raise SystemExit("error: --minutes must be > 0, --val-episodes >= 2 and --jobs >= 1")
    sets = dict(item.split("=", 1) for item in args.set)
    methods = [m for m in args.methods.split(",") if m]
    taken = dict(item.split("=", 1) for item in args.from_run)
    reused = {}
    for path in args.reuse:
        previous = json.loads(path.read_text())
        if previous.get("dataset") != args.dataset:
            raise SystemExit(f"error: {path} is a record on {previous.get('dataset')}, "
                             f"not {args.dataset}")
        reused.update(previous["methods"])
    specs = [{"method": m, "dataset": args.dataset, "seed": args.seed, "minutes": args.minutes,
              "marks": marks_within(args.minutes), "val_episodes": args.val_episodes,
              "sets": {} if m == ANCHOR else sets}
             for m in methods if m not in taken and m not in reused]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        trained = list(pool.map(run_worker, specs))
    from measures.machine import cpu_model
    record = {"benchmark": "time_to_accuracy", "dataset": args.dataset, "cpu": cpu_model(),
              "clock": "process CPU seconds of training, one thread, validation excluded",
              "val_episodes": args.val_episodes, "seed": args.seed, "minutes": args.minutes,
              "methods": {}}
    record["methods"].update(reused)
    for result in trained:
        record["methods"][result["method"]] = {**result, "extent_seconds": 60.0 * args.minutes}
    for name, folder in taken.items():
        curve, info = curve_from_run(Path(folder))
        running = info["stopped"] in ("running", "wall time", "iterations")
        extent = curve[-1]["cpu_seconds"] if running and curve else float("inf")
        record["methods"][name] = {"method": name, "curve": curve, "from_run": str(folder),
                                   "extent_seconds": extent if extent != float("inf") else None,
                                   **info}
    order = list(dict.fromkeys(methods + list(taken) + list(reused)))
    record["methods"] = {name: record["methods"][name] for name in order
                         if name in record["methods"]}
    extents = {n: m["extent_seconds"] if m["extent_seconds"] is not None else float("inf")
               for n, m in record["methods"].items()}
    record["summary"] = summarise({n: m["curve"] for n, m in record["methods"].items()}, extents)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1))
    plot(record, args.figure or args.json.with_suffix(".png"))
    print(json.dumps(record["summary"]))


if __name__ == "__main__":
    main()
