"""`make results` on a tiny plan: runs are trained, resumed or kept, extra tests land beside them,
the gathered records render into docs/results.md's tables and figure and the README's summary, and
two trainings of the same plan give the same table."""
import json
import re
from pathlib import Path

import pytest

from benchmarks import plateau, results_section

ROOT = Path(__file__).resolve().parents[1]

TINY = ("""
seed: 1
common: [eval.episodes=8, inner.task_threads=1]
settings:
  sinusoid-k5:
    dataset: sinusoid
    iterations: 6
    set: [data.shots=5, data.query=5, eval.steps=1, eval.val_every=3, eval.val_episodes=4, """
        """data.meta_batch=2]
    also_steps: [2]
    problems:
      maml: [inner.steps=1]
      reptile: {iterations: 4, set: [inner.steps=2]}
published:
  maml: {source: "cited.", one_step: {5: "1.13 ± 0.18"}}
""")


def train_tiny(tmp_path: Path, name: str) -> dict:
    plan = tmp_path / "plan.yaml"
    plan.write_text(TINY)
    target = tmp_path / f"{name}.json"
    assert plateau.main(["--plan", str(plan), "--out", str(tmp_path / name), "--json", str(target),
                         "--jobs", "1"]) == 0
    return json.loads(target.read_text())


def test_the_plan_file_names_real_problems_and_datasets():
    from configs import available_datasets, available_problems
    seed, runs = plateau.load_plan()
    assert runs and seed == 0
    for r in runs:
        assert r.problem in available_problems() and r.dataset in available_datasets()
        assert "inner.task_threads=1" in r.sets and "eval.episodes=600" in r.sets
    omniglot = [r for r in runs if r.setting == "omniglot5w1s"]
    assert {r.problem for r in omniglot} == set(available_problems())
    assert all(any(s.startswith("eval.val_every=") for s in r.sets) for r in omniglot)


def test_an_unknown_setting_is_refused_naming_the_choices(capsys):
    assert plateau.main(["--only", "omniglot99", "--collect"]) == 2
    err = capsys.readouterr().err
    assert "omniglot99" in err and "sinusoid-k10" in err


def test_a_cut_off_run_is_resumed_and_a_new_one_started(tmp_path):
    seed, runs = plateau.load_plan(only=["sinusoid-k10"])
    run = runs[0]
    fresh = run.train_command(tmp_path, seed, None)
    assert "--problem" in fresh and str(run.folder(tmp_path)) in fresh
    run.folder(tmp_path).mkdir(parents=True)
    (run.folder(tmp_path) / "last.pt").write_bytes(b"")
    assert run.train_command(tmp_path, seed, None)[-2:] == ["--resume", str(run.folder(tmp_path))]


def test_tiny_plan_trains_tests_and_renders(tmp_path):
    first = train_tiny(tmp_path, "a")
    assert (first["missing"] == []
            and [r["problem"] for r in first["records"]] == ["maml", "reptile"])
    maml = first["records"][0]
    assert maml["iterations"] == 6 and maml["stopped"] == "iterations" and maml["shots"] == 5
    assert maml["also"]["2"]["steps"] == 2 and maml["test"]["steps"] == 1
    assert [c["iteration"] for c in maml["validation"]] == [3, 6]
    assert first["records"][1]["iterations"] == 4
    # a second call keeps finished runs (no retraining: the records are the same, times included)
    again = train_tiny(tmp_path, "a")
    assert again["records"] == first["records"]

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    (tmp_path / "docs").mkdir()
    text = results_section.section(first)
    assert "old" not in text and "maml (published)" in text and "1.13 ± 0.18" in text
    assert re.search(r"maml\s+[\d.]+ ± [\d.]+\s+[\d.]+ ± [\d.]+", text)  # 1 and 2 steps
    results_section.plot_validation(first["records"], tmp_path / "docs" / "results.png")
    assert (tmp_path / "docs" / "results.png").stat().st_size > 1000


def test_two_trainings_of_the_same_plan_give_the_same_table(tmp_path):
    tables = []
    for name in ("one", "two"):
        records = train_tiny(tmp_path, name)["records"]
        tables.append(results_section.sinusoid_table(records, {}))
    assert tables[0] == tables[1]


def test_each_table_names_the_cpu_of_each_row():
    rows = [{"problem": "maml", "cpus": ["AMD EPYC"]}, {"problem": "anil"},
            {"problem": "imaml", "cpus": ["AMD EPYC", "Intel Xeon"]},
            {"problem": "fomaml", "cpus": ["AMD EPYC"]}]
    assert results_section.cpus_line(rows) == ("CPU per run: AMD EPYC: maml, fomaml; not recorded: "
                                              "anil; AMD EPYC then Intel Xeon: imaml.")


