"""Train every run of the results plan (benchmarks/plateau.yaml) and gather what they measured.

    PYTHONPATH=. .venv/bin/python benchmarks/plateau.py --jobs 2  # train (resumes, skips done)
    PYTHONPATH=. .venv/bin/python benchmarks/plateau.py --only sinusoid-k10  # some settings only
    PYTHONPATH=. .venv/bin/python benchmarks/plateau.py --collect  # gather only

Each run is `run.py` in its own folder (runs/results/<setting>/<problem>): a finished run
(results.json) is kept, a cut-off one (last.pt) is resumed with the project's own resume, a
missing one is started. A run stopped short of the plan's cap (cut to fit a session with
`run.py --resume DIR --iterations N`, or whose cap the plan raised) is continued to the cap from
its last checkpoint, unless patience stopped it. Then the extra tests (`also_steps`) run on
the best checkpoint, each into a JSON file of its own. `--collect` gathers results, validation
curves and extra tests into docs/results.json, which benchmarks/results_section.py turns into
docs/results.md, the README's summary and the figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PLAN = ROOT / "benchmarks" / "plateau.yaml"
#: The default plan's records: the ones the README's results section is written from.
RESULTS = ROOT / "docs" / "results.json"
#: Setting names become folder names: no separators, no leading dot.
SETTING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Saved-config keys that do not make a run another run (where it lies, what ran it).
NOT_COMPARED = ("out", "data_root", "device")


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
        if folder.exists() and not (folder / "results.json").exists():
            cmd.append("--overwrite")  # killed before its first checkpoint: nothing to keep
        if self.iterations is not None:
            cmd += ["--iterations", str(self.iterations)]
        if data_root:
            cmd += ["--data-root", data_root]
        for s in self.sets:
            cmd += ["--set", s]
        return cmd


def _plan_text(path: Path) -> dict:
    from configs.loader import safe_yaml
    from configs import ConfigError
    try:
        plan = safe_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as err:
        raise PlanError(f"cannot read the plan {path} ({err.strerror or err}); "
                        "pass --plan FILE") from None
    except (UnicodeDecodeError, yaml.YAMLError, ConfigError) as err:
        raise PlanError(f"{path} is not a readable plan ({str(err).splitlines()[0]}); see "
                        "benchmarks/plateau.yaml for the format") from None
    if (not isinstance(plan, dict) or not isinstance(plan.get("settings"), dict)
            or not plan["settings"]):
        raise PlanError(f"{path} needs a `settings:` mapping of setting name -> dataset, problems; "
                        "see benchmarks/plateau.yaml")
    return plan


def load_plan(path: Path = PLAN, only: list[str] | None = None) -> tuple[int, list[PlannedRun]]:
    """(seed, runs in the order written), every entry checked before anything runs. Validation
    every iterations // `validations` where a setting gives `validations` instead of
    eval.val_every."""
    from configs import available_datasets, available_problems
    plan = _plan_text(path)
    settings = plan["settings"]
    unknown = sorted(set(only or []) - set(settings))
    if unknown:
        raise PlanError(f"--only {','.join(unknown)}: not in {path.name}; "
                        f"choose from {', '.join(settings)}")
    try:
        seed = int(plan.get("seed", 0))
    except (TypeError, ValueError):
        raise PlanError(f"{path}: seed must be an integer") from None
    runs = []
    for name, setting in settings.items():
        if not isinstance(name, str) or not SETTING_NAME.match(name):
            raise PlanError(f"{path}: setting name {name!r} must be letters, digits, '_', '.' "
                            "or '-' (it names a folder)")
        if only and name not in only:
            continue
        if not isinstance(setting, dict) or not isinstance(setting.get("problems"), dict):
            raise PlanError(f"{path}: setting {name} needs `dataset:` and a `problems:` mapping")
        if setting.get("dataset") not in available_datasets():
            raise PlanError(f"{path}: setting {name} has dataset {setting.get('dataset')!r}; "
                            f"choose one of: {', '.join(available_datasets())}")
        for problem, spec in setting["problems"].items():
            if problem not in available_problems():
                raise PlanError(f"{path}: {name}/{problem}: unknown problem; choose one of: "
                                f"{', '.join(available_problems())}")
            spec = {"set": spec} if isinstance(spec, list) else dict(spec or {})
            iterations = spec.get("iterations", setting.get("iterations"))
            sets = (list(plan.get("common", [])) + list(setting.get("set", []))
                    + list(spec.get("set", [])))
            if setting.get("validations"):
                if iterations is None:
                    raise PlanError(f"{name}/{problem}: `validations` needs an iteration budget")
                sets.append(f"eval.val_every={max(1, iterations // setting['validations'])}")
            runs.append(PlannedRun(name, problem, setting["dataset"], iterations, sets,
                                   list(spec.get("also_steps", setting.get("also_steps", [])))))
    for run in runs:
        planned_config(run, seed)  # a bad setting is found now, not when its turn comes
    return seed, runs


def planned_config(run: PlannedRun, seed: int) -> dict:
    """The config `run.py` will train this entry with (what a finished run must match)."""
    from configs import ConfigError
    from problems.options import load_options
    values = {"seed": seed,
              **({"iterations": run.iterations} if run.iterations is not None else {})}
    try:
        return load_options(run.problem, run.dataset, run.sets, values).to_dict()
    except (ConfigError, ValueError) as err:
        raise PlanError(f"{run.setting}/{run.problem}: {str(err).splitlines()[0]}") from None


def config_changes(run: PlannedRun, seed: int, saved: dict) -> list[str]:
    """`key: run value -> plan value` for every setting where the run in the folder differs."""
    from configs import flat_items, with_defaults
    mine, planned = flat_items(with_defaults(saved)), flat_items(planned_config(run, seed))
    return [f"{k}: {mine.get(k)!r} -> {v!r}" for k, v in planned.items()
            if k not in NOT_COMPARED and mine.get(k) != v]


def trained_config(folder: Path) -> dict | None:
    """The config of the run in `folder` (finished or cut off), or None when it has none yet."""
    if (folder / "results.json").exists():
        return json.loads((folder / "results.json").read_text())["config"]
    if (folder / "last.pt").exists():
        from engines.checkpoint import load_checkpoint
        return load_checkpoint(folder / "last.pt")["config"]
    return None


def stopped_short(run: PlannedRun, folder: Path, changes: list[str]) -> int | None:
    """The iterations a run trained, when the plan now gives it a larger cap and nothing else
    differs, and it did not stop by patience: a run cut short to fit a session (`run.py
    --resume DIR --iterations N`), or one whose cap the plan raised."""
    if run.iterations is None or [c.split(":")[0] for c in changes] != ["iterations"]:
        return None
    if (folder / "results.json").exists():
        results = json.loads((folder / "results.json").read_text())
        done, stopped = results["iterations"], results.get("stopped")
    else:
        from engines.checkpoint import load_checkpoint
        done, stopped = load_checkpoint(folder / "last.pt")["iteration"], None
    return done if stopped != "patience" and done < run.iterations else None


def refusal_hint(run: PlannedRun, short_at: int | None) -> str:
    if short_at is not None:  # short of the cap, but no checkpoint: records restored from git
        return (f"it stopped at {short_at} of the plan's {run.iterations} iterations and holds "
                "no checkpoint to continue from; move that folder away to train it again from "
                f"the start, or set the plan's cap to {short_at}")
    return "move that folder away to train it again, or restore the plan entry"


def set_aside_extra_tests(run: PlannedRun, folder: Path, cut_at: int) -> None:
    """Extra tests of a run that is about to be continued were taken at its cut: kept beside it
    under the iteration they belong to, and taken again once it finishes."""
    for steps in run.also_steps:
        target = extra_test_path(folder, steps)
        if target.exists():
            target.rename(target.with_name(f"{target.stem}.at{cut_at}.json"))


def best_checkpoint(folder: Path) -> Path:
    return folder / "best.pt" if (folder / "best.pt").exists() else folder / "last.pt"


def extra_test_path(folder: Path, steps: int) -> Path:
    return folder.parent / f"{folder.name}.test-{steps}steps.json"


class Stopped(Exception):
    """Ctrl-C: runs not started yet are skipped."""


class Runner:
    """Trains the plan's runs side by side, one subprocess each; Ctrl-C stops them all."""

    def __init__(self, out: Path, seed: int, data_root: str | None):
        self.out, self.seed, self.data_root = out, seed, data_root
        self.stopping = threading.Event()
        self.children: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def call(self, cmd: list[str], log) -> None:
        if self.stopping.is_set():
            raise Stopped()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
               "PYTHONPATH": str(ROOT)}
        log.write("+ " + " ".join(cmd) + "\n")
        log.flush()
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # Ctrl-C reaches it through stop()
        with self.lock:
            self.children.add(child)
        try:
            code = child.wait()
        finally:
            with self.lock:
                self.children.discard(child)
        if self.stopping.is_set():
            raise Stopped()
        if code:
            raise subprocess.CalledProcessError(code, cmd)

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            for child in self.children:
                child.send_signal(2)  # SIGINT: run.py keeps its checkpoints and exits

    def execute(self, run: PlannedRun) -> str:
        """Train (or resume) one run, then its extra tests. Output goes to <folder>.log
        beside it."""
        folder = run.folder(self.out)
        folder.parent.mkdir(parents=True, exist_ok=True)
        saved = trained_config(folder)
        cut_at = None  # where a run short of the plan's cap goes on from its last checkpoint
        if saved is not None:
            changes = config_changes(run, self.seed, saved)
            short_at = stopped_short(run, folder, changes) if changes else None
            if short_at is not None and (folder / "last.pt").exists():
                cut_at = short_at
            elif changes:
                raise PlanError(f"{run.setting}/{run.problem}: {folder} was trained with other "
                                f"settings than the plan now gives ({'; '.join(changes[:3])}); "
                                f"{refusal_hint(run, short_at)}")
        with open(folder.parent / f"{folder.name}.log", "a") as log:
            if cut_at is not None:
                set_aside_extra_tests(run, folder, cut_at)
                self.call([sys.executable, "run.py", "--resume", str(folder), "--iterations",
                           str(run.iterations)], log)
            elif not (folder / "results.json").exists():
                self.call(run.train_command(self.out, self.seed, self.data_root), log)
            for steps in run.also_steps:
                target = extra_test_path(folder, steps)
                if not target.exists():
                    self.call([sys.executable, "run.py", "evaluate", "--checkpoint",
                               str(best_checkpoint(folder)), "--steps", str(steps), "--json",
                               str(target)], log)
        return f"{run.setting}/{run.problem}"


