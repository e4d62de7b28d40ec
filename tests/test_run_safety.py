"""Nothing lost, nothing silently ignored: run folders, resume, evaluate, checkpoints and the
records a run leaves. Every test here is a case a user met on an earlier version."""
import errno
import io
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
import torch

import run
from configs import ConfigError
from problems.options import load_options
from engines import checkpoint
from engines.evaluation import format_metric
from engines.meta_engine import MetaEngine
from support import fails

QUICK = ["--set", "eval.episodes=8", "--set", "eval.val_episodes=4", "--set", "eval.val_every=10",
         "--set", "eval.log_every=5", "--set", "checkpoint_every=5"]


def sinusoid(out, iterations=10, *extra):
    return ["--problem", "maml", "--dataset", "sinusoid", "--seed", "3", "--iterations",
            str(iterations), "--out", str(out), *QUICK, *extra]


def results(out) -> dict:
    def no_nan(name):
        raise ValueError(f"results.json holds a bare {name}, which is not JSON")
    return json.loads((out / "results.json").read_text(), parse_constant=no_nan)


# ---- one run per folder ---------------------------------------------------------------------
def test_a_second_run_in_a_used_folder_is_refused_and_the_first_is_kept(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    fails(capsys, sinusoid(out, 10, "--set", "inner.lr=0.02"),
                   str(out), "already holds a run", f"--resume {out}", "--out", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_overwrite_clears_the_old_run_first_and_keeps_unrelated_files(tmp_path):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 20)) == 0           # validates: leaves a best.pt
    (out / "notes.txt").write_text("mine")
    assert run.main(sinusoid(out, 4, "--overwrite", "--set", "eval.val_every=0")) == 0
    assert not (out / "best.pt").exists()             # the old run's best would be scored
    rows = (out / "log.csv").read_text().splitlines()[1:]
    assert rows and all(int(r.split(",")[0]) <= 4 for r in rows), rows  # no rows of the old run
    assert results(out)["iterations"] == 4
    assert (out / "notes.txt").read_text() == "mine"


def test_default_folder_is_unique_per_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--problem", "maml", "--dataset", "sinusoid", "--iterations", "2", *QUICK]
    assert run.main(base) == 0
    assert run.main([*base, "--set", "inner.lr=0.02"]) == 0   # was: silently reused the folder
    assert run.main([*base, "--inner-optimizer", "metasgd"]) == 0
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 3 and all(f.startswith("maml-sinusoid-s0-") for f in folders)
    lrs = {results(tmp_path / "runs" / f)["config"]["inner"]["lr"] for f in folders}
    assert lrs == {0.01, 0.02}


def test_default_name_ignores_only_settings_that_do_not_change_the_run():
    from engines.run_folder import default_run_dir
    preset = load_options("maml", "omniglot5w1s")
    name = lambda cfg: default_run_dir(cfg, preset).name  # noqa: E731
    assert name(preset) == "maml-omniglot5w1s-s0"
    assert name(load_options("maml", "omniglot5w1s", ["checkpoint_every=7"], {"data_root": "x"})) \
        == "maml-omniglot5w1s-s0"
    variants = [load_options("maml", "omniglot5w1s", values={"data.train_name": "glyphs"}),
                load_options("maml", "omniglot5w1s", values={"inner.optimizer": "metasgd"}),
                load_options("maml", "omniglot5w1s", ["inner.lr=0.1"]),
                load_options("maml", "omniglot5w1s", ["data.query=5"])]
    names = {name(cfg) for cfg in variants}
    assert len(names) == 4 and "maml-omniglot5w1s-s0" not in names