def test_classification_table_and_goals_from_records():
    record = {"setting": "omniglot5w1s", "problem": "maml", "iterations": 500,
              "train_seconds": 480.0, "stopped": "iterations", "also": {},
              "best_validation": {"mean": 0.7, "iteration": 400, "seconds": 390.0},
              "test": {"metric": "accuracy", "mean": 0.75, "ci95": 0.01, "diverged": 0}}
    table = results_section.classification_table([record])
    assert "75.0% ± 1.0%" in table and "70.0% @ 400 (6.5 min)" in table and "8.0" in table
    assert results_section.goals([record]) == ["5-way 1-shot, best method >= 95%: not met (75.0%)",
                                               "5-way 1-shot, MAML >= 93%: not met (75.0%)",
                                               "5-way 1-shot, iMAML >= 93%: no record yet",
                                               "20-way 1-shot, best method >= 85%: no record yet"]


def test_committed_results_render_and_match_the_readme():
    results = json.loads((ROOT / "docs" / "results.json").read_text())
    text = results_section.section(results)
    assert "## Tables and figures" in text and "omniglot5w1s" in text and "(published)" in text
    assert "](results.png)" in text and "](../benchmarks/plateau.yaml)" in text  # links from docs/
    assert text in (ROOT / "docs" / "results.md").read_text()  # the page shows what the records say
    summary = results_section.summary(results)
    assert (summary.startswith(results_section.SUMMARY_START)
            and summary.endswith(results_section.SUMMARY_END))
    assert ("omniglot5w1s" in summary and "omniglot20w1s" in summary
            and "](docs/results.md)" in summary)
    # and the README's summary is rendered, not typed
    assert summary in (ROOT / "README.md").read_text()


def test_committed_comparison_renders_into_its_page():
    compare = json.loads((ROOT / "docs" / "compare.json").read_text())
    text = results_section.compare_section(compare, "compare.png")
    assert "](compare.png)" in text and "](compare.json)" in text
    assert text in (ROOT / "docs" / "compare.md").read_text()


def test_summary_lists_each_classification_setting_and_time_to_accuracy():
    record = {"setting": "omniglot5w1s", "dataset": "omniglot5w1s", "problem": "maml",
              "iterations": 500, "stopped": "patience",
              "test": {"metric": "accuracy", "mean": 0.75, "ci95": 0.01, "diverged": 0,
                       "episodes": 600, "steps": 10}}
    sinusoid = {**record, "setting": "sinusoid-k10", "dataset": "sinusoid"}
    at = lambda mean, margin: {"mean": mean, "ci95": 0.01, "iteration": 1, "minus_anchor": margin}  # noqa: E731
    tta = {"dataset": "omniglot5w1s", "summary": {
        "maml": {"at_minutes": {str(m): at(0.6, 0.05) for m in (5, 15, 30, 60)}},
        "l2l-maml": {"at_minutes": {**{str(m): at(0.55, None) for m in (5, 15, 30)},
                                    "60": at(None, None)}}}}
    text = results_section.summary({"records": [sinusoid, record], "plan": {"seed": 0}}, tta)
    assert "| maml | 75.0% ± 1.0% | 500 | patience |" in text and "sinusoid-k10" not in text
    assert "| maml | 60.0% (+5.0) | 60.0% (+5.0) | 60.0% (+5.0) | 60.0% (+5.0) |" in text
    assert "| l2l-maml (anchor) | 55.0% | 55.0% | 55.0% | - |" in text
    assert "Time to accuracy" not in results_section.summary({"records": [record], "plan": {}},
                                                             None)


def test_a_run_cut_short_of_its_cap_says_so_beside_runs_that_reached_it():
    row = {"iterations": 2400, "budget": 10400, "stopped": "iterations"}
    assert results_section.stopped_text(row) == "cut (cap 10400)"
    assert results_section.stopped_text({**row, "iterations": 10400}) == "iterations"
    assert results_section.stopped_text({**row, "stopped": "patience"}) == "patience"
    assert results_section.stopped_text({"iterations": 5, "stopped": None}) == "-"