def train(runs: list[PlannedRun], out: Path, seed: int, data_root: str | None,
          jobs: int) -> list[str]:
    runner = Runner(out, seed, data_root)
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(runner.execute, r): r for r in runs}
        try:
            for future, r in futures.items():
                try:
                    print("done", future.result(), flush=True)
                except subprocess.CalledProcessError:
                    failed.append(f"{r.setting}/{r.problem}")
                    print(f"FAILED {r.setting}/{r.problem}: see {r.folder(out)}.log", flush=True)
                except PlanError as err:
                    failed.append(f"{r.setting}/{r.problem}")
                    print(f"REFUSED {err}", flush=True)
                except Stopped:
                    pass
        except KeyboardInterrupt:
            runner.stop()
            for future in futures:
                future.cancel()
            raise
    return failed


def validation_curve(results: dict) -> list[dict]:
    return [{"iteration": h["iteration"], "seconds": h["seconds"], "mean": h["mean"],
             "ci95": h["ci95"]}
            for h in results["history"] if h.get("split") == "validation"]


def run_cpus(results: dict) -> list[str]:
    """The CPU models that trained and tested a run, in order, each once; a segment written
    before runs recorded their CPU is "not recorded", never guessed."""
    segments = [results.get("cpu")] + [r.get("cpu") for r in results.get("resumes", [])]
    return list(dict.fromkeys(cpu or "not recorded" for cpu in segments))


