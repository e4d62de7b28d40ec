"""Short runs of every problem through run.py, on sinusoid and on the shared Omniglot subset:
the outer loss goes down and results.json has the fields users read."""

import pytest

from support import train_losses, train_run as train

PROBLEMS = ["maml", "fomaml", "imaml", "imaml-neumann"]
RESULT_FIELDS = {"problem", "dataset", "seed", "iterations", "train_seconds", "test_seconds",
                 "device", "test", "best_validation", "history", "config"}
TEST_FIELDS = {"split", "metric", "mean", "ci95", "episodes", "steps", "loss"}


@pytest.mark.slow
@pytest.mark.parametrize("problem", PROBLEMS)
def test_sinusoid_outer_loss_goes_down(tmp_path, problem):
    # Meta-batches of 4 sinusoids give noisy single-iteration losses: compare 20-iteration means.
    # iMAML-CG oscillates after ~120 iterations at outer.lr 0.005 (seed 1); 0.002 is stable there.
    outer_lr = 0.002 if problem == "imaml" else 0.005
    results = train(tmp_path, problem, "sinusoid", 200, f"outer.lr={outer_lr}", "eval.log_every=1",
                    "eval.val_every=100", "eval.val_episodes=20", "eval.episodes=40")
    losses = train_losses(results)
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.6 * first, (first, last)
    assert RESULT_FIELDS <= set(results) and TEST_FIELDS <= set(results["test"])
    assert results["test"]["metric"] == "mse" and results["test"]["episodes"] == 40
    assert results["test"]["steps"] == 10 and results["iterations"] == 200


@pytest.mark.slow
@pytest.mark.parametrize("problem", PROBLEMS)
def test_omniglot_subset_outer_loss_goes_down(tmp_path, shared_data_root, problem):
    # At 2 steps of lr 0.1 (the preset) iMAML's proximal adaptation barely moves φ on this
    # 16-filter CNN and the loss stays flat for 30 iterations (measured for CG; for Neumann the
    # first and last ten losses were within 0.5%, their order set by float32 rounding). Measured
    # to learn at 1 and 2 threads: CG with 3 steps of 0.3; Neumann with 2 steps of 0.2 (at 0.3
    # its series diverged to a NaN meta-loss).
    inner = {"imaml": ["inner.steps=3", "inner.lr=0.3"],
             "imaml-neumann": ["inner.steps=2", "inner.lr=0.2"]}.get(problem, ["inner.steps=2"])
    # The benchmark protocol's meta-batches (4 tasks, 15 queries per class, Adam 1e-3), where the
    # settings above were measured; the preset's 1-query meta-batches make 10-iteration means noisy.
    protocol = ["data.meta_batch=4", "data.train_query=15", "outer.lr=0.001"]
    results = train(tmp_path, problem, "omniglot5w1s", 30, "model.hidden=16",
                    "eval.log_every=1", "eval.val_every=15", "eval.val_episodes=8",
                    "eval.episodes=8", "eval.steps=3", *protocol, *inner,
                    data_root=shared_data_root)
    losses = train_losses(results)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first, (first, last)
    assert results["test"]["metric"] == "accuracy" and 0.0 <= results["test"]["mean"] <= 1.0
    assert results["best_validation"]["iteration"] in (15, 30)
    assert (tmp_path / f"{problem}-omniglot5w1s" / "best.pt").is_file()