def test_main_writes_the_readme_summary_and_both_pages(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "compare.json").write_text((ROOT / "docs" / "compare.json").read_text())
    (docs / "results.md").write_text("# Results\n\nkept\n\n"
                                     "<!-- results:start -->\nold\n<!-- results:end -->\n")
    (tmp_path / "README.md").write_text("intro\n<!-- summary:start -->\nold\n"
                                        "<!-- summary:end -->\nend\n")
    assert results_section.main(["--readme", str(tmp_path / "README.md"), "--docs", str(docs)]) == 0
    results = json.loads((ROOT / "docs" / "results.json").read_text())
    page = (docs / "results.md").read_text()
    assert "kept" in page and "old" not in page and results_section.section(results) in page
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("intro\n") and readme.endswith("\nend\n") and "old" not in readme
    assert results_section.summary(results) in readme
    assert "<!-- compare:start -->" in (docs / "compare.md").read_text()
    assert (docs / "results.png").stat().st_size > 1000


# ---- what make results may never do ------------------------------------------------------------
def write_plan(tmp_path: Path, text: str = TINY, name: str = "plan.yaml") -> Path:
    plan = tmp_path / name
    plan.write_text(text)
    return plan


def test_a_second_plan_leaves_the_committed_records_and_readme_alone(tmp_path, monkeypatch):
    committed = (ROOT / "docs" / "results.json").read_bytes()
    readme = (ROOT / "README.md").read_bytes()
    page = (ROOT / "docs" / "results.md").read_bytes()
    monkeypatch.chdir(tmp_path)
    plan = write_plan(tmp_path, name="other.yaml")
    assert plateau.main(["--plan", str(plan), "--jobs", "1"]) == 0
    assert (tmp_path / "runs" / "results-other.json").exists()       # its own records file
    assert (tmp_path / "runs" / "results-other" / "sinusoid-k5" / "maml" / "results.json").exists()
    assert (ROOT / "docs" / "results.json").read_bytes() == committed
    assert (ROOT / "README.md").read_bytes() == readme
    assert (ROOT / "docs" / "results.md").read_bytes() == page
    assert plateau.main(["--plan", str(plan), "--collect",
                         "--json", str(ROOT / "docs" / "results.json")]) == 2
    assert (ROOT / "docs" / "results.json").read_bytes() == committed


def rerun(tmp_path: Path, text: str) -> tuple[int, dict]:
    target = tmp_path / "a.json"
    code = plateau.main(["--plan", str(write_plan(tmp_path, text)), "--out", str(tmp_path / "a"),
                         "--json", str(target), "--jobs", "1"])
    return code, json.loads(target.read_text())


def test_a_finished_run_whose_plan_entry_changed_is_refused(tmp_path, capsys):
    first = train_tiny(tmp_path, "a")
    capsys.readouterr()
    code, again = rerun(tmp_path, TINY.replace("data.meta_batch=2", "data.meta_batch=3"))
    assert code == 1
    out = capsys.readouterr().out
    assert "REFUSED sinusoid-k5/maml" in out and "data.meta_batch: 2 -> 3" in out
    assert "sinusoid-k5/maml" in again["missing"]  # not recorded as the new plan's
    assert first["records"][0]["iterations"] == 6


def test_a_run_short_of_a_raised_cap_is_continued_from_its_checkpoint(tmp_path):
    """A run cut to fit a session (or whose cap the plan raised) goes on to the plan's cap from
    last.pt; its extra test taken at the cut is kept under that iteration and taken again."""
    first = train_tiny(tmp_path, "a")
    folder = tmp_path / "a" / "sinusoid-k5" / "maml"
    cut_test = plateau.extra_test_path(folder, 2)
    taken_at_cut = cut_test.read_text()
    code, again = rerun(tmp_path, TINY.replace("iterations: 6", "iterations: 9"))
    assert code == 0 and again["missing"] == []
    maml = again["records"][0]
    assert (maml["iterations"], maml["budget"], maml["resumes"]) == (9, 9, 1)
    assert [c["iteration"] for c in maml["validation"]] == [3, 6, 9]
    assert [c["mean"] for c in maml["validation"][:2]] == [
        c["mean"] for c in first["records"][0]["validation"]]
    assert cut_test.with_name(f"{cut_test.stem}.at6.json").read_text() == taken_at_cut
    assert cut_test.exists() and maml["also"]["2"]["steps"] == 2
    assert again["records"][1] == first["records"][1]  # reptile had its own cap: untouched