def collect(runs: list[PlannedRun], out: Path) -> dict:
    """One record per finished run; runs still missing are listed, not invented."""
    import torch
    from measures.machine import cpu_model
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
            "resumes": len(res.get("resumes", [])), "cpus": run_cpus(res),
        })
    return {"records": records, "missing": missing,
            "hardware": {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "torch": torch.__version__, "threads_per_run": 1,
                         "processor": cpu_model()}}


def still_planned(records: list[dict], runs: list[PlannedRun], skip: list[str]):
    """(records of settings outside `skip` that the plan still gives as recorded, the names of
    those it no longer does): a record whose run the plan dropped or now trains with other
    settings or another cap is not shown under the plan's name."""
    planned = {(r.setting, r.problem): r for r in runs}
    kept, stale = [], []
    for rec in records:
        if rec["setting"] in skip:
            continue
        run = planned.get((rec["setting"], rec["problem"]))
        if run is not None and (run.sets, run.iterations) == (rec["settings"], rec["budget"]):
            kept.append(rec)
        elif run is not None:
            stale.append(f"{rec['setting']}/{rec['problem']} (plan changed)")
    return kept, stale


def default_paths(plan: Path) -> tuple[Path, Path]:
    """(run folders, records file) of a plan: the default plan's are runs/results and
    docs/results.json (what the README shows); any other plan's are its own, named after it."""
    if plan.resolve() == PLAN.resolve():
        return Path("runs/results").resolve(), RESULTS
    return (Path(f"runs/results-{plan.stem}").resolve(),
            Path(f"runs/results-{plan.stem}.json").resolve())


