"""Files a user is handed and runs that meet each other: no file runs code when read, no run
writes another's folder, and every mistake ends in one line that names the fix. Each test is a
case tried on an earlier version, as a user and as an attacker."""
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import run
from engines import checkpoint
from support import fails

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--set", "eval.episodes=8", "--set", "eval.val_episodes=4", "--set", "eval.val_every=10",
         "--set", "eval.log_every=5", "--set", "checkpoint_every=5"]


def sinusoid(out, iterations=10, *extra):
    return ["--problem", "maml", "--dataset", "sinusoid", "--seed", "3", "--iterations",
            str(iterations), "--out", str(out), *QUICK, *extra]


def files_of(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


# ---- 1. a crafted checkpoint cannot run code -----------------------------------------------------
class Payload:
    """What an attacker pickles: unpickling it calls open(marker, "w")."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoint(path: Path, marker: Path, sealed: bool = True) -> Path:
    """A file shaped like a checkpoint (header and a checksum that matches) whose payload runs
    code in a plain unpickler."""
    buffer = io.BytesIO()
    torch.save({"config": {}, "model": {}, "iteration": 1, "problem": "maml", "dataset": "sinusoid",
                "evil": Payload(marker)}, buffer, _use_new_zipfile_serialization=True)
    payload = buffer.getvalue()
    header = (f"metalearn-checkpoint 2 sha256={hashlib.sha256(payload).hexdigest()} "
              f"bytes={len(payload)}\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((header if sealed else b"") + payload)
    return path


def test_the_crafted_file_is_a_real_attack(tmp_path):
    """The test's own control, read without unpickling anything: the payload's pickle calls
    open() when loaded, so the refusals below mean something."""
    import pickletools
    import zipfile
    raw = crafted_checkpoint(tmp_path / "x.pt", tmp_path / "ran").read_bytes().partition(b"\n")[2]
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert ("GLOBAL", "io open") in ops and ("REDUCE", None) in ops   # open(marker, "w") on load
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("sealed", [True, False], ids=["with-header", "bare"])
def test_no_command_that_reads_a_checkpoint_runs_its_code(tmp_path, capsys, sealed):
    marker = tmp_path / "ran"
    folder = tmp_path / "run"
    path = crafted_checkpoint(folder / "last.pt", marker, sealed)
    shutil.copyfile(path, folder / "best.pt")
    commands = [["evaluate", "--checkpoint", str(path)],
                ["--resume", str(folder)],
                ["compare", "--checkpoint", str(path), "--problems", "maml", "--inner-steps", "1",
                 "--repeats", "1", "--ref-steps", "20", "--out", str(tmp_path / "cmp")]]
    for argv in commands:
        fails(capsys, argv, str(path), "refused unread")
        assert not marker.exists(), argv


def test_a_checkpoint_is_an_allow_list_of_keys_and_types(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 5)) == 0
    state = checkpoint.load_checkpoint(out / "last.pt")
    extra = dict(state, surprise=[1, 2])
    checkpoint.save_checkpoint(tmp_path / "extra.pt", extra)
    fails(capsys, ["evaluate", "--checkpoint", str(tmp_path / "extra.pt")], "unknown keys surprise")
    partial = {k: v for k, v in state.items() if k != "iteration"}  # case 15: a dict missing keys
    checkpoint.save_checkpoint(tmp_path / "partial.pt", partial)
    fails(capsys, ["evaluate", "--checkpoint", str(tmp_path / "partial.pt")], "lacks iteration")
    resumable = {k: v for k, v in state.items() if k != "outer"}
    broken = tmp_path / "broken"
    broken.mkdir()
    checkpoint.save_checkpoint(broken / "last.pt", resumable)
    fails(capsys, ["--resume", str(broken)], "cannot be resumed", "lacks outer")


def test_checkpoints_hold_no_numpy_objects_and_resume_bitwise(tmp_path):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 5)) == 0
    payload = (out / "last.pt").read_bytes().partition(b"\n")[2]
    torch.load(io.BytesIO(payload), weights_only=True)  # nothing outside torch's own allow-list
    assert run.main(["--resume", str(out), "--iterations", "10"]) == 0
    straight = tmp_path / "s"
    assert run.main(sinusoid(straight, 10)) == 0
    resumed = json.loads((out / "results.json").read_text())
    once = json.loads((straight / "results.json").read_text())
    assert resumed["test"] == once["test"]


def test_a_data_pickle_may_hold_only_arrays_and_containers(tmp_path):
    from envs import DataError
    from envs.readers import read_pickle
    marker = tmp_path / "ran"
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    path.write_bytes(pickle.dumps({"image_data": Payload(marker), "class_dict": {}}))
    with pytest.raises(DataError, match="io.open"):
        read_pickle(path, "mini-imagenet")
    assert not marker.exists()


# ---- 2. a config cannot expand without bound ----------------------------------------------------
def alias_bomb(levels: int) -> str:
    """A few hundred bytes of YAML whose value, inside a valid key, expands to 9**levels items."""
    inner = ["&l0 [x, x, x, x, x, x, x, x, x]"]
    inner += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "data:\n  split_fractions: [" + ", ".join(inner) + "]\n"


def test_a_config_of_nested_aliases_is_refused_in_one_short_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(6))
    assert len(alias_bomb(6)) < 500
    start = time.perf_counter()
    line = fails(capsys, ["--config", str(bomb), "--out", str(tmp_path / "r")],
                 "expands to more than", "aliases")
    assert len(line) < 300 and time.perf_counter() - start < 30


def test_an_error_quotes_a_long_value_cut_short(capsys, tmp_path):
    long = "[" + ", ".join(["1"] * 5000) + "]"
    line = fails(capsys, ["--dataset", "sinusoid", "--set", f"inner.lr={long}",
                          "--out", str(tmp_path)],
                 "inner.lr", "characters")
    assert len(line) < 400


# ---- 3. one process per run folder ---------------------------------------------------------------
def start_training(out: Path, iterations: int, *extra) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    argv = [sys.executable, str(ROOT / "run.py"), *sinusoid(out, iterations, *extra)]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for(path: Path, child: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert child.poll() is None, "the training process ended early"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def test_resume_while_the_run_trains_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path,
                                                                                     capsys):
    out = tmp_path / "r"
    child = start_training(out, 100000)
    try:
        wait_for(out / "last.pt", child)
        fails(capsys, ["--resume", str(out), "--iterations", "200000"],
              str(out), f"in use by process {child.pid}")
        before = (out / "log.csv").read_text()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (out / "log.csv").read_text().startswith(before.splitlines()[0])
    done = checkpoint.load_checkpoint(out / "last.pt")["iteration"]
    assert run.main(["--resume", str(out), "--iterations", str(done + 5)]) == 0  # stale lock taken
    rows = [int(r.split(",")[0]) for r in (out / "log.csv").read_text().splitlines()[1:]
            if ",train," in r]
    assert rows == sorted(rows) and len(rows) == len(set(rows))


def test_a_second_overwrite_run_into_a_training_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    child = start_training(out, 100000)
    try:
        wait_for(out / "last.pt", child)
        fails(capsys, sinusoid(out, 5, "--overwrite"), f"in use by process {child.pid}")
        assert child.poll() is None and (out / "last.pt").exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


# ---- 4. a checkpoint carries the identity of its run ---------------------------------------------
def test_another_runs_checkpoint_copied_in_is_refused(tmp_path, capsys):
    mine, other = tmp_path / "mine", tmp_path / "other"
    assert run.main(sinusoid(mine, 10)) == 0
    assert run.main(sinusoid(other, 10, "--set", "inner.lr=0.02")) == 0
    ids = {json.loads((f / "results.json").read_text())["run_id"] for f in (mine, other)}
    assert len(ids) == 2 and None not in ids
    assert checkpoint.load_checkpoint(mine / "best.pt")["run_id"] in ids
    kept = files_of(mine)
    shutil.copyfile(other / "last.pt", mine / "last.pt")
    fails(capsys, ["--resume", str(mine), "--iterations", "12"], "belongs to another run")
    shutil.copyfile(tmp_path / "mine" / "best.pt", tmp_path / "mine-best.pt")
    (mine / "last.pt").write_bytes(kept["last.pt"])
    shutil.copyfile(other / "best.pt", mine / "best.pt")
    fails(capsys, ["--resume", str(mine), "--iterations", "12"], "belongs to another run",
          "best.pt")


def test_the_end_of_a_run_never_tests_a_best_pt_another_run_wrote(tmp_path):
    from engines.meta_engine import MetaEngine
    from envs import make_env
    from problems.options import load_options
    other = tmp_path / "other"
    assert run.main(sinusoid(other, 10)) == 0
    cfg = load_options("maml", "sinusoid", ["eval.val_every=0"])
    engine = MetaEngine(cfg, make_env(cfg.data, None, 0), out_dir=other, progress=False)
    with pytest.raises(checkpoint.CheckpointError, match="written by another run"):
        engine.own_checkpoint("best.pt")


# ---- 5, 6. --overwrite loses nothing until the new run trains ------------------------------------
def test_overwrite_restores_the_old_run_when_the_new_one_fails_at_its_first_step(tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    before = files_of(out)
    from engines.meta_engine import MetaEngine

    def broken(self):
        raise RuntimeError("the new run's first step fails")
    monkeypatch.setattr(MetaEngine, "train_step", broken)
    with pytest.raises(RuntimeError):
        run.main(sinusoid(out, 10, "--overwrite", "--set", "inner.lr=0.02"))
    assert files_of(out) == before and not (out / ".replaced").exists()


def test_a_backbone_that_does_not_fit_is_one_line_and_the_old_run_stays(tmp_path, capsys,
                                                                        shared_data_root):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 10)) == 0
    before = files_of(out)
    fails(capsys, ["--dataset", "omniglot5w1s", "--data-root", str(shared_data_root),
                   "--out", str(out), "--overwrite", "--set", "model.backbone=mlp"],
          "model.backbone=mlp", "use model.backbone=cnn4")
    fails(capsys, sinusoid(out, 5, "--overwrite", "--set", "model.backbone=cnn4"),
          "model.backbone=cnn4", "use model.backbone=mlp")
    assert files_of(out) == before


def test_overwrite_will_not_delete_a_run_extended_with_resume(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 5)) == 0
    assert run.main(["--resume", str(out), "--iterations", "10"]) == 0
    before = files_of(out)
    fails(capsys, sinusoid(out, 5, "--overwrite"), "continued with --resume", "another --out")
    assert files_of(out) == before


def test_make_run_writes_a_folder_of_its_own():
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "--out runs/make-run " in recipe and "--overwrite" in recipe


# ---- 7. a comparison never replaces another ------------------------------------------------------
def test_a_second_compare_into_the_same_folder_is_refused(tmp_path, capsys):
    argv = ["compare", "--dataset", "sinusoid", "--set", "model.hidden=8",
            "--set", "inner.implicit.lam=50", "--tasks", "1", "--repeats", "1", "--ref-steps", "50",
            "--problems", "maml", "--inner-steps", "1", "--no-memory", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    first = (tmp_path / "compare.json").read_bytes()
    capsys.readouterr()
    fails(capsys, argv, str(tmp_path), "already holds a comparison", "--overwrite")
    assert (tmp_path / "compare.json").read_bytes() == first
    assert run.main(argv + ["--overwrite"]) == 0


# ---- 13-16. numbers that mean what they say, and one line for each mistake -----------------------
def test_the_interval_uses_the_sample_deviation_and_is_na_for_one_episode():
    from engines.evaluation import confidence_interval, format_metric
    mean, ci = confidence_interval([0.0, 1.0])
    assert mean == 0.5 and abs(ci - 1.96 * (0.5 ** 0.5) / (2 ** 0.5)) < 1e-12
    assert confidence_interval([0.7]) == (0.7, None)
    assert format_metric(0.7, None, "accuracy") == "70.00% ± n/a"


def test_evaluate_one_episode_prints_na(tmp_path, capsys):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 5)) == 0
    capsys.readouterr()
    assert run.main(["evaluate", "--checkpoint", str(out / "last.pt"), "--episodes", "1"]) == 0
    assert "± n/a" in capsys.readouterr().out


def test_a_wall_budget_without_validation_says_the_final_theta_was_tested(tmp_path, capsys):
    assert run.main(sinusoid(tmp_path / "r", 100000, "--minutes", "0.001", "--set",
                             "eval.val_every=0")) == 0
    out = capsys.readouterr().out
    assert "the final θ was tested" in out and "best θ" not in out


def test_the_test_phase_says_what_it_tests(tmp_path, capsys):
    assert run.main(sinusoid(tmp_path / "r", 5)) == 0
    assert "testing on 8 test episodes x 10 steps" in capsys.readouterr().out


NONE_ADAPT = '''
from optimizers import InnerLoopOptimizer


class ForgetsToReturn(InnerLoopOptimizer):
    def adapt(self, model, support_x, support_y, n_steps):
        for step in range(n_steps):
            model = self.descend(model, self.gradients(model, support_x, support_y, step), step)
'''


@pytest.mark.parametrize("argv,needles", [
    (["--seed", "99999999999999999999"], ["seed", "<= 4294967295"]),
    (["--set", "data.ways=5"], ["data.ways=5", "sinusoid is regression"]),
    (["--out", ""], ["--out is empty"]),
    (["--set", "eval.episodes=1000000000"], ["eval.episodes", "<= 100000"]),
])
def test_bad_flags_are_one_line(tmp_path, capsys, argv, needles):
    base = ["--dataset", "sinusoid", "--iterations", "2"]
    if "--out" not in argv:
        base += ["--out", str(tmp_path / "r")]
    fails(capsys, base + argv, *needles)
    assert not (tmp_path / "r" / "results.json").exists()


def test_one_way_tasks_are_refused(tmp_path, capsys, shared_data_root):
    fails(capsys, ["--dataset", "omniglot5w1s", "--data-root", str(shared_data_root), "--out",
                   str(tmp_path / "r"), "--set", "data.ways=1"], "data.ways=1", "2 or more")


def test_a_config_that_is_not_utf8_or_repeats_a_section_is_one_line(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("inner:\n  lr: 0.1  # réglé\n".encode("latin-1"))
    fails(capsys, ["--config", str(latin), "--out", str(tmp_path / "r")], "not UTF-8")
    twice = tmp_path / "twice.yaml"
    twice.write_text("inner:\n  lr: 0.1\nouter:\n  lr: 0.01\ninner:\n  steps: 3\n")
    fails(capsys, ["--config", str(twice), "--out", str(tmp_path / "r")],
          "'inner' is given twice", "line 5", "line 1")


def test_an_adapt_that_returns_none_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "forgetful.py").write_text(NONE_ADAPT)
    monkeypatch.syspath_prepend(str(tmp_path))
    fails(capsys, sinusoid(tmp_path / "r", 3, "--inner-optimizer", "forgetful:ForgetsToReturn"),
          "ForgetsToReturn.adapt returned None", "return the adapted model")


@pytest.mark.parametrize("setting", ["data.split_seed=1", "data.split_by=character"])
def test_evaluate_cannot_change_the_class_split(tmp_path, capsys, setting):
    out = tmp_path / "r"
    assert run.main(sinusoid(out, 5)) == 0
    fails(capsys, ["evaluate", "--checkpoint", str(out / "last.pt"), "--set", setting],
          setting.split("=")[0], "training classes")


def test_evaluating_an_image_model_on_sinusoid_is_one_line(tmp_path, capsys, shared_data_root):
    out = tmp_path / "r"
    assert run.main(["--dataset", "omniglot5w1s", "--data-root", str(shared_data_root),
                     "--iterations", "1", "--out", str(out), "--set", "model.hidden=4",
                     "--set", "data.meta_batch=2",
                     "--set", "eval.episodes=2", "--set", "eval.val_episodes=2"]) == 0
    fails(capsys, ["evaluate", "--checkpoint", str(out / "best.pt"), "--dataset", "sinusoid"],
          "model.backbone=cnn4")
