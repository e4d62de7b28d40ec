"""Train every run of the results plan (benchmarks/plateau.yaml) and gather what they measured.

    PYTHONPATH=. .venv/bin/python benchmarks/plateau.py --jobs 2            # train (resumes, skips done)
    PYTHONPATH=. .venv/bin/python benchmarks/plateau.py --only sinusoid-k10 # some settings only
    PYTHONPATH=. .venv/bin/python benchmarks/plateau.py --collect           # gather only

Each run is `run.py` in its own folder (runs/results/<setting>/<problem>): a finished run
(results.json) is kept, a cut-off one (last.pt) is resumed with the project's own resume, a
missing one is started. Then the extra tests (`also_steps`) run on the best checkpoint, each
into a JSON file of its own. `--collect` gathers results, validation curves and extra tests into
docs/results.json, which benchmarks/results_section.py turns into the README's tables and figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "benchmarks" / "plateau.yaml"


class PlanError(ValueError):
    """The plan file names something that does not exist or cannot be run."""


@dataclass
class PlannedRun:
    setting: str
    problem: str
    dataset: str
    iterations: int | None
    sets: list[str]
    also_steps: list[int] = field(default_factory=list)

    def folder(self, out: Path) -> Path:
        return out / self.setting / self.problem

    def train_command(self, out: Path, seed: int, data_root: str | None) -> list[str]:
        folder = self.folder(out)
        if (folder / "last.pt").exists():
            return [sys.executable, "run.py", "--resume", str(folder)]
        cmd = [sys.executable, "run.py", "--problem", self.problem, "--dataset", self.dataset,
               "--seed", str(seed), "--out", str(folder)]
        if self.iterations is not None:
            cmd += ["--iterations", str(self.iterations)]
        if data_root:
            cmd += ["--data-root", data_root]
        for s in self.sets:
            cmd += ["--set", s]
        return cmd


def load_plan(path: Path = PLAN, only: list[str] | None = None) -> tuple[int, list[PlannedRun]]:
    """(seed, runs in the order written). Validation every iterations // `validations` where a
    setting gives `validations` instead of eval.val_every."""
    plan = yaml.safe_load(path.read_text())
    settings = plan["settings"]
    unknown = sorted(set(only or []) - set(settings))
    if unknown:
        raise PlanError(f"--only {','.join(unknown)}: not in {path.name}; choose from {', '.join(settings)}")
    runs = []
    for name, setting in settings.items():
        if only and name not in only:
            continue
        for problem, spec in setting["problems"].items():
            spec = {"set": spec} if isinstance(spec, list) else dict(spec or {})
            iterations = spec.get("iterations", setting.get("iterations"))
            sets = list(plan.get("common", [])) + list(setting.get("set", [])) + list(spec.get("set", []))
            if setting.get("validations"):
                if iterations is None:
                    raise PlanError(f"{name}/{problem}: `validations` needs an iteration budget")
                sets.append(f"eval.val_every={max(1, iterations // setting['validations'])}")
            runs.append(PlannedRun(name, problem, setting["dataset"], iterations, sets,
                                   list(spec.get("also_steps", setting.get("also_steps", [])))))
    return int(plan.get("seed", 0)), runs


def best_checkpoint(folder: Path) -> Path:
    return folder / "best.pt" if (folder / "best.pt").exists() else folder / "last.pt"


def extra_test_path(folder: Path, steps: int) -> Path:
    return folder.parent / f"{folder.name}.test-{steps}steps.json"


def execute(run: PlannedRun, out: Path, seed: int, data_root: str | None) -> str:
    """Train (or resume) one run, then its extra tests. Output goes to <folder>.log beside it."""
    folder = run.folder(out)
    folder.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    with open(folder.parent / f"{folder.name}.log", "a") as log:
        def call(cmd):
            log.write("+ " + " ".join(cmd) + "\n")
            log.flush()
            subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        if not (folder / "results.json").exists():
            call(run.train_command(out, seed, data_root))
        for steps in run.also_steps:
            target = extra_test_path(folder, steps)
            if not target.exists():
                call([sys.executable, "run.py", "evaluate", "--checkpoint", str(best_checkpoint(folder)),
                      "--steps", str(steps), "--json", str(target)])
    return f"{run.setting}/{run.problem}"


def train(runs: list[PlannedRun], out: Path, seed: int, data_root: str | None, jobs: int) -> list[str]:
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(execute, r, out, seed, data_root): r for r in runs}
        for future, r in futures.items():
            try:
                print("done", future.result(), flush=True)
            except subprocess.CalledProcessError:
                failed.append(f"{r.setting}/{r.problem}")
                print(f"FAILED {r.setting}/{r.problem}: see {r.folder(out)}.log", flush=True)
    return failed


def validation_curve(results: dict) -> list[dict]:
    return [{"iteration": h["iteration"], "seconds": h["seconds"], "mean": h["mean"], "ci95": h["ci95"]}
            for h in results["history"] if h.get("split") == "validation"]


def collect(runs: list[PlannedRun], out: Path) -> dict:
    """One record per finished run; runs still missing are listed, not invented."""
    import torch
    records, missing = [], []
    for r in runs:
        folder = r.folder(out)
        path = folder / "results.json"
        if not path.exists():
            missing.append(f"{r.setting}/{r.problem}")
            continue
        res = json.loads(path.read_text())
        extra = {}
        for steps in r.also_steps:
            target = extra_test_path(folder, steps)
            if target.exists():
                extra[str(steps)] = json.loads(target.read_text())["test"]
        records.append({
            "setting": r.setting, "problem": r.problem, "dataset": r.dataset,
            "ways": res["config"]["data"]["ways"], "shots": res["config"]["data"]["shots"],
            "iterations": res["iterations"], "budget": r.iterations, "stopped": res.get("stopped"),
            "train_seconds": res["train_seconds"], "test_seconds": res["test_seconds"],
            "test": res["test"], "also": extra, "best_validation": res["best_validation"],
            "validation": validation_curve(res), "settings": r.sets,
            "resumes": len(res.get("resumes", [])),
        })
    return {"records": records, "missing": missing,
            "hardware": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                         "threads_per_run": 1, "processor": platform.processor() or platform.machine()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default=str(PLAN))
    p.add_argument("--only", help="comma-separated settings of the plan (default: all)")
    p.add_argument("--out", default="runs/results", help="where the run folders go")
    p.add_argument("--data-root")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one core each")
    p.add_argument("--collect", action="store_true", help="only gather finished runs into --json")
    p.add_argument("--json", default=str(ROOT / "docs" / "results.json"))
    args = p.parse_args(argv)
    try:
        seed, runs = load_plan(Path(args.plan), args.only.split(",") if args.only else None)
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    failed = [] if args.collect else train(runs, out, seed, args.data_root, args.jobs)
    gathered = collect(runs, out)
    if args.only:  # keep what other settings already recorded
        previous = Path(args.json)
        if previous.exists():
            old = json.loads(previous.read_text())
            kept = [rec for rec in old["records"] if rec["setting"] not in args.only.split(",")]
            gathered["records"] = kept + gathered["records"]
    gathered["plan"] = yaml.safe_load(Path(args.plan).read_text())
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(gathered, indent=1))
    print(f"wrote {args.json}: {len(gathered['records'])} runs, missing: {gathered['missing'] or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