def check_records_file(target: Path, plan: Path) -> None:
    """Records of one plan never replace another plan's."""
    if not target.exists():
        return
    try:
        theirs = json.loads(target.read_text()).get("plan_file", str(PLAN.relative_to(ROOT)))
    except (OSError, ValueError, AttributeError):
        raise PlanError(f"{target} exists and is not a records file of this script; "
                        "pass another --json") from None
    if theirs != plan_name(plan):
        raise PlanError(f"{target} holds the records of {theirs}, not of {plan_name(plan)}; "
                        "pass another --json (each plan keeps its own records)")


def plan_name(plan: Path) -> str:
    plan = plan.resolve()
    return str(plan.relative_to(ROOT)) if plan.is_relative_to(ROOT) else str(plan)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default=str(PLAN))
    p.add_argument("--only", help="comma-separated settings of the plan (default: all)")
    p.add_argument("--out", help="where the run folders go (default runs/results for the default "
                                 "plan, runs/results-<plan> for another)")
    p.add_argument("--data-root")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one core each")
    p.add_argument("--collect", action="store_true", help="only gather finished runs into --json")
    p.add_argument("--json", help="records file (default docs/results.json for the default plan, "
                                  "runs/results-<plan>.json for another)")
    args = p.parse_args(argv)
    plan = Path(args.plan).resolve()
    default_out, default_json = default_paths(plan)
    out = Path(args.out).resolve() if args.out else default_out  # children run in the repo root
    target = Path(args.json).resolve() if args.json else default_json
    try:
        if args.jobs < 1:
            raise PlanError(f"--jobs {args.jobs}: pass 1 or more "
                            "(runs side by side, one core each)")
        seed, runs = load_plan(plan, args.only.split(",") if args.only else None)
        check_records_file(target, plan)
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data_root = str(Path(args.data_root).resolve()) if args.data_root else None
    try:
        failed = [] if args.collect else train(runs, out, seed, data_root, args.jobs)
    except KeyboardInterrupt:
        print(f"interrupted: runs in progress keep their last checkpoint; rerun the same command "
              f"to continue ({out})", file=sys.stderr)
        return 130
    gathered = collect([r for r in runs if f"{r.setting}/{r.problem}" not in failed], out)
    gathered["missing"] += failed
    if args.only and target.exists():  # keep what other settings recorded, if still planned
        kept, stale = still_planned(json.loads(target.read_text())["records"],
                                    load_plan(plan)[1], args.only.split(","))
        gathered["records"] = kept + gathered["records"]
        gathered["missing"] += stale
    gathered["plan"] = _plan_text(plan)
    gathered["plan_file"] = plan_name(plan)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(gathered, indent=1))
    print(f"wrote {target}: {len(gathered['records'])} runs, "
          f"missing: {gathered['missing'] or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
