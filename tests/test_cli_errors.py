"""Every mistake a user can make on the command line ends in one line on stderr naming the
fix and exit status 2, never a traceback."""
import torch

from engines import load_checkpoint
from support import fails


def test_unknown_problem_lists_valid_ones(capsys):
    fails(capsys, ["--problem", "mamll", "--dataset", "sinusoid"], "mamll", "maml", "imaml")


def test_unknown_dataset_lists_valid_ones(capsys):
    fails(capsys, ["--problem", "maml", "--dataset", "omniglot"], "omniglot5w1s", "mini5shot")


def test_unknown_config_key(capsys):
    fails(capsys, ["--dataset", "sinusoid", "--set", "inner.lrate=0.1"], "inner.lrate", "inner.lr")


def test_mistyped_value(capsys):
    fails(capsys, ["--dataset", "sinusoid", "--set", "inner.steps=five"], "inner.steps", "int")


def test_value_outside_choices(capsys):
    fails(capsys, ["--dataset", "sinusoid", "--set", "inner.implicit.solver=lbfgs"],
          "cg", "neumann")
    fails(capsys, ["--dataset", "sinusoid", "--set", "inner.vectorize=sometimes"], "auto", "never")


def test_missing_mini_imagenet_names_the_file_and_fix(capsys, tmp_path):
    fails(capsys, ["--problem", "imaml", "--dataset", "mini5shot", "--data-root", str(tmp_path)],
          "mini-imagenet-cache-", str(tmp_path))


def test_unknown_inner_optimizer(capsys):
    fails(capsys, ["--dataset", "sinusoid", "--inner-optimizer", "adamw"],
          "sgd", "module:ClassName")


def test_inner_optimizer_module_that_does_not_exist(capsys):
    fails(capsys, ["--dataset", "sinusoid", "--inner-optimizer", "nowhere.mod:Opt"], "nowhere.mod")


def test_evaluate_missing_checkpoint(capsys, tmp_path):
    fails(capsys, ["evaluate", "--checkpoint", str(tmp_path / "nope.pt")], "nope.pt")


def test_evaluate_corrupt_checkpoint(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    fails(capsys, ["evaluate", "--checkpoint", str(bad)], "bad.pt")


def test_diverging_loss_stops_with_the_iteration_and_what_to_lower(capsys, tmp_path):
    err = fails(capsys, ["--dataset", "sinusoid", "--iterations", "50",
                         "--out", str(tmp_path / "r"),
                         "--set", "outer.lr=1.0", "--set", "eval.val_every=0",
                         "--set", "checkpoint_every=1"],
                "iteration 2", "outer.lr", "last good checkpoint")
    assert "nan" in err.lower() or "inf" in err.lower()
    # The last checkpoint written before the divergence survives and holds finite parameters.
    state = load_checkpoint(tmp_path / "r" / "last.pt")
    assert 1 <= state["iteration"] < 50
    assert all(torch.isfinite(v).all() for v in state["model"].values())
