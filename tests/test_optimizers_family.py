"""The inner-loop optimizer family (Meta-SGD, ANIL, MAML++, Reptile, a user's own class), each
checked through the same Betty path training uses (problems.meta_gradient) against an
independent computation or learn2learn."""
import copy

import pytest
import torch
import torch.nn.functional as F

import run
from measures.errors import rel_err
from optimizers import ANIL
from optimizers.mamlpp import multi_step_weights
from problems.factory import ProblemConfigError
from problems.meta_gradient import compute_meta_gradient
from support import build_system, flat, random_episode, tiny_cfg


# ---- Meta-SGD -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_metasgd_matches_learn2learn(dtype, tol):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        outer, inner = build_system(tiny_cfg("metasgd", **{"inner.steps": 3}))
        episode = random_episode(dtype=dtype)
        # learned rates away from their common start, so per-element rates matter
        with torch.no_grad():
            for rates in inner.inner_optimizer.lrs.values():
                rates.mul_(torch.rand_like(rates) + 0.5)
        ours = compute_meta_gradient(outer, inner, episode)
        lrs = [r.detach().clone() for r in inner.inner_optimizer.lrs.values()]
        theirs = l2l_metasgd_gradient_with(inner.backbone, episode, lrs, steps=3)
    finally:
        torch.set_default_dtype(previous)
    n = len(list(inner.backbone.parameters()))
    assert len(ours) == 2 * n
    assert rel_err(ours[:n], theirs[:n]) < tol      # θ
    assert rel_err(ours[n:], theirs[n:]) < tol      # the learned step sizes
    assert flat(ours[n:]).abs().max() > 0


def l2l_metasgd_gradient_with(backbone, episode, lrs, steps):
    import learn2learn as l2l
    model = copy.deepcopy(backbone)
    rates = torch.nn.ParameterList(torch.nn.Parameter(r.clone()) for r in lrs)
    meta = l2l.algorithms.MetaSGD(model, lrs=rates, first_order=False)
    learner = meta.clone()
    for _ in range(steps):
        learner.adapt(F.cross_entropy(learner(episode.support_x[0]), episode.support_y[0]))
    F.cross_entropy(learner(episode.query_x[0]), episode.query_y[0]).backward()
    return [p.grad for p in model.parameters()] + [r.grad for r in meta.lrs]


def test_metasgd_starts_at_inner_lr_and_differs_from_maml(float64):
    episode = random_episode()
    outer, inner = build_system(tiny_cfg("metasgd"))
    assert all(torch.all(r == 0.1) for r in inner.inner_optimizer.meta_parameters())
    n = len(list(inner.backbone.parameters()))
    ours = compute_meta_gradient(outer, inner, episode)
    maml = compute_meta_gradient(*build_system(tiny_cfg("maml")), episode)
    assert rel_err(ours[:n], maml) < 1e-10  # equal rates everywhere: θ's gradient is MAML's
    assert flat(ours[n:]).norm() > 1e-3     # and the rates learn


# ---- ANIL ---------------------------------------------------------------------------------
def l2l_anil_gradient(backbone, episode, lr, steps):
    """learn2learn's MAML on the head alone, over features of a deep copy of the backbone."""
    import learn2learn as l2l
    model = copy.deepcopy(backbone)
    learner = l2l.algorithms.MAML(model.head, lr=lr).clone()
    features = model.features(episode.support_x[0])
    for _ in range(steps):
        learner.adapt(F.cross_entropy(learner(features), episode.support_y[0]))
    F.cross_entropy(learner(model.features(episode.query_x[0])), episode.query_y[0]).backward()
    return [p.grad for p in model.parameters()]


