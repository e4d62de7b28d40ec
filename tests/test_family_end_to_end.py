"""Short runs of every inner-loop optimizer variant through run.py, on sinusoid and on the
shared Omniglot subset: they train (the sinusoid loss falls), test, and write results.json.
MAML++'s schedules are shortened so both derivative orders and the loss annealing run."""
import math

import pytest

from support import train_losses, train_run

VARIANTS = {  # name in results: (problem, extra argv)
    "metasgd": ("metasgd", []),
    "anil": ("anil", []),
    "mamlpp": ("mamlpp", ["--set", "inner.mamlpp.first_order_iters=10",
                          "--set", "inner.mamlpp.msl_iters=20"]),
    "reptile": ("reptile", []),
    "momentum": ("maml", ["--inner-optimizer", "examples.momentum_sgd:MomentumSGD"]),
}


def train(tmp_path, variant, dataset, iterations, *sets, data_root=None):
    problem, extra = VARIANTS[variant]
    return train_run(tmp_path, problem, dataset, iterations, *sets, extra=extra, name=variant,
                     data_root=data_root)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_sinusoid(tmp_path, variant):
    results = train(tmp_path, variant, "sinusoid", 60, "outer.lr=0.005", "eval.log_every=1",
                    "eval.val_every=30", "eval.val_episodes=8", "eval.episodes=8")
    losses = train_losses(results)
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:15]) / 15, sum(losses[-15:]) / 15
    assert last < 0.8 * first, (first, last)  # measured (seed 1): 0.51-0.72 across variants
    assert results["test"]["metric"] == "mse" and results["test"]["episodes"] == 8
    assert math.isfinite(results["test"]["mean"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_omniglot_subset(tmp_path, shared_data_root, variant):
    results = train(tmp_path, variant, "omniglot5w1s", 20, "model.hidden=16", "inner.steps=2",
                    "eval.log_every=1", "eval.val_every=10", "eval.val_episodes=8",
                    "eval.episodes=8", "eval.steps=3", data_root=shared_data_root)
    losses = train_losses(results)
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert results["test"]["metric"] == "accuracy" and 0.0 <= results["test"]["mean"] <= 1.0
    assert results["best_validation"]["iteration"] in (10, 20)
