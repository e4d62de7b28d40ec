"""`run.py compare`: the methods that must agree do, the ones that must not don't, the
outputs hold every field. A tiny sinusoid MLP (hidden 8: 97 parameters) keeps it fast."""
import json

import pytest
import torch

from engines import compare
from engines.compare_gradients import prepare
from engines.compare_measure import backbone_gradient, build_at, cast_episode, default_dtype
from engines.compare_reference import ReferenceSettings, dense_implicit_gradient, exact_solve_config, rel_err

TINY = ["--dataset", "sinusoid", "--set", "model.hidden=8", "--set", "inner.lam=50", "--tasks", "2", "--repeats", "1",
        "--ref-steps", "300", "--seed", "3"]
CG_ITERS = [1, 2, 5, 10, 20]


@pytest.fixture(scope="module")
def gradients_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    argv = TINY + ["--problems", "maml,fomaml,imaml", "--inner-steps", "1,5",
                   "--cg-iters", ",".join(map(str, CG_ITERS)), "--dtype", "float64", "--out", str(out)]
    assert compare.main(argv) == 0
    return out, json.loads((out / "compare.json").read_text())


def rows(result, problem, steps):
    return [r for r in result["methods"] if r["problem"] == problem and r["inner_steps"] == steps]


def test_cg_through_betty_matches_a_dense_solve():
    """iMAML's CG hypergradient (the training path) equals (I + H/λ)⁻¹∇L from explicit Hessians."""
    args = compare.parser().parse_args(TINY)
    setup = prepare(args, ["imaml"])
    cfg = exact_solve_config(setup.configs["imaml"], ReferenceSettings(cg_iters=200, cg_tol=1e-14),
                             steps=5, grad_tol=0.0)
    with default_dtype(torch.float64):
        outer, inner = build_at(cfg, setup.theta, setup.shape)
        episode = cast_episode(setup.episode, torch.float64, "cpu")
        by_cg = backbone_gradient(outer, inner, episode)
        dense, min_eig = dense_implicit_gradient(inner, episode, cfg["inner"]["lam"])
    assert min_eig > 0.05, "the test system must be positive definite"
    assert rel_err(by_cg, dense) < 1e-8


def test_reference_dense_and_cg_agree(gradients_run):
    reference = gradients_run[1]["reference"]
    assert reference["solver"] == "dense" and reference["dense_vs_cg_rel_err"] < 1e-8


def test_maml_and_fomaml_disagree_measurably(gradients_run):
    fomaml = rows(gradients_run[1], "fomaml", 5)[0]
    assert fomaml["own_err"] > 1e-2  # distance from MAML at the same K
    assert rows(gradients_run[1], "maml", 5)[0]["own_err"] == 0.0


def test_cg_error_falls_with_iterations(gradients_run):
    errors = [r["own_err"] for r in rows(gradients_run[1], "imaml", 5)]
    assert [r["solver_iters"] for r in rows(gradients_run[1], "imaml", 5)] == CG_ITERS
    assert all(b <= 1.5 * a for a, b in zip(errors, errors[1:])), errors  # near-monotone
    assert errors[-1] < 1e-4 * errors[0] and errors[-1] < 1e-5, errors


def test_json_holds_every_field(gradients_run):
    result = gradients_run[1]
    for key in ("dataset", "seed", "tasks", "dtype", "device", "theta", "reference", "metrics",
                "methods", "hardware", "command"):
        assert key in result, key
    for key in ("description", "lam", "inner_grad_norm", "spread", "norm", "solver"):
        assert key in result["reference"], key
    assert len(result["methods"]) == 2 + 2 + 2 * len(CG_ITERS)
    for r in result["methods"]:
        for key in ("label", "cosine", "rel_err", "own_err", "norm", "seconds", "peak_bytes"):
            assert key in r, (r["label"], key)
        assert -1 <= r["cosine"] <= 1 and r["seconds"] > 0 and r["peak_bytes"] > 0


def test_png_is_written(gradients_run):
    png = gradients_run[0] / "compare.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_unknown_problem_is_one_clear_error(capsys):
    import run
    assert run.main(["compare", "--problems", "nope"]) == 2
    assert "unknown problem 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_mode_writes_json_and_png(tmp_path):
    argv = ["--train", "--dataset", "sinusoid", "--problems", "maml,fomaml", "--iterations", "4",
            "--set", "model.hidden=8", "--set", "eval.episodes=10", "--set", "eval.val_episodes=5",
            "--set", "eval.val_every=2", "--out", str(tmp_path)]
    assert compare.main(argv) == 0
    record = json.loads((tmp_path / "compare_train.json").read_text())
    assert [r["problem"] for r in record["runs"]] == ["maml", "fomaml"]
    for r in record["runs"]:
        assert r["iterations"] == 4 and len(r["validation"]) == 2 and r["test"]["episodes"] == 10
    assert (tmp_path / "compare_train.png").stat().st_size > 10_000