def test_anil_adapts_only_the_head_and_its_meta_gradient_reaches_the_body(float64):
    outer, inner = build_system(tiny_cfg("anil"))
    episode = random_episode()
    inner.one_step_descent(episode)
    theta = dict(inner.backbone.named_parameters())
    phi = inner.adapted[0].params
    for name, value in phi.items():
        if name.startswith("head."):
            assert (value - theta[name]).abs().max() > 1e-4, name
        else:
            assert value is theta[name], name  # the body is θ itself, graph and all
    grads = dict(zip(theta, compute_meta_gradient(outer, inner, episode)))
    body = [g for k, g in grads.items() if not k.startswith("head.")]
    assert flat(body).norm() > 1e-4 and grads["blocks.0.conv.weight"].abs().max() > 0
    expected = l2l_anil_gradient(inner.backbone, episode, lr=0.1, steps=3)
    assert rel_err(list(grads.values()), expected) < 1e-10


def test_anil_computes_support_features_once_per_task(monkeypatch):
    _, inner = build_system(tiny_cfg("anil", **{"inner.steps": 4}))
    calls = []
    original = type(inner.backbone).features
    monkeypatch.setattr(type(inner.backbone), "features",
                        lambda self, x, step=None: calls.append(1) or original(self, x, step))
    episode = random_episode()
    inner.inner_optimizer.adapt(inner.initial_learner(detach=False), episode.support_x[0],
                                episode.support_y[0], 4)
    assert len(calls) == 1


def test_anil_needs_a_backbone_with_a_head():
    from optimizers import OptimizerSpecError
    with pytest.raises(OptimizerSpecError, match="head"):
        ANIL(torch.nn.Linear(3, 2), 0.1)


# ---- MAML++ -------------------------------------------------------------------------------
def mamlpp(**sets):
    base = {"inner.mamlpp.first_order_iters": 0, "inner.mamlpp.msl_iters": 10,
            "inner.mamlpp.per_step_bn": False}
    return tiny_cfg("mamlpp", **{**base, **sets})


def at_iteration(inner, iteration):
    inner._count = iteration + 1  # Betty counts the step before running it


def test_multi_step_loss_weights_sum_to_one_and_anneal_to_the_last_step():
    series = [multi_step_weights(5, it, 100) for it in range(0, 130, 10)]
    for weights in series:
        assert len(weights) == 5 and abs(sum(weights) - 1) < 1e-12 and min(weights) > -1e-12
    assert series[0] == pytest.approx([0.2] * 5)
    last = [w[-1] for w in series]
    assert last == sorted(last) and last[-1] == 1.0 and last[9] < 1.0
    assert series[9][0] == pytest.approx((1 - 0.9 * 0.97) / 5)  # linear in the iteration
    assert multi_step_weights(3, 0, 0) == [0.0, 0.0, 1.0]


def test_mamlpp_objective_is_the_weighted_query_loss_of_every_step(float64):
    """At iteration 0 the weights are uniform: θ's meta-gradient is the mean of MAML's with
    1..K steps; after msl_iters it is MAML's with K steps (per-step BN off, same rates)."""
    episode = random_episode()
    outer, inner = build_system(mamlpp())
    n = len(list(inner.backbone.parameters()))
    maml = [compute_meta_gradient(*build_system(tiny_cfg("maml", **{"inner.steps": k})), episode)
            for k in (1, 2, 3)]
    at_iteration(inner, 0)
    uniform = compute_meta_gradient(outer, inner, episode)[:n]
    assert rel_err(uniform, [sum(g) / 3 for g in zip(*maml)]) < 1e-10
    at_iteration(inner, 10)
    final = compute_meta_gradient(outer, inner, episode)[:n]
    assert rel_err(final, maml[-1]) < 1e-10


def test_mamlpp_learned_rates_get_gradients_and_stay_positive(float64):
    outer, inner = build_system(mamlpp())
    n = len(list(inner.backbone.parameters()))
    for iteration in (0, 10):
        at_iteration(inner, iteration)
        rates = dict(zip(inner.inner_optimizer.lrs,
                         compute_meta_gradient(outer, inner, random_episode())[n:]))
        assert all(r.shape == (3,) for r in rates.values())
        assert rates["head__weight"].abs().min() > 0  # every step's rate of the head learns
        assert rates["blocks__0__conv__weight"].abs().max() > 0
    optimizer = inner.inner_optimizer
    with torch.no_grad():
        optimizer.lrs["head__weight"][1] = -1.0
    assert float(optimizer.step_size("head.weight", 1).detach()) == optimizer.min_lr
    # last step's rate
    assert float(optimizer.step_size("head.weight", 7).detach()) == pytest.approx(0.1)