def test_a_short_run_without_a_checkpoint_or_stopped_by_patience_is_refused(tmp_path, capsys):
    train_tiny(tmp_path, "a")
    folder = tmp_path / "a" / "sinusoid-k5" / "maml"
    (folder / "last.pt").unlink()  # records restored from git hold no checkpoint
    capsys.readouterr()
    code, again = rerun(tmp_path, TINY.replace("iterations: 6", "iterations: 9"))
    out = capsys.readouterr().out
    assert code == 1 and "stopped at 6 of the plan's 9 iterations" in out
    assert "holds no checkpoint" in out and "set the plan's cap to 6" in out
    results = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps({**results, "stopped": "patience"}))
    code, _ = rerun(tmp_path, TINY.replace("iterations: 6", "iterations: 9"))
    out = capsys.readouterr().out
    assert code == 1 and "iterations: 6 -> 9" in out and "holds no checkpoint" not in out


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    seed, runs = plateau.load_plan(write_plan(tmp_path))
    folder = runs[0].folder(tmp_path / "a")
    folder.mkdir(parents=True)
    # what a kill at iteration 1 leaves
    (folder / "log.csv").write_text("iteration,split\n1,train\n")
    assert "--overwrite" in runs[0].train_command(tmp_path / "a", seed, None)
    first = train_tiny(tmp_path, "a")
    assert first["missing"] == [] and first["records"][0]["iterations"] == 6


def test_a_relative_out_from_another_folder_collects_its_runs(tmp_path, monkeypatch):
    plan = write_plan(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert plateau.main(["--plan", str(plan), "--out", "rel", "--json", "rel.json",
                         "--jobs", "1"]) == 0
    assert len(json.loads((tmp_path / "rel.json").read_text())["records"]) == 2
    assert (tmp_path / "rel" / "sinusoid-k5" / "maml" / "results.json").exists()


@pytest.mark.parametrize("text,args,needle", [
    ("settings: [1, 2", [], "not a readable plan"),
    ("settings: 3", [], "needs a `settings:` mapping"),
    (TINY, ["--jobs", "0"], "--jobs 0"),
    (TINY.replace("reptile:", "reptilian:"), [], "reptilian: unknown problem"),
    (TINY.replace("sinusoid-k5:", "'../x':"), [], "'../x' must be"),
    (TINY.replace("eval.val_episodes=4", "eval.val_episode=4"), [], "eval.val_episode"),
])
def test_a_bad_plan_is_one_line_before_anything_runs(tmp_path, capsys, text, args, needle):
    plan = write_plan(tmp_path, text)
    assert plateau.main(["--plan", str(plan), "--out", str(tmp_path / "o"), "--json",
                         str(tmp_path / "o.json"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()


def test_ctrl_c_stops_the_plan_without_a_traceback_and_starts_nothing_more(tmp_path, capsys,
                                                                           monkeypatch):
    import signal
    import threading
    started = []

    def interrupted(self, cmd, log):
        started.append(cmd)
        # what Ctrl-C does to the waiting main thread; aimed at it, since a signal sent to the
        # process may land on this worker thread and leave the main thread asleep until after
        # this worker raises, which made the test fail now and then
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        self.stopping.wait(timeout=60)  # until the main thread has handled it, not a fixed sleep
        raise plateau.Stopped()
    monkeypatch.setattr(plateau.Runner, "call", interrupted)
    plan = write_plan(tmp_path)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises
    try:
        code = plateau.main(["--plan", str(plan), "--out", str(tmp_path / "o"), "--json",
                             str(tmp_path / "o.json"), "--jobs", "1"])
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert len(started) == 1 and not (tmp_path / "o.json").exists()


def test_collecting_one_setting_drops_other_settings_records_the_plan_no_longer_gives():
    """`--only A --collect` keeps B's records only while the plan still trains B's runs with
    the settings and cap they were recorded under."""
    run = plateau.PlannedRun("B", "maml", "sinusoid", 6, ["eval.steps=1"])
    same = {"setting": "B", "problem": "maml", "settings": ["eval.steps=1"], "budget": 6}
    capped = {**same, "budget": 4}
    changed = {**same, "problem": "fomaml", "settings": ["eval.steps=2"]}
    dropped = {**same, "problem": "imaml"}
    mine = {**same, "setting": "A"}
    other = plateau.PlannedRun("B", "fomaml", "sinusoid", 6, ["eval.steps=1"])
    kept, stale = plateau.still_planned([same, capped, changed, dropped, mine], [run, other],
                                        skip=["A"])
    assert kept == [same]
    assert stale == ["B/maml (plan changed)", "B/fomaml (plan changed)"]