# ---- problem and dataset are never ignored ---------------------------------------------------
def test_problem_and_dataset_in_a_config_file_or_set_are_honoured(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("problem: fomaml\ndataset: sinusoid\ninner:\n  lr: 0.02\n")
    cfg = load_options(None, None, config_file=str(mine))
    assert (cfg.problem, cfg.dataset, cfg.inner.first_order) == ("fomaml", "sinusoid", True)
    assert cfg.inner.lr == 0.02 and cfg.model.backbone == "mlp"
    assert load_options(None, None, ["problem=imaml", "dataset=sinusoid"]).inner.kind == "implicit"
    assert load_options("maml", None, config_file=str(mine)).problem == "maml"  # the flag wins
    with pytest.raises(ConfigError, match="disagree"):
        load_options("maml", None, ["problem=imaml"])
    out = tmp_path / "r"
    assert run.main(["--config", str(mine), "--iterations", "2", "--out", str(out), *QUICK]) == 0
    assert (results(out)["problem"], results(out)["dataset"]) == ("fomaml", "sinusoid")


# ---- evaluate reproduces the run's own protocol ----------------------------------------------
def test_evaluate_reproduces_the_runs_own_test_protocol(tmp_path, capsys, monkeypatch,
                                                        shared_data_root):
    out = tmp_path / "r"
    assert run.main(["--problem", "maml", "--dataset", "omniglot5w1s",
                     "--data-root", str(shared_data_root),
                     "--iterations", "2", "--out", str(out), "--set", "model.hidden=4",
                     "--set", "data.query=3", "--set", "data.split_seed=5",
                     "--set", "eval.episodes=12",
                     "--set", "eval.steps=2", "--set", "eval.val_every=0"]) == 0
    test = results(out)["test"]
    capsys.readouterr()
    monkeypatch.delenv("METALEARN_DATA_ROOT", raising=False)  # the run knows where its data is
    monkeypatch.chdir(tmp_path)
    assert run.main(["evaluate", "--checkpoint", str(out / "last.pt")]) == 0
    shown = capsys.readouterr().out
    assert ("3 queries per class" in shown and "split seed 5" in shown
            and str(shared_data_root.resolve()) in shown)
    assert "12 episodes x 2 steps" in shown
    assert format_metric(test["mean"], test["ci95"], "accuracy") in shown, (shown, test)


def test_evaluate_episodes_and_steps(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 2)) == 0
    capsys.readouterr()
    fails(capsys, ["evaluate", "--checkpoint", str(out / "last.pt"), "--episodes", "0"],
                   "--episodes")
    assert run.main(["evaluate", "--checkpoint", str(out / "last.pt"), "--steps", "0",
                     "--episodes", "4"]) == 0
    assert "4 episodes, 0 steps" in capsys.readouterr().out   # the zero-step baseline, not 10
    fails(capsys, ["evaluate", "--checkpoint", str(out / "last.pt"), "--set", "inner.lr=1"],
                   "inner.lr", "data.*")


# ---- resume: refused or honoured, never ignored -------------------------------------------
@pytest.mark.parametrize("extra, needle", [
    (["--seed", "4"], "--seed"),
    (["--set", "inner.lr=0.1"], "--set inner.lr"),
    (["--train-dataset", "glyphs"], "--train-dataset"),
    (["--iterations", "-3"], "iterations"),
    (["--iterations", "5"], "already at iteration 10"),
])
def test_resume_refuses_settings_that_would_make_another_run(tmp_path, capsys, extra, needle):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    fails(capsys, ["--resume", str(out), *extra], needle)
    assert (out / "last.pt").read_bytes() == before