def test_mamlpp_learned_rates_can_be_switched_off():
    _, inner = build_system(mamlpp(**{"inner.mamlpp.learned_lrs": False}))
    assert inner.inner_optimizer.meta_parameters() == []


def test_mamlpp_per_step_batch_norm_keeps_statistics_and_affine_per_step(float64):
    outer, inner = build_system(mamlpp(**{"inner.mamlpp.per_step_bn": True}))
    norm = inner.backbone.blocks[0].norm
    conv = "blocks.0.conv"
    assert norm.weight.shape == (3, 4) and norm.running_mean.shape == (3, 4)
    episode = random_episode()
    inner.backbone.train()
    learner = inner.inner_optimizer.adapt(inner.initial_learner(detach=True), episode.support_x[0],
                                          episode.support_y[0], 3)
    # Step k normalised the support set through the conv at the parameters before step k; its
    # row (and only its row) of running statistics moved from 0 by momentum x the batch mean.
    before = [inner.initial_learner(detach=True)] + learner.trajectory[:-1]
    for k, point in enumerate(before):
        out = F.conv2d(episode.support_x[0], point.params[f"{conv}.weight"],
                       point.params[f"{conv}.bias"], padding=1)
        expected = norm.momentum * out.mean(dim=(0, 2, 3))
        assert torch.allclose(norm.running_mean[k], expected.detach(), atol=1e-12), k
    assert (norm.running_mean[0] - norm.running_mean[1]).abs().max() > 1e-6
    # every step's scale/shift row gets a meta-gradient (multi-step loss at iteration 0)
    at_iteration(inner, 0)
    grads = dict(zip([k for k, _ in inner.backbone.named_parameters()],
                     compute_meta_gradient(outer, inner, episode)))
    assert (grads["blocks.0.norm.weight"].abs().sum(dim=1) > 0).all()
    # more test steps than trained ones reuse the last step's layers
    assert len(inner.evaluate(episode, steps=6)) == 1


def test_mamlpp_switches_derivative_order_at_the_configured_iteration(float64):
    episode = random_episode()
    sets = {"inner.mamlpp.first_order_iters": 4, "inner.mamlpp.multi_step_loss": False}
    outer, inner = build_system(mamlpp(**sets))
    n = len(list(inner.backbone.parameters()))
    first, second = build_system(mamlpp(**{**sets, "inner.first_order": True})), \
        build_system(mamlpp(**{**sets, "inner.mamlpp.first_order_iters": 0}))
    fo, so = compute_meta_gradient(*first, episode)[:n], compute_meta_gradient(*second, episode)[:n]
    assert rel_err(fo, so) > 1e-3
    grads = {}
    for iteration in (0, 3, 4, 9):
        at_iteration(inner, iteration)
        grads[iteration] = compute_meta_gradient(outer, inner, episode)[:n]
    assert rel_err(grads[0], fo) < 1e-12 and rel_err(grads[3], fo) < 1e-12
    assert rel_err(grads[4], so) < 1e-10 and rel_err(grads[9], so) < 1e-10


