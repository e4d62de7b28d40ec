"""`run.py compare`: the methods that must agree do, the ones that must not don't, the
outputs hold every field. A tiny sinusoid MLP (hidden 8: 97 parameters) keeps it fast."""
import json

import pytest
import torch

import run
from compare import command
from compare.gradients import prepare
from compare.measure import backbone_gradient, build_at, cast_episode, default_dtype
from compare.reference import ReferenceSettings, dense_implicit_gradient, exact_solve_config
from measures.errors import rel_err
from engines.run_folder import RunFolderError
from support import fails

TINY = ["--dataset", "sinusoid", "--set", "model.hidden=8", "--set", "inner.implicit.lam=50",
        "--tasks", "2", "--repeats", "1", "--ref-steps", "300", "--seed", "3"]
CG_ITERS = [1, 2, 5, 10, 20]


@pytest.fixture(scope="module")
def gradients_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    argv = TINY + ["--problems", "maml,fomaml,imaml", "--inner-steps", "1,5",
                   "--cg-iters", ",".join(map(str, CG_ITERS)), "--dtype", "float64",
                   "--out", str(out)]
    assert command.main(argv) == 0
    return out, json.loads((out / "compare.json").read_text())


def rows(result, problem, steps):
    return [r for r in result["methods"] if r["problem"] == problem and r["inner_steps"] == steps]


def test_cg_through_betty_matches_a_dense_solve():
    """iMAML's CG hypergradient (the training path) equals (I + H/λ)⁻¹∇L from explicit Hessians."""
    args = command.parser().parse_args(TINY)
    setup = prepare(args, ["imaml"])
    cfg = exact_solve_config(setup.configs["imaml"], ReferenceSettings(cg_iters=200, cg_tol=1e-14),
                             steps=5, grad_tol=0.0)
    with default_dtype(torch.float64):
        outer, inner = build_at(cfg, setup.theta, setup.shape)
        episode = cast_episode(setup.episode, torch.float64, "cpu")
        by_cg = backbone_gradient(outer, inner, episode)
        dense, min_eig = dense_implicit_gradient(inner, episode, cfg.inner.implicit.lam)
    assert min_eig > 0.05, "the test system must be positive definite"
    assert rel_err(by_cg, dense) < 1e-8


def test_reference_dense_and_cg_agree(gradients_run):
    reference = gradients_run[1]["reference"]
    assert reference["solver"] == "dense" and reference["dense_vs_cg_rel_err"] < 1e-8


def test_every_own_error_is_measured(gradients_run):
    """MAML, FOMAML and every implicit row have their own exact answer, and it was computed."""
    for r in gradients_run[1]["methods"]:
        assert r["own_err"] is not None and r["own_err"] >= 0, r["label"]


def test_reference_is_exact_by_default(gradients_run):
    """compare's default smooth activation: Newton reaches the minimiser to 1e-10, the solve to
    1e-12, and the measured resolution is far below any method's error."""
    reference = gradients_run[1]["reference"]
    assert reference["exact"] and reference["why"] == "" and reference["activation"] == "softplus"
    assert reference["inner_grad_norm"] <= 1e-10
    assert reference["linear_solve_relative_residual"] <= 1e-11
    assert reference["resolution"] < 1e-8
    assert reference["grad_norm_after_descent"] > reference["inner_grad_norm"]  # Newton did work
    assert all(r["rel_err"] is not None for r in gradients_run[1]["methods"])


def test_an_unreached_minimiser_is_not_called_a_reference(tmp_path, capsys):
    """A tolerance no float64 run can meet: compare says why, leaves rel err and cosine empty and
    still measures each method against its own answer."""
    out = tmp_path / "c"
    argv = TINY + ["--problems", "maml,imaml", "--inner-steps", "2", "--cg-iters", "5",
                   "--set", "model.activation=relu", "--ref-newton-tol", "1e-300",
                   "--out", str(out)]
    assert command.main(argv) == 0
    result = json.loads((out / "compare.json").read_text())
    reference = result["reference"]
    assert not reference["exact"] and "not reached" in reference["why"]
    assert "model.activation=softplus" in reference["why"]  # with ReLU, the way out is named
    assert all(r["rel_err"] is None and r["cosine"] is None for r in result["methods"])
    assert all(r["own_err"] is not None for r in result["methods"])
    agreement = result["agreement"]  # no ground truth: the methods against each other
    assert set(agreement) == {"maml K=2", "imaml K=2 cg=5"}
    assert agreement["maml K=2"]["maml K=2"] == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "NO EXACT REFERENCE" in printed and "no ground truth" in printed
    assert (out / "compare.png").exists()