def test_resume_honours_and_records_budget_evaluation_and_data_root(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    capsys.readouterr()
    assert run.main(["--resume", str(out), "--iterations", "15", "--set", "eval.episodes=6",
                     "--data-root", str(tmp_path)]) == 0
    assert "iterations 10 -> 15" in capsys.readouterr().out
    state = checkpoint.load_checkpoint(out / "last.pt")
    assert state["iteration"] == 15 and state["config"]["iterations"] == 15
    assert (state["config"]["eval"]["episodes"] == 6
            and state["config"]["data_root"] == str(tmp_path))
    assert state["resumes"][0]["iteration"] == 10
    assert state["resumes"][0]["changed"]["iterations"] == [10, 15]
    assert results(out)["test"]["episodes"] == 6


def test_each_segment_of_a_run_records_the_cpu_it_ran_on(tmp_path, capsys, monkeypatch):
    import engines.meta_engine
    from benchmarks.plateau import run_cpus
    out = tmp_path / "r"
    monkeypatch.setattr(engines.meta_engine, "cpu_model", lambda: "first CPU")
    assert run.main(sinusoid(out, 10)) == 0
    assert checkpoint.load_checkpoint(out / "last.pt")["cpu"] == "first CPU"
    monkeypatch.setattr(run, "cpu_model", lambda: "second CPU")  # resumed on another machine
    assert run.main(["--resume", str(out), "--iterations", "15"]) == 0
    record = results(out)
    assert record["cpu"] == "first CPU" and record["resumes"][0]["cpu"] == "second CPU"
    assert run_cpus(record) == ["first CPU", "second CPU"]
    # a record written before runs carried their CPU says so instead of guessing
    assert run_cpus({"resumes": [{"iteration": 5}]}) == ["not recorded"]


def test_resume_takes_a_folder_and_says_so(tmp_path, capsys):
    err = fails(capsys, ["--resume", str(tmp_path)], "run folder holding last.pt", str(tmp_path))
    assert "best.pt" not in err


# ---- checkpoints ----------------------------------------------------------------------------
def test_a_damaged_checkpoint_is_refused_naming_the_intact_one(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 20, "--set", "checkpoint_every=0")) == 0
    raw = bytearray((out / "last.pt").read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 8] = b"\x7f" * 8
    (out / "last.pt").write_bytes(bytes(raw))
    fails(capsys, ["evaluate", "--checkpoint", str(out / "last.pt")],
                   str(out / "last.pt"), "damaged", f"{out / 'best.pt'} is intact")
    fails(capsys, ["--resume", str(out), "--iterations", "30"], "damaged")
    (out / "last.pt").write_bytes(bytes(raw[:len(raw) // 3]))
    fails(capsys, ["evaluate", "--checkpoint", str(out / "last.pt")], "truncated")


def test_checkpoints_are_readable_like_the_other_outputs(tmp_path):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(out / "last.pt") == mode(out / "best.pt") == mode(out / "results.json")


def test_a_folder_that_becomes_unwritable_mid_run_ends_in_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    calls = []
    real = tempfile.mkstemp

    def unwritable_after_first(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # last.pt at 5 and best.pt at 10 are written; last.pt at 10 fails
            raise PermissionError(13, "Permission denied", str(out))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", unwritable_after_first)
    fails(capsys, sinusoid(out, 10), "cannot write", "Permission denied", "intact")
    assert checkpoint.load_checkpoint(out / "last.pt")["iteration"] == 5


class FillsUp(io.FileIO):
    """A file on a disk that fills after 4 KiB: later writes fail with ENOSPC, as the kernel's
    do. (torch.save turned that into a RuntimeError, so the disk-full line never appeared.)"""
    written = 0

    def write(self, data):
        self.written += len(data)
        if self.written > 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_full_disk_ends_in_one_line_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    before = (out / "last.pt").read_bytes()
    monkeypatch.setattr(checkpoint.os, "fdopen", lambda fd, mode="wb": FillsUp(fd, "wb"))
    capsys.readouterr()
    fails(capsys, ["--resume", str(out), "--iterations", "15"], "disk full", "intact",
                   f"--resume {out}")
    assert (out / "last.pt").read_bytes() == before
    assert not list(out.glob("*.tmp"))


def test_resume_removes_temporary_files_a_killed_save_left(tmp_path):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    orphan = out / "last.pt.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    assert run.main(["--resume", str(out), "--iterations", "12"]) == 0
    assert not orphan.exists()


# ---- the run folder itself --------------------------------------------------------------
def test_out_naming_a_file_ends_in_one_line(tmp_path, capsys):
    file = tmp_path / "a-file"
    file.write_text("x")
    fails(capsys, sinusoid(file, 2), "is a file", "--out")
    assert file.read_text() == "x"


def test_an_unwritable_run_folder_ends_in_one_line(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses even root
        folder = Path("/sys/kernel/metalearn-run")
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without /sys to make an unwritable folder")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
    fails(capsys, sinusoid(folder, 2), "cannot write to the run folder", str(folder), "--out")


# ---- settings that used to pass or crash -------------------------------------------------
def test_negative_seed_and_cuda_without_gpu_end_in_one_line(tmp_path, capsys):
    fails(capsys, sinusoid(tmp_path / "a", 2, "--seed", "-1"), "seed", ">= 0")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: device=cuda is valid here")
    fails(capsys, sinusoid(tmp_path / "b", 2, "--set", "device=cuda"), "device=cpu")
    assert not (tmp_path / "b").exists()


def test_a_mistyped_value_names_the_type_and_the_presets_value(capsys):
    err = fails(capsys, ["--dataset", "sinusoid", "--set", "inner.lr=fast"], "must be a float",
                         "0.01")
    assert "0.4" not in err  # the global default, not what this run had
    fails(capsys, ["--dataset", "sinusoid", "--set", "inner.steps=five"], "must be an int")


def test_help_names_the_other_commands(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    shown = capsys.readouterr().out
    assert "evaluate" in shown and "compare" in shown


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    real = MetaEngine.train_step

    def interrupted_at_8(self):
        if self.global_step == 8:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(MetaEngine, "train_step", interrupted_at_8)
    assert run.main(sinusoid(out, 10)) == 130
    err = capsys.readouterr().err
    assert f"--resume {out}" in err and "holds iteration 5" in err


# ---- records -------------------------------------------------------------------------------
def test_a_run_shorter_than_val_every_validates_and_keeps_a_best(tmp_path):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 4, "--set", "eval.val_every=100")) == 0
    assert (out / "best.pt").is_file()
    valid = [h for h in results(out)["history"] if h["split"] == "validation"]
    assert [h["iteration"] for h in valid] == [4]


def test_train_time_is_counted_once(tmp_path):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    saved = checkpoint.load_checkpoint(out / "last.pt")["train_seconds"]
    assert saved == pytest.approx(results(out)["train_seconds"], abs=2e-3)


def test_resumed_records_hold_each_iteration_once(tmp_path, monkeypatch):
    out = tmp_path / "r"
    real = MetaEngine.train_step

    def killed_at_8(self):  # iterations 6 and 7 are logged but never checkpointed
        if self.global_step == 8:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(MetaEngine, "train_step", killed_at_8)
    assert run.main(sinusoid(out, 10, "--set", "eval.log_every=1")) == 130
    monkeypatch.setattr(MetaEngine, "train_step", real)
    assert run.main(["--resume", str(out)]) == 0
    rows = [tuple(r.split(",")[:2]) for r in (out / "log.csv").read_text().splitlines()[1:]]
    assert len(rows) == len(set(rows)), rows
    assert [int(i) for i, split in rows if split == "train"] == list(range(1, 11))


def test_results_json_stays_valid_json_when_test_adaptation_diverges(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 2, "--set", "inner.lr=1.0", "--set", "inner.steps=1",
                             "--set", "eval.steps=100", "--set", "eval.val_every=0")) == 0
    test = results(out)["test"]
    assert test["diverged"] > 0 and test["mean"] is None
    assert "diverged" in capsys.readouterr().err


def test_a_checkpoint_written_before_a_setting_existed_resumes_and_evaluates(tmp_path):
    """A key added to defaults.yaml after a run was saved takes its default; resuming does not
    count it as a changed setting."""
    from engines.checkpoint import load_checkpoint, save_checkpoint
    out = tmp_path / "old"
    assert run.main(sinusoid(out, 5)) == 0
    state = load_checkpoint(out / "last.pt")
    del state["config"]["inner"]["task_threads"]  # as written before the key existed
    save_checkpoint(out / "last.pt", state)
    assert run.main(["--resume", str(out), "--iterations", "6"]) == 0
    assert run.main(["evaluate", "--checkpoint", str(out / "last.pt"), "--episodes", "4"]) == 0
    assert load_checkpoint(out / "last.pt")["config"]["inner"]["task_threads"] == 0


# ---- stopping early ---------------------------------------------------------------------------
def test_patience_stops_after_validations_without_improvement(tmp_path, capsys):
    """θ that cannot move (outer lr 1e-30) never validates better: with eval.patience=2 and a
    validation every 2 iterations, the run stops at iteration 6, tests the best θ and says why;
    each validation line says how much patience is used."""
    out = tmp_path / "p"
    assert run.main(sinusoid(out, 50, "--set", "outer.lr=1e-30", "--set", "eval.val_every=2",
                             "--set", "eval.patience=2")) == 0
    r = results(out)
    assert (r["iterations"], r["stopped"]) == (6, "patience")
    assert r["best_validation"]["iteration"] == 2
    shown = [line for line in capsys.readouterr().out.splitlines() if "[validation]" in line]
    assert shown[0].endswith("(best)") and shown[1].endswith("(no better for 1 of 2 validations)")
    assert shown[2].endswith("(no better for 2 of 2 validations)")


def test_the_wall_budget_stops_training_and_still_tests(tmp_path, capsys):
    out = tmp_path / "w"
    assert run.main(sinusoid(out, 50, "--minutes", "0.00001")) == 0
    r = results(out)
    assert r["stopped"] == "wall time" and r["iterations"] == 1 and r["test"]["episodes"] == 8
    assert "stopped: wall time" in capsys.readouterr().out
    assert run.main(sinusoid(tmp_path / "z", 5)) == 0
    assert results(tmp_path / "z")["stopped"] == "iterations"


def test_minutes_must_be_positive(capsys):
    fails(capsys, ["--dataset", "sinusoid", "--minutes", "0"], "--minutes", "minutes > 0")


@pytest.mark.parametrize("schedule, expected", [
    ("constant", [1.0, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [1.0, 0.8, 0.6, 0.4, 0.2]),        # to min_lr_ratio=0 over 5 iterations
    ("step", [1.0, 1.0, 0.5, 0.5, 0.25]),          # halved every 2 iterations
    ("cosine", [1.0, 0.9045, 0.6545, 0.3455, 0.0955]),
])
def test_outer_schedule_sets_the_lr_of_each_meta_iteration(schedule, expected):
    from problems.factory import build_outer_optimizer
    options = load_options("maml", "sinusoid", [f"outer.schedule={schedule}", "outer.lr=1.0",
                                                 "outer.decay_every=2", "outer.decay=0.5"],
                           values={"iterations": 5})
    optimizer, scheduler = build_outer_optimizer(options, torch.nn.Linear(1, 1))
    seen = []
    for _ in range(5):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler:
            scheduler.step()
    assert seen == pytest.approx(expected, abs=1e-4)


def test_a_run_steps_its_schedule_once_per_meta_iteration_and_resumes_it(tmp_path):
    """The linear schedule reaches min_lr_ratio·lr at the last iteration, through a resume."""
    out = tmp_path / "s"
    sets = ["--set", "outer.schedule=linear", "--set", "outer.min_lr_ratio=0.5"]
    assert run.main(sinusoid(out, 6, *sets)) == 0
    state = checkpoint.load_checkpoint(out / "last.pt")
    assert state["outer"]["scheduler"]["last_epoch"] == 6
    assert state["outer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5e-3)


def test_evaluate_writes_json_once(tmp_path, capsys):
    out = tmp_path / "e"
    assert run.main(sinusoid(out, 2)) == 0
    target = tmp_path / "one_step.json"
    assert run.main(["evaluate", "--checkpoint", str(out / "last.pt"), "--steps", "1",
                     "--episodes", "4", "--json", str(target)]) == 0
    record = json.loads(target.read_text())
    assert (record["test"]["steps"], record["test"]["episodes"], record["iteration"]) == (1, 4, 2)
    fails(capsys, ["evaluate", "--checkpoint", str(out / "last.pt"), "--json", str(target)],
          "already exists", "--json")
    assert json.loads(target.read_text()) == record