# ---- Reptile ------------------------------------------------------------------------------
@pytest.mark.parametrize("adapt_on", ["support", "episode"])
def test_reptile_direction_is_theta_minus_phi(float64, adapt_on):
    outer, inner = build_system(tiny_cfg("reptile", **{"inner.reptile.adapt_on": adapt_on}))
    episode = random_episode(tasks=2)
    if adapt_on == "episode":  # the inner loop trains on support and query together
        train_x = torch.cat([episode.support_x, episode.query_x], 1)
        train_y = torch.cat([episode.support_y, episode.query_y], 1)
    else:
        train_x, train_y = episode.support_x, episode.support_y
    ours = compute_meta_gradient(outer, inner, episode)
    stats = inner.meta_objective(episode)
    # independent: plain SGD on deep copies, then mean over tasks of θ − φ
    theta = [p.detach().clone() for p in inner.backbone.parameters()]
    directions, query = [], []
    for t in range(2):
        model = copy.deepcopy(inner.backbone)
        for _ in range(3):
            loss = F.cross_entropy(model(train_x[t]), train_y[t])
            grads = torch.autograd.grad(loss, list(model.parameters()))
            with torch.no_grad():
                for p, g in zip(model.parameters(), grads):
                    p -= 0.1 * g
        directions.append([th - p.detach() for th, p in zip(theta, model.parameters())])
        query.append(float(F.cross_entropy(model(episode.query_x[t]), episode.query_y[t]).detach()))
    expected = [sum(d) / 2 for d in zip(*directions)]
    assert flat(expected).norm() > 1e-3
    assert rel_err(ours, expected) < 1e-10
    # logged: query loss
    assert float(stats["loss"].detach()) == pytest.approx(sum(query) / 2, rel=1e-10)


# ---- which lower levels each optimizer accepts --------------------------------------------
@pytest.mark.parametrize("optimizer,kind,reason", [
    ("metasgd", "implicit", "minimiser"), ("anil", "implicit", "head"),
    ("mamlpp", "implicit", "trajectory"), ("metasgd", "reptile", "no gradient"),
    ("mamlpp", "reptile", "no gradient"), ("anil", "reptile", "only some parameters")])
def test_unsupported_combinations_are_refused_with_the_reason(optimizer, kind, reason):
    cfg = tiny_cfg("maml", **{"inner.optimizer": optimizer, "inner.kind": kind})
    with pytest.raises(ProblemConfigError, match=reason):
        build_system(cfg)


