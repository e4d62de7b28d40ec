"""Runs users can trust: resume after SIGKILL ends exactly where an uninterrupted run ends,
checkpoints survive a full disk, re-testing a checkpoint, and the records a run leaves."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import run
from engines import checkpoint
from engines.evaluation import Summary, divergence_hint
from engines.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
SINUSOID = ["--problem", "maml", "--dataset", "sinusoid", "--seed", "3",
            "--set", "eval.episodes=20", "--set", "eval.val_episodes=10",
            "--set", "eval.val_every=20", "--set", "eval.log_every=5"]


# One thread in every process: CPU results are bitwise reproducible only at equal thread counts.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(out, iterations, *extra):
    return subprocess.Popen([sys.executable, "run.py", *SINUSOID, "--iterations", str(iterations),
                             "--out", str(out), "--set", "checkpoint_every=10", *extra],
                            cwd=ROOT, env=ONE_THREAD, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def model_of(path):
    return checkpoint.load_checkpoint(path)["model"]


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    straight = launch(tmp_path / "straight", 200)
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    killed = launch(tmp_path / "killed", 200)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a mid-run checkpoint exists
        if last.exists() and 20 <= checkpoint.load_checkpoint(last)["iteration"] < 200:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped_at = checkpoint.load_checkpoint(last)["iteration"]
    assert stopped_at < 200

    resumed = subprocess.run([sys.executable, "run.py", "--resume", str(tmp_path / "killed")],
                             cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at iteration {stopped_at}" in resumed.stdout
    a, b = model_of(tmp_path / "straight" / "last.pt"), model_of(last)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (model_of(tmp_path / "straight" / "best.pt").keys()
            == model_of(tmp_path / "killed" / "best.pt").keys())


def short_run(tmp_path, name="r", *extra):
    out = tmp_path / name
    assert run.main([*SINUSOID, "--iterations", "20", "--out", str(out), *extra]) == 0
    return out


def test_resume_refuses_another_problem(tmp_path, capsys):
    out = short_run(tmp_path)
    assert run.main(["--resume", str(out), "--problem", "imaml"]) == 2
    err = capsys.readouterr().err
    assert "maml run on sinusoid" in err and "--problem" in err and "\n" not in err.strip()


def test_run_leaves_csv_curves_checkpoints_and_tensorboard(tmp_path):
    out = short_run(tmp_path)
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,split,loss")
    assert any(",validation," in r for r in rows) and any(",train," in r for r in rows)
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    state = checkpoint.load_checkpoint(out / "last.pt")
    assert {"model", "outer", "rng", "iteration", "config", "version", "env"} <= set(state)
    assert "optimizer" in state["outer"]
    pytest.importorskip("tensorboard")
    assert any((out / "tensorboard").iterdir())


def test_evaluate_retests_a_checkpoint(tmp_path, capsys):
    out = short_run(tmp_path)
    capsys.readouterr()
    assert run.main(["evaluate", "--checkpoint", str(out / "best.pt"), "--episodes", "12",
                     "--steps", "3"]) == 0
    line = capsys.readouterr().out
    assert "test mse" in line and "12 episodes" in line and "3 steps" in line


def test_bad_yaml_config_file(tmp_path, capsys):
    bad = tmp_path / "mine.yaml"
    bad.write_text("inner:\n  lr: [0.1\n")
    assert run.main(["--dataset", "sinusoid", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "mine.yaml" in err and "YAML" in err and "\n" not in err.strip()


def test_config_file_sets_keys(tmp_path, capsys):
    good = tmp_path / "mine.yaml"
    good.write_text("inner:\n  lrr: 0.1\n")
    assert run.main(["--dataset", "sinusoid", "--config", str(good)]) == 2
    assert "inner.lrr" in capsys.readouterr().err


def test_impossible_episode(capsys, shared_data_root):
    assert run.main(["--dataset", "omniglot5w1s", "--data-root", str(shared_data_root),
                     "--set", "data.shots=30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "shots" in err


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_shows_loss_accuracy_rate_and_eta():
    screen = Terminal()
    bar = Progress(total=50, start=10, stream=screen)
    for _ in range(3):
        bar.update({"loss": 1.25, "acc": 0.5})
    bar.close()
    shown = screen.getvalue()
    assert "13/50" in shown and "loss=1.250" in shown and "acc=0.500" in shown
    assert "it/s" in shown or "s/it" in shown
    assert "<" in shown  # tqdm's elapsed<remaining (ETA)


def test_redirected_output_gets_plain_progress_lines_instead_of_a_bar():
    lines, redirected = [], io.StringIO()
    bar = Progress(total=50, start=10, stream=redirected, log=lines.append, line_seconds=0)
    for _ in range(3):
        bar.update({"loss": 1.25, "acc": 0.5})
    bar.close()
    assert redirected.getvalue() == ""  # no bar characters in a log file
    assert len(lines) == 3 and lines[-1].startswith("meta-train 13/50: loss 1.250, acc 0.500; ")
    assert "s/it, about" in lines[-1] and lines[-1].endswith(" left")
    quiet = []
    bar = Progress(total=50, start=0, stream=io.StringIO(), log=quiet.append)  # once a minute
    bar.update({"loss": 1.0})
    assert quiet == []
    on_screen = []
    Progress(total=50, start=0, stream=Terminal(), log=on_screen.append, line_seconds=0).update({})
    assert on_screen == []  # a terminal has the bar instead
    test_lines = []
    bar = Progress(total=600, start=0, stream=io.StringIO(), desc="test", unit="episode",
                   log=test_lines.append, line_seconds=0)
    bar.advance_to(200, 600)
    assert test_lines[0].startswith("test 200/600; ") and "s/episode" in test_lines[0]


def test_divergence_in_evaluation_names_the_count_and_the_fix():
    summary = Summary("validation", "mse", float("nan"), float("nan"), 20, 10, float("nan"),
                      diverged=3)
    hint = divergence_hint(summary, inner_lr=0.5)
    assert "3 of 20 validation episodes" in hint and "inner.lr (now 0.5)" in hint
    assert divergence_hint(Summary("test", "mse", 1.0, 0.1, 20, 10, 1.0), 0.5) == ""