def test_maml_and_fomaml_disagree_measurably(gradients_run):
    fomaml = rows(gradients_run[1], "fomaml", 5)[0]
    assert fomaml["own_err"] > 1e-2  # distance from MAML at the same K
    # measured against a second implementation of the 5-step unroll, not written in as 0
    assert rows(gradients_run[1], "maml", 5)[0]["own_err"] < 1e-12


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
    for key in ("description", "lam", "inner_grad_norm", "resolution", "exact", "why", "norm",
                "solver"):
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
    assert run.main(["compare", "--problems", "nope"]) == 2
    assert "unknown problem 'nope'" in capsys.readouterr().err


# A value outside each numeric flag's range, and the range the one-line error must name. The
# rest of the command is a run of a few seconds, so a flag that is not checked shows as a
# finished run (exit 0) rather than a long one.
BAD_VALUES = [("--tasks", "0", ">= 1"), ("--tasks", "-1", ">= 1"), ("--repeats", "0", ">= 1"),
              ("--inner-steps", "0", ">= 1"), ("--inner-steps", "1,-5", ">= 1"),
              ("--cg-iters", "0", ">= 1"), ("--neumann-terms", "0", ">= 1"),
              ("--neumann-terms", "x", ">= 1"), ("--ref-steps", "0", ">= 1"),
              ("--ref-cg-iters", "0", ">= 1"), ("--dense-max", "-1", ">= 0"),
              ("--iterations", "0", ">= 1"), ("--seconds", "0", "> 0"), ("--seconds", "-3", "> 0"),
              ("--ref-tol", "-1", ">= 0"), ("--seed", "-1", ">= 0"), ("--tasks", "two", ">= 1")]


@pytest.mark.parametrize("flag,value,valid", BAD_VALUES, ids=[f"{f}={v}" for f, v, _ in BAD_VALUES])
def test_out_of_range_flag_is_one_line_naming_flag_and_range(capsys, tmp_path, flag, value, valid):
    argv = ["compare", *TINY, "--problems", "maml", "--inner-steps", "1", "--ref-steps", "20",
            "--out", str(tmp_path), flag, value]
    fails(capsys, argv, flag, valid, repr(value))


@pytest.fixture(scope="module")
def omniglot_checkpoint(tmp_path_factory, shared_data_root):
    """A CNN4 run on omniglot5w1s (two iterations of a hidden-4 model)."""
    out = tmp_path_factory.mktemp("omniglot-run")
    assert run.main(["--problem", "maml", "--dataset", "omniglot5w1s",
                     "--data-root", str(shared_data_root),
                     "--iterations", "2", "--out", str(out / "r"), "--set", "model.hidden=4",
                     "--set", "eval.episodes=4", "--set", "eval.val_every=0",
                     "--set", "eval.val_episodes=4"]) == 0
    return out / "r" / "last.pt"


@pytest.mark.parametrize("dataset,why", [("sinusoid", "input shape (1,)"),
                                         ("omniglot20w1s", "20 outputs")])
def test_checkpoint_that_does_not_fit_the_dataset_is_one_line(capsys, tmp_path, shared_data_root,
                                                               omniglot_checkpoint, dataset, why):
    fails(capsys, ["compare", "--checkpoint", str(omniglot_checkpoint), "--dataset", dataset,
                   "--data-root", str(shared_data_root), "--problems", "maml", "--inner-steps", "1",
                   "--repeats", "1", "--ref-steps", "20", "--out", str(tmp_path)],
          str(omniglot_checkpoint), "trained on omniglot5w1s", f"does not fit {dataset}", why,
          "same input shape and outputs", "omit --dataset")


