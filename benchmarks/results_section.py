"""Regenerate the generated parts of the documentation from real runs: the trained-to-budget
tables and figure in docs/results.md (from docs/results.json, written by benchmarks/plateau.py),
their short summary in README.md, and the meta-gradient comparison in docs/compare.md.

    # rewrite all three from disk:
    PYTHONPATH=. .venv/bin/python benchmarks/results_section.py
    # rerun run.py compare first:
    PYTHONPATH=. .venv/bin/python benchmarks/results_section.py --compare

`make results` trains the plan (benchmarks/plateau.py, hours) and then runs this. Nothing in the
sections is typed by hand: every number comes from a run's results.json or compare.json, and the
published figures beside them come from the plan file, where each carries its source.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measures.tables import format_table, markdown_table, megabytes  # noqa: E402
from engines.evaluation import format_metric  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"            # in docs/results.md
COMPARE_START, COMPARE_END = "<!-- compare:start -->", "<!-- compare:end -->"  # in docs/compare.md
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"  # in README.md
COMPARE_ARGS = ["--dataset", "sinusoid", "--tasks", "4"]
DOCS = ROOT / "docs"
RESULTS_JSON = DOCS / "results.json"
RESULTS_PAGE, COMPARE_PAGE = "results.md", "compare.md"  # in the docs folder
FIGURE = "docs/results.png"  # from the repository root; the pages in docs/ show it as results.png
TIME_TO_ACCURACY = "docs/time_to_accuracy"  # .json by benchmarks/time_to_accuracy.py, and .png


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def run_compare(out: Path, seed: int) -> None:
    run([sys.executable, "run.py", "compare", *COMPARE_ARGS, "--seed", str(seed),
         "--out", str(out / "compare"), "--overwrite"])


def stopped_text(record: dict) -> str:
    """Why a run ended; a run that ended at fewer iterations than the plan's cap for it was cut
    short (resumed with a smaller --iterations to fit a session) and says so, with the cap."""
    budget, stopped = record.get("budget"), record.get("stopped")
    if stopped == "iterations" and budget and record["iterations"] < budget:
        return f"cut (cap {budget})"
    return stopped or "-"


def metric_text(test: dict | None, digits: int = 2) -> str:
    if not test:
        return "-"
    if test["mean"] is None:  # every number is kept: say how many episodes diverged instead
        return f"diverged on {test['diverged']} of {test['episodes']}"
    text = format_metric(test["mean"], test["ci95"], test["metric"], digits=digits)
    return text + (f" ({test['diverged']} diverged)" if test.get("diverged") else "")


def sinusoid_table(records: list[dict], published: dict) -> str:
    """Test MSE after each tested number of steps for each K, one row per method, published
    one-step rows beside."""
    shots = sorted({r["shots"] for r in records})
    steps = sorted({r["test"]["steps"] for r in records}
                   | {int(s) for r in records for s in r["also"]})
    by = {(r["problem"], r["shots"]): r for r in records}
    problems = list(dict.fromkeys(r["problem"] for r in records))

    def at(record, n):
        if record is None:
            return None
        return record["test"] if record["test"]["steps"] == n else record["also"].get(str(n))
    rows = [[problem] + [metric_text(at(by.get((problem, k)), n)) for k in shots for n in steps]
            for problem in problems]
    for name, entry in published.items():
        one_step = {int(k): v for k, v in entry["one_step"].items()}
        rows.append([f"{name} (published)"] + [one_step[k] if n == 1 and k in one_step else "-"
                                               for k in shots for n in steps])
    header = ["method"] + [f"K={k} {n} step{'s' if n != 1 else ''}" for k in shots for n in steps]
    return format_table(header, rows)


def cpus_line(records: list[dict]) -> str:
    """Which CPU trained each row (wall and CPU times compare only on one model); records made
    before runs recorded their CPU say so."""
    by_cpus: dict[str, list[str]] = {}
    for r in records:
        cpus = " then ".join(r.get("cpus") or ["not recorded"])
        by_cpus.setdefault(cpus, []).append(r["problem"])
    return "CPU per run: " + "; ".join(f"{cpus}: {', '.join(dict.fromkeys(problems))}"
                                       for cpus, problems in by_cpus.items()) + "."


def classification_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        also = "; ".join(f"{metric_text(t, 1)} at {s} steps" for s, t in r["also"].items()) or "-"
        best = r["best_validation"]
        rows.append([r["problem"], metric_text(r["test"], 1), also, f"{r['iterations']}",
                     f"{r['train_seconds'] / 60:.1f}", stopped_text(r),
                     f"{100 * best['mean']:.1f}% @ {best['iteration']} "
                     f"({best['seconds'] / 60:.1f} min)"
                     if best else "-"])
    return format_table(["problem", "test (95% CI)", "other test", "iterations", "train min",
                         "stopped by", "best val @ iteration (wall)"], rows)


def plot_validation(records: list[dict], path: Path) -> None:
    """Validation metric against wall time and against iterations, one curve per method, one row
    per setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in records))
    fig, axes = plt.subplots(len(settings), 2, figsize=(11, 3.4 * len(settings)), squeeze=False)
    for (left, right), setting in zip(axes, settings):
        for r in (r for r in records if r["setting"] == setting):
            curve = r["validation"]
            if not curve:
                continue
            scale = 100 if r["test"]["metric"] == "accuracy" else 1
            values = [scale * c["mean"] for c in curve]
            left.plot([c["seconds"] / 60 for c in curve], values, "o-", ms=3, label=r["problem"])
            right.plot([c["iteration"] for c in curve], values, "o-", ms=3, label=r["problem"])
        metric = next(r["test"]["metric"] for r in records if r["setting"] == setting)
        ylabel = "val accuracy %" if metric == "accuracy" else "val MSE"
        left.set(xlabel="training wall time (min, one core)", ylabel=ylabel, title=setting)
        right.set(xlabel="meta-iteration", ylabel=ylabel, title=setting)
        if ylabel == "val MSE":
            left.set_yscale("log")
            right.set_yscale("log")
        for ax in (left, right):
            ax.grid(alpha=0.3)
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def goals(records: list[dict]) -> list[str]:
    """The Omniglot goals, checked against the table (met / not met, with the numbers)."""
    def acc(setting, problem=None):
        found = [r["test"]["mean"] for r in records if r["setting"] == setting
                 and (problem is None or r["problem"] == problem)]
        return max(found) if found else None
    lines = []
    for text, value, target in [("5-way 1-shot, best method >= 95%", acc("omniglot5w1s"), 0.95),
                                ("5-way 1-shot, MAML >= 93%", acc("omniglot5w1s", "maml"), 0.93),
                                ("5-way 1-shot, iMAML >= 93%", acc("omniglot5w1s", "imaml"), 0.93),
                                ("20-way 1-shot, best method >= 85%", acc("omniglot20w1s"), 0.85)]:
        if value is None:  # a goal with no run yet is said, not dropped
            lines.append(f"{text}: no record yet")
            continue
        shown = f"{100 * value:.1f}"
        if value < target and float(shown) >= 100 * target:  # 94.98% is not 95.0%
            shown = f"{100 * value:.2f}"
        lines.append(f"{text}: {'met' if value >= target else 'not met'} ({shown}%)")
    return lines