def test_refusal_is_one_line_on_the_command_line(capsys):
    argv = ["--problem", "imaml", "--dataset", "sinusoid", "--inner-optimizer", "metasgd"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "inner.kind=unrolled" in err


# ---- a user's own optimizer ---------------------------------------------------------------
def test_custom_optimizer_by_path_trains(tmp_path):
    out = tmp_path / "custom"
    argv = ["--problem", "maml", "--dataset", "sinusoid", "--iterations", "3", "--out", str(out),
            "--inner-optimizer", "examples.momentum_sgd:MomentumSGD", "--set", "eval.val_every=0",
            "--set", "eval.episodes=4", "--set", "eval.log_every=1"]
    assert run.main(argv) == 0
    import json
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["inner"]["optimizer"] == "examples.momentum_sgd:MomentumSGD"
    assert len([h for h in results["history"] if h["split"] == "train"]) == 3


def test_custom_optimizer_matches_a_hand_written_momentum_unroll(float64):
    """Exact answer: heavy-ball momentum unrolled by hand with functional_call, second order.
    It also differs from plain SGD's, so the class really drives the inner loop."""
    from torch.func import functional_call
    episode = random_episode()
    cfg = tiny_cfg("maml", **{"inner.optimizer": "examples.momentum_sgd:MomentumSGD"})
    outer, inner = build_system(cfg)
    ours = compute_meta_gradient(outer, inner, episode)
    theta = dict(inner.backbone.named_parameters())
    loss = lambda p, x, y: F.cross_entropy(functional_call(inner.backbone, p, (x,)), y)  # noqa: E731
    phi, velocity = dict(theta), {k: 0.0 for k in theta}
    for _ in range(3):
        grads = torch.autograd.grad(loss(phi, episode.support_x[0], episode.support_y[0]),
                                    list(phi.values()), create_graph=True)
        velocity = {k: 0.9 * velocity[k] + g for k, g in zip(phi, grads)}
        phi = {k: phi[k] - 0.1 * velocity[k] for k in phi}
    expected = torch.autograd.grad(loss(phi, episode.query_x[0], episode.query_y[0]),
                                   list(theta.values()))
    assert rel_err(ours, expected) < 1e-10
    sgd = compute_meta_gradient(*build_system(tiny_cfg("maml")), episode)
    assert rel_err(ours, sgd) > 1e-3


BARE_INTERFACE = '''
import torch
from torch import nn


class PlainSGD(nn.Module):
    """Written to exactly the interface, nothing imported from the project: one task, no
    keywords, second order always."""

    def __init__(self, model, inner_lr):
        super().__init__()
        self.inner_lr = inner_lr

    def adapt(self, model, support_x, support_y, n_steps):
        for _ in range(n_steps):
            names = list(model.params)
            grads = torch.autograd.grad(model.loss(support_x, support_y),
                                        [model.params[k] for k in names], create_graph=True)
            model = model.with_params({k: model.params[k] - self.inner_lr * g
                                       for k, g in zip(names, grads)})
        return model

    def meta_parameters(self):
        return []
'''


def test_a_class_written_to_exactly_the_interface_trains_unchanged(tmp_path, monkeypatch,
                                                                    float64):
    """Not a subclass of InnerLoopOptimizer, no keyword arguments, one task at a time: it
    trains by package.module:ClassName, and its meta-gradient is MAML's."""
    (tmp_path / "bare_interface_opt.py").write_text(BARE_INTERFACE)
    monkeypatch.syspath_prepend(str(tmp_path))
    episode = random_episode()
    spec = "bare_interface_opt:PlainSGD"
    ours = compute_meta_gradient(*build_system(tiny_cfg("maml", **{"inner.optimizer": spec})),
                                 episode)
    maml = compute_meta_gradient(*build_system(tiny_cfg("maml")), episode)
    assert rel_err(ours, maml) < 1e-10
    out = tmp_path / "bare"
    assert run.main(["--problem", "maml", "--dataset", "sinusoid", "--iterations", "3", "--out",
                     str(out), "--inner-optimizer", spec, "--set", "eval.val_every=0",
                     "--set", "eval.episodes=4"]) == 0
    assert (out / "results.json").is_file()


@pytest.mark.parametrize("spec,needle", [
    ("examples.momentum_sgd:Missing", "no class 'Missing'"),
    ("torch.nn:Linear", "lacks adapt"),
    ("examples.nowhere:Opt", "examples.nowhere")])
def test_bad_custom_optimizer_is_one_line(capsys, spec, needle):
    argv = ["--dataset", "sinusoid", "--inner-optimizer", spec]
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err


# ---- registering an optimizer ----------------------------------------------------------------
def test_a_new_optimizer_registers_itself_by_name(tmp_path):
    """Adding a registered inner optimizer is its module (a class that sets `name`) plus, if it
    wants one, a preset: no registry to edit. Here: sign-SGD, trained by name."""
    from optimizers import OPTIMIZERS, InnerLoopOptimizer, resolve_optimizer

    class SignSGD(InnerLoopOptimizer):
        name = "signsgd-test"
        adapts_stacks = True

        def adapt(self, model, support_x, support_y, n_steps):
            for step in range(n_steps):
                grads = self.gradients(model, support_x, support_y, step)
                model = self.descend(model, {k: g.sign() for k, g in grads.items()}, step)
            return model

    assert resolve_optimizer("signsgd-test") is SignSGD and OPTIMIZERS["signsgd-test"] is SignSGD
    assert {"sgd", "metasgd", "anil", "mamlpp"} <= set(OPTIMIZERS)
    out = tmp_path / "r"
    assert run.main(["--dataset", "sinusoid", "--inner-optimizer", "signsgd-test",
                     "--iterations", "3",
                     "--out", str(out), "--set", "eval.episodes=4", "--set", "eval.val_episodes=4",
                     "--set", "inner.steps=2"]) == 0
    assert (out / "results.json").is_file()