@pytest.mark.slow
def test_train_mode_writes_json_and_png(tmp_path):
    argv = ["--train", "--dataset", "sinusoid", "--problems", "maml,fomaml", "--iterations", "4",
            "--set", "model.hidden=8", "--set", "eval.episodes=10", "--set", "eval.val_episodes=5",
            "--set", "eval.val_every=2", "--out", str(tmp_path)]
    assert command.main(argv) == 0
    record = json.loads((tmp_path / "compare_train.json").read_text())
    assert [r["problem"] for r in record["runs"]] == ["maml", "fomaml"]
    for r in record["runs"]:
        assert r["iterations"] == 4 and len(r["validation"]) == 2 and r["test"]["episodes"] == 10
    assert (tmp_path / "compare_train.png").stat().st_size > 10_000
    # Again into the same folder: refused before anything trains (the runs would mix).
    before = (tmp_path / "maml" / "last.pt").read_bytes()
    with pytest.raises(RunFolderError, match="already holds a run.*--overwrite"):
        command.main(argv)
    assert (tmp_path / "maml" / "last.pt").read_bytes() == before


def figure_result(ms, megabytes, errors, spread, points=8) -> dict:
    """A result for compare.report to draw: `points` methods (MAML, FOMAML and two iMAML
    lines) spread geometrically over the given (low, high) ranges of time, memory and error."""
    def spread_over(bounds):
        return [float(v) for v in torch.logspace(*torch.tensor(bounds).log10(), points)]
    methods = []
    shapes = [("maml", None), ("fomaml", None), ("imaml", "cg"), ("imaml", "cg")]
    for i, (t, m, e) in enumerate(zip(spread_over(ms), spread_over(megabytes) if megabytes else
                                      [None] * points, spread_over(errors))):
        problem, solver = shapes[i * len(shapes) // points]
        methods.append({"problem": problem, "solver": solver, "inner_steps": 1 + i % 2,
                        "seconds": t / 1e3, "peak_bytes": None if m is None else int(m * 2**20),
                        "rel_err": e})
    return {"dataset": "sinusoid", "tasks": 4, "device": "cpu", "theta": {"parameters": 97},
            "reference": {"exact": True, "resolution": spread}, "methods": methods}


# Ranges from real runs: the tiny sinusoid model of these tests (ms, MB, rel err), a CNN4 on
# omniglot5w1s (memory and error within one decade), the README's sweep; then extremes.
FIGURES = {"sinusoid-tiny": figure_result((1.3, 19), (0.0078, 0.04), (0.011, 0.76), 0.0),
           "omniglot-cnn": figure_result((37, 166), (14.3, 25.1), (0.998, 1.05), 1.25),
           "readme-sweep": figure_result((4.3, 255), (0.055, 0.94), (0.29, 110), 1.5),
           "float64-wide": figure_result((0.5, 5000), (0.001, 1000), (1e-12, 1), 1e-9),
           "one-decade": figure_result((11, 95), (0.12, 0.9), (0.2, 0.9), 0.5),
           "no-memory": figure_result((2, 30), None, (0.05, 3), 0.3)}


def tick_labels(axis):
    """The tick labels an axis draws (major and minor, inside its view), after a draw."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
    return [t.label1 for t in ticks if lo * (1 - 1e-9) <= t.get_loc() <= hi * (1 + 1e-9)
            and t.label1.get_visible() and t.label1.get_text()]


@pytest.mark.parametrize("name", FIGURES)
def test_figure_tick_labels_do_not_overlap(name):
    """compare.png: every axis has at least two labelled ticks and no two of them touch."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    from compare.report import gradient_figure
    fig = gradient_figure(FIGURES[name])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        assert len(fig.axes) == (1 if name == "no-memory" else 2)
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                labels = tick_labels(axis)
                texts = [label.get_text() for label in labels]
                assert len(labels) >= 2, (axis.axis_name, texts)
                boxes = [label.get_window_extent(renderer) for label in labels]
                for i, a in enumerate(boxes):  # 2 px of air between any two labels
                    padded = Bbox.from_extents(a.x0 - 1, a.y0 - 1, a.x1 + 1, a.y1 + 1)
                    for j in range(i + 1, len(boxes)):
                        assert not padded.overlaps(boxes[j]), (axis.axis_name, texts[i], texts[j])
    finally:
        plt.close(fig)


@pytest.mark.parametrize("problem", ["mamlpp", "reptile", "maml"])
def test_meta_gradient_is_the_one_training_applies_at_that_iteration(float64, problem):
    """At training iteration 60 (MAML++: second order from 50, multi-step weights annealing over
    100) compare's meta-gradient equals the gradient training hands the outer optimizer."""
    from problems.meta_gradient import compute_meta_gradient
    from problems.system import TaskShape, build_system
    from support import random_episode, tiny_cfg
    cfg = tiny_cfg(problem, **{"inner.task_threads": 1})
    shape = TaskShape((1, 16, 16), "classification", 3)
    episode = random_episode(tasks=2)
    trained = build_system(cfg, shape, train_iters=100)
    for p in (trained.outer, trained.inner):
        p._count = 60  # 60 meta-iterations done, as a resumed run restores them
    applied = []
    trained.outer.optimizer.register_step_pre_hook(lambda *_: applied.append(
        [p.grad.detach().clone() for p in trained.outer.trainable_parameters()]))
    trained.env.batch = episode
    trained.engine.global_step = 60
    trained.engine.train_step()
    fresh = build_system(cfg, shape)
    at_60 = compute_meta_gradient(fresh.outer, fresh.inner, episode, iteration=60)
    assert rel_err(at_60, applied[0]) < 1e-10
    if problem == "mamlpp":  # its schedules make iteration 0 another meta-gradient
        at_0 = compute_meta_gradient(fresh.outer, fresh.inner, episode, iteration=0)
        assert rel_err(at_0, applied[0]) > 1e-3


def test_compare_checkpoint_restores_everything_the_outer_level_learned(tmp_path):
    """A Meta-SGD checkpoint's learned step sizes (not only θ) and its iteration are what the
    metasgd row is computed with: the same meta-gradient as the full checkpoint loaded."""
    from compare.gradients import run_method
    from compare.methods import Method
    from engines.checkpoint import load_checkpoint
    from problems.options import saved_options
    out = tmp_path / "msgd"
    assert run.main(["--problem", "metasgd", "--dataset", "sinusoid", "--iterations", "3",
                     "--out", str(out), "--set", "eval.episodes=4",
                     "--set", "eval.val_every=0"]) == 0
    args = command.parser().parse_args(["--checkpoint", str(out / "last.pt"),
                                        "--problems", "metasgd", "--tasks", "2"])
    setup = prepare(args, ["metasgd"])
    assert setup.iteration == 3 and setup.optimizer_name == "metasgd" and setup.optimizer_state
    result, cfg, _ = run_method(setup, Method("metasgd", "unrolled", 5), torch.float64, 1, False)
    state = load_checkpoint(out / "last.pt")
    with default_dtype(torch.float64):
        outer, inner = build_at(saved_options(state["config"]).replace(**{"inner.steps": 5}), None,
                                setup.shape)
        outer.module.load_state_dict({k: v.double() for k, v in state["model"].items()})
        lrs = [p.detach().clone() for p in inner.inner_optimizer.meta_parameters()]
        expected = backbone_gradient(outer, inner,
                                     cast_episode(setup.episode, torch.float64, "cpu"),
                                     iteration=3)
    assert rel_err(result.gradient, expected) < 1e-10
    assert any((lr - cfg.inner.lr).abs().max() > 1e-6 for lr in lrs)  # they were learned


def test_maml_own_error_is_measured_and_can_fail():
    """The second implementation agrees with the training path's MAML in float64, and tells a
    different K-step answer (another inner lr) apart."""
    from compare.reference import independent_maml_gradient
    args = command.parser().parse_args(TINY)
    setup = prepare(args, ["maml"])
    cfg = setup.configs["maml"].replace(**{"inner.steps": 5})
    with default_dtype(torch.float64):
        outer, inner = build_at(cfg, setup.theta, setup.shape)
        ours = backbone_gradient(outer, inner, cast_episode(setup.episode, torch.float64, "cpu"))
    independent = independent_maml_gradient(cfg, setup.theta, setup.shape, setup.episode, 5)
    assert rel_err(ours, independent) < 1e-12
    other = independent_maml_gradient(cfg.replace(**{"inner.lr": cfg.inner.lr * 1.1}), setup.theta,
                                      setup.shape, setup.episode, 5)
    assert rel_err(ours, other) > 1e-3