def committed_time_to_accuracy() -> dict | None:
    path = ROOT / f"{TIME_TO_ACCURACY}.json"
    return json.loads(path.read_text()) if path.exists() else None


def section(results: dict, tta: dict | None | str = "committed") -> str:
    """The full results section of docs/results.md (links relative to docs/); `tta`: a
    time-to-accuracy record, by default the committed one."""
    if tta == "committed":
        tta = committed_time_to_accuracy()
    records, plan, hw = results["records"], results["plan"], results["hardware"]
    published = plan.get("published", {})
    parts = [START, "## Tables and figures", "",
             "Generated by `make results` (benchmarks/plateau.py trains the plan in "
             "[benchmarks/plateau.yaml](../benchmarks/plateau.yaml), "
             "benchmarks/results_section.py writes "
             f"this; do not edit by hand). Seed {plan.get('seed', 0)}. Hardware: {hw['platform']}, "
             f"{hw['cpus']} CPUs, torch {hw['torch']}, one core per run (two runs side by side), "
             "so wall times are one core's. Every setting of each run is in the plan file and in "
             "its results.json. Runs stop by `eval.patience` (no better validation for that many "
             "validations) or at their iteration cap, as the `stopped by` column says (`cut`: "
             "stopped short of the plan's cap to fit a working session, to be continued with "
             "`--resume`); a rerun "
             "with the same seed gives the same accuracies, MSEs and iterations (only the wall "
             "times vary)."]
    if results.get("missing"):
        parts += ["", "Not yet trained (missing from this table): "
                  f"{', '.join(results['missing'])}."]
    sinusoid = [r for r in records if r["dataset"] == "sinusoid"]
    if sinusoid:
        episodes = sorted({r["test"]["episodes"] for r in sinusoid})
        parts += ["", "**Sinusoid regression**, test MSE "
                  f"(95% CI over {'/'.join(map(str, episodes))} test "
                  "tasks) after 1 and after "
                  "10 adaptation steps, each model trained at its K and selected by 1-step "
                  "validation MSE. "
                  + " ".join(entry["source"] for entry in published.values()
                             if entry.get("source")),
                  "", indent(sinusoid_table(sinusoid, published)), "", cpus_line(sinusoid)]
    for setting in dict.fromkeys(r["setting"] for r in records if r["dataset"] != "sinusoid"):
        rows = [r for r in records if r["setting"] == setting]
        parts += ["", f"**{setting}** ({rows[0]['dataset']}), test accuracy on "
                  f"{rows[0]['test']['episodes']} "
                  f"episodes after {rows[0]['test']['steps']} steps "
                  "(best validation checkpoint):", "", indent(classification_table(rows)),
                  "", cpus_line(rows)]
    lines = goals(records)
    if lines:
        parts += ["", "Goals: " + "; ".join(lines) + "."]
    parts += ["", f"![validation against wall time and iterations]({Path(FIGURE).name})"]
    if tta:
        parts += ["", time_to_accuracy_part(tta)]
    parts.append(END)
    return "\n".join(parts)


TRAINING_SECTIONS = ("data", "model", "inner", "outer")  # what a run learns from
RUNTIME_KEYS = ("inner.task_threads", "inner.vectorize")  # how it runs, not what it learns
EARLIER = " (earlier settings)"


def preset_changes(config: dict) -> list[str]:
    """Where a run's recorded training settings differ from what its problem's preset on its
    dataset gives today, as `key was (preset: now)`: a curve read from a run trained before a
    preset changed is marked as such, never shown as the preset's."""
    from configs import flat_items, with_defaults
    from configs.loader import merge_config
    now = flat_items(merge_config(config["problem"], config["dataset"]))
    was = flat_items(with_defaults(config))
    return [f"{key} {was.get(key)!r} (preset: {value!r})" for key, value in now.items()
            if key.split(".")[0] in TRAINING_SECTIONS and key not in RUNTIME_KEYS
            and was.get(key) != value]


def earlier_settings(record: dict) -> dict[str, list[str]]:
    """{method: its changes} for the curves read from runs (`--from-run`) whose settings are
    not today's preset."""
    out = {}
    for name, method in record.get("methods", {}).items():
        if method.get("from_run") and method.get("config"):
            changes = preset_changes(method["config"])
            if changes:
                out[name] = changes
    return out


def time_to_accuracy_rows(record: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: each method's validation accuracy at each CPU budget, in brackets its
    margin over the anchor there; a curve of a run at other settings than today's preset is
    marked."""
    from benchmarks.time_to_accuracy import ANCHOR, BUDGETS
    earlier = earlier_settings(record)
    rows = []
    for name, entry in record["summary"].items():
        cells = []
        for minutes in BUDGETS:
            at = entry["at_minutes"][str(minutes)]
            if at["mean"] is None:
                cells.append("-")
                continue
            margin = "" if name == ANCHOR or at["minus_anchor"] is None else \
                f" ({100 * at['minus_anchor']:+.1f})"
            cells.append(f"{100 * at['mean']:.1f}%{margin}")
        rows.append([name + (" (anchor)" if name == ANCHOR else "")
                     + (EARLIER if name in earlier else "")] + cells)
    return ["method"] + [f"{m} CPU min" for m in BUDGETS], rows


def time_to_accuracy_goals(record: dict, methods=("maml", "imaml")) -> list[str]:
    """Whether each method is at or above the anchor at every budget both were trained for, and
    whether each shortfall is smaller than both curves' 95% CI there (a gap the validation
    episodes cannot resolve)."""
    from benchmarks.time_to_accuracy import ANCHOR
    anchor = record["summary"].get(ANCHOR, {}).get("at_minutes", {})
    lines = []
    for name in methods:
        entry = record["summary"].get(name)
        if entry is None:
            continue
        margins = {m: at["minus_anchor"] for m, at in entry["at_minutes"].items()
                   if at["minus_anchor"] is not None}
        if not margins:
            continue
        behind = [m for m, v in margins.items() if v < 0]
        shown = ", ".join(f"{100 * v:+.1f} at {m} min" for m, v in margins.items())
        unresolved = [m for m in behind
                      if -margins[m] < min(entry["at_minutes"][m]["ci95"] or 0.0,
                                           anchor.get(m, {}).get("ci95") or 0.0)]
        if behind and len(unresolved) == len(behind):
            shown += "; every shortfall is inside both curves' 95% CI"
        elif unresolved:
            shown += f"; inside both curves' 95% CI at {', '.join(unresolved)} min"
        lines.append(f"{name} at or above the anchor at every budget: "
                     f"{'met' if not behind else 'not met'} ({shown})")
    return lines


def validation_episodes(record: dict) -> str:
    """How many validation episodes each curve used: runs taken from the plan validate on their
    own count, the anchor on the script's; episodes are drawn by index, so a smaller count is
    the first episodes of a larger one."""
    counts = {}
    for name, method in record["methods"].items():
        run = (method.get("config") or {}) if method.get("from_run") else {}
        counts[name] = run.get("eval", {}).get("val_episodes") or record["val_episodes"]
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} episodes"
    groups = {}
    for name, count in counts.items():
        groups.setdefault(count, []).append(name)
    ordered = sorted(groups.items(), reverse=True)
    return "; ".join(f"{count} episodes for {', '.join(names)}"
                     + ("" if i == 0 else f" (the first {count} of the same sequence)")
                     for i, (count, names) in enumerate(ordered))


def time_to_accuracy_part(record: dict) -> str:
    """Validation accuracy at equal one-core CPU budgets, each method beside the anchor."""
    table = format_table(*time_to_accuracy_rows(record))
    goals_line = "; ".join(time_to_accuracy_goals(record))
    return "\n".join([
        f"**Time to accuracy** on {record['dataset']}: validation accuracy "
        f"(10 steps; {validation_episodes(record)}) against training CPU time of one core "
        f"(process time, validation excluded) on {record['cpu']}; in brackets, points over the "
        f"anchor (learn2learn's MAML at its Omniglot example settings on the same CNN4, θ and "
        f"episodes). Written by benchmarks/time_to_accuracy.py into {TIME_TO_ACCURACY}.json.",
        "", indent(table), "", *([f"Goals: {goals_line}.", ""] if goals_line else []),
        *([f"Marked{EARLIER}: curves of runs trained before their preset changed, at "
           + "; ".join(f"{name}: {', '.join(changes)}"
                       for name, changes in earlier_settings(record).items()) + ".", ""]
          if earlier_settings(record) else []),
        f"![validation accuracy against CPU minutes]({Path(TIME_TO_ACCURACY).name}.png)"])


def summary(results: dict, tta: dict | None | str = "committed") -> str:
    """README's short summary: per classification setting, each problem's test accuracy, its
    iterations and why it stopped; the time-to-accuracy budgets when that record exists."""
    if tta == "committed":
        tta = committed_time_to_accuracy()
    records = results["records"]
    parts = [SUMMARY_START,
             f"Generated from [docs/results.json](docs/results.json) by "
             f"benchmarks/results_section.py "
             f"(seed {results['plan'].get('seed', 0)}, one CPU core per run; do not edit by hand). "
             f"Sinusoid MSEs, validation curves, wall times and the goals: "
             f"[docs/{RESULTS_PAGE}](docs/{RESULTS_PAGE})."]
    if results.get("missing"):
        parts += ["", f"Not yet trained: {', '.join(results['missing'])}."]
    for setting in dict.fromkeys(r["setting"] for r in records if r["dataset"] != "sinusoid"):
        rows = [r for r in records if r["setting"] == setting]
        parts += ["", f"**{setting}**, test accuracy on {rows[0]['test']['episodes']} episodes "
                  "after "
                  f"{rows[0]['test']['steps']} steps:", "",
                  markdown_table(["problem", "test (95% CI)", "iterations", "stopped by"],
                                 [[r["problem"], metric_text(r["test"], 1), f"{r['iterations']}",
                                   stopped_text(r)] for r in rows])]
    if tta:
        parts += ["", f"**Time to accuracy** on {tta['dataset']} (validation accuracy at "
                  "one-core CPU minutes; in brackets, points over the anchor):", "",
                  markdown_table(*time_to_accuracy_rows(tta)), "",
                  *([f"Rows marked{EARLIER} were trained before their preset changed "
                     f"(the settings: [docs/{RESULTS_PAGE}](docs/{RESULTS_PAGE})).", ""]
                    if earlier_settings(tta) else []),
                  f"![validation accuracy against one-core CPU minutes, beside the anchor]"
                  f"({TIME_TO_ACCURACY}.png)"]
    parts.append(SUMMARY_END)
    return "\n".join(parts)


def compare_table(result: dict) -> str:
    """Unrolled rows and the implicit rows at the largest K (the full sweep is in compare.json)."""
    largest = max(r["inner_steps"] for r in result["methods"])
    rows = [[r["label"], "-" if r["cosine"] is None else f"{r['cosine']:.3f}",
             "-" if r["rel_err"] is None else f"{r['rel_err']:.2e}",
             "-" if r["own_err"] is None else f"{r['own_err']:.1e}", f"{1e3 * r['seconds']:.1f}",
             megabytes(r["peak_bytes"])]
            for r in result["methods"] if r["solver"] is None or r["inner_steps"] == largest]
    return format_table(["method", "cosine", "rel err", "own err", "ms", "peak MB"], rows)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def compare_section(compare: dict, docs_png: str = "compare.png") -> str:
    """The meta-gradient comparison: one θ, one meta-batch, every method against the exact
    reference (or, where there is none, the reason)."""
    ref, hw = compare["reference"], compare["hardware"]
    if ref["exact"]:
        against = (f"against the implicit hypergradient, exact: minimiser refined by Newton steps "
                   f"to inner gradient norm {ref['inner_grad_norm']:.1e}, {ref['solver']} solve to "
                   f"relative residual {ref['linear_solve_relative_residual']:.1e} "
                   f"(λ={ref['lam']}, model.activation={ref['activation']}); "
                   f"resolution {ref['resolution']:.1e}: errors below it are not meaningful")
    else:
        against = f"with no exact reference ({ref['why']}), so rel err and cosine are empty"
    return "\n".join([
        COMPARE_START,
        f"Generated by `benchmarks/results_section.py` (`--compare` reruns only this part; do not "
        f"edit by hand): `run.py compare {' '.join(COMPARE_ARGS)} --seed {compare['seed']}` on "
        f"{hw['platform']}. "
        f"Meta-gradients at one θ (fresh, seed {compare['seed']}, {compare['theta']['parameters']} "
        f"parameters) on {compare['tasks']} sinusoid tasks, {against}. `own err` is each method's "
        "error against its own exact answer at the same K (implicit: exact linear solve; FOMAML: "
        "MAML; MAML: a second implementation of the unroll). Full sweep: "
        "[compare.json](compare.json).",
        "",
        indent(compare_table(compare)),
        "",
        f"![meta-gradient error against time and memory]({docs_png})",
        COMPARE_END,
    ])


def write_readme(readme: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace the part of `readme` (any markdown file) between `start` and `end` by `text`, or
    append `text` where the markers are missing."""
    content = readme.read_text() if readme.exists() else ""
    if start in content and end in content:
        head, rest = content.split(start, 1)
        content = head + text + rest.split(end, 1)[1]
    else:
        content = content.rstrip("\n") + "\n\n" + text + "\n"
    readme.write_text(content)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS_JSON), help="written by benchmarks/plateau.py")
    p.add_argument("--out", default="runs/results",
                   help="where run.py compare writes (with --compare)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", action="store_true", help="rerun run.py compare before writing")
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="gets the short summary")
    p.add_argument("--docs", default=str(DOCS),
                   help=f"folder of {RESULTS_PAGE} (full section, results.png) and {COMPARE_PAGE} "
                        "(compare section; compare.json and compare.png are read from it)")
    args = p.parse_args(argv)
    out, readme, docs = Path(args.out), Path(args.readme), Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    if args.compare:
        run_compare(out, args.seed)
        # committed, so the page's figure and sweep stay
        for name in ("compare.png", "compare.json"):
            shutil.copyfile(out / "compare" / name, docs / name)
    results = json.loads(Path(args.results).read_text())
    plot_validation(results["records"], docs / Path(FIGURE).name)
    write_readme(docs / RESULTS_PAGE, section(results))
    write_readme(readme, summary(results), SUMMARY_START, SUMMARY_END)
    compare = json.loads((docs / "compare.json").read_text())
    write_readme(docs / COMPARE_PAGE, compare_section(compare, "compare.png"), COMPARE_START,
                 COMPARE_END)
    print(f"wrote {docs / RESULTS_PAGE}, {docs / Path(FIGURE).name}, {docs / COMPARE_PAGE} and the "
          f"summary in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
