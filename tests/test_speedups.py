"""The fast paths compute the same meta-gradient as the plain ones: the task axis through one
vmapped call against a loop over tasks (inner_loop/executor.py), and checkpointed inner steps
(inner_loop/checkpointing.py) against plain unrolling. No timings here (benchmarks/ measures)."""
import pytest
import torch

from measures.errors import rel_err
from problems.options import load_options
from inner_loop import executor
from problems.meta_gradient import compute_meta_gradient
from support import build_system, make_cfg, random_episode, tiny_cfg


def tiny(problem, **sets):
    return tiny_cfg(problem, **{"inner.implicit.lam": 30.0, "inner.implicit.iters": 10, **sets})


def meta_gradient(problem, episode, vectorize="never", checkpoint=False, dataset="omniglot5w1s",
                  shape=(1, 16, 16), ways=3, task_kind="classification", **sets):
    cfg = tiny(problem, **sets) if dataset == "omniglot5w1s" else make_cfg(problem, dataset, **sets)
    outer, inner = build_system(cfg, input_shape=shape, ways=ways, task_kind=task_kind)
    inner.runner.vectorize = vectorize
    if checkpoint:
        inner.checkpoint_steps = True
    grads = compute_meta_gradient(outer, inner, episode)
    assert inner.runner.vectorized() == (vectorize == "always")
    return grads


@pytest.mark.parametrize("problem", ["maml", "fomaml", "imaml"])
def test_vectorized_matches_per_task_loop(float64, problem):
    episode = random_episode(tasks=3)
    loop = meta_gradient(problem, episode, "never")
    stacked = meta_gradient(problem, episode, "always")
    assert rel_err(stacked, loop) < 1e-10


@pytest.mark.parametrize("problem", ["maml", "imaml"])
def test_vectorized_matches_in_float32(problem):
    episode = random_episode(tasks=2)
    assert rel_err(meta_gradient(problem, episode, "always"),
                   meta_gradient(problem, episode, "never")) < 1e-5


def test_vectorized_regression_matches_per_task_loop(float64):
    """The MSE branch, on the sinusoid MLP (where `auto` vectorizes on CPU too)."""
    g = torch.Generator().manual_seed(0)
    from envs import Episode
    x, qx = torch.rand(4, 10, 1, generator=g) * 10 - 5, torch.rand(4, 7, 1, generator=g) * 10 - 5
    episode = Episode(x, torch.sin(x), qx, torch.sin(qx))
    kw = dict(dataset="sinusoid", shape=(1,), ways=1, task_kind="regression",
              **{"model.hidden": 8, "inner.steps": 2})
    for problem in ("maml", "imaml"):
        assert rel_err(meta_gradient(problem, episode, "always", **kw),
                       meta_gradient(problem, episode, "never", **kw)) < 1e-10


@pytest.mark.parametrize("vectorize", ["never", "always"])
def test_checkpointed_maml_matches_plain_maml(float64, vectorize):
    episode = random_episode(tasks=2)
    plain = meta_gradient("maml", episode, vectorize)
    checkpointed = meta_gradient("maml", episode, vectorize, checkpoint=True)
    assert rel_err(checkpointed, plain) < 1e-10


def test_checkpointed_steps_keep_meta_parameter_gradients(float64):
    """A learned step size read inside a checkpointed step still gets its meta-gradient."""
    episode = random_episode(tasks=1)
    outer, inner = build_system(tiny("maml"))
    inner.runner.vectorize = "never"
    opt = inner.inner_optimizer
    opt.log_lr = torch.nn.Parameter(torch.tensor(0.1).log())
    opt.step_size = lambda name, step: opt.log_lr.exp()
    plain = torch.autograd.grad(_meta_loss(inner, episode), opt.log_lr)[0]
    inner.checkpoint_steps = True
    checkpointed = torch.autograd.grad(_meta_loss(inner, episode), opt.log_lr)[0]
    assert plain.abs() > 0 and rel_err(checkpointed.reshape(1), plain.reshape(1)) < 1e-10


def _meta_loss(inner, episode):
    inner.adapt_meta_batch(episode)
    return inner.meta_objective(episode)["loss"]


@pytest.mark.parametrize("problem", ["maml", "metasgd", "anil", "mamlpp", "imaml", "reptile"])
def test_every_registered_optimizer_runs_all_tasks_at_once(problem):
    """No `type(optimizer) is SGD` test any more: every registered optimizer adapts the stacked
    tasks, through vmap when asked; only state written in place (running statistics) loops."""
    _, inner = build_system(tiny(problem, **{"inner.vectorize": "always"}))
    per_step_stats = problem == "mamlpp"  # its per-step batch norm keeps running statistics
    assert inner.runner.vectorized() is not per_step_stats
    assert executor.vmappable(inner.backbone) is not per_step_stats


def test_config_keys_exist_with_safe_defaults():
    cfg = load_options("maml", "omniglot5w1s", [])
    assert cfg.inner.checkpoint_steps is False
    assert cfg.inner.vectorize in executor.SETTINGS
    with pytest.raises(ValueError, match="inner.vectorize"):
        load_options("maml", "omniglot5w1s", ["inner.vectorize=sometimes"])


def test_factory_forwards_the_speed_settings():
    _, inner = build_system(tiny("maml", **{"inner.checkpoint_steps": True,
                                            "inner.vectorize": "always"}))
    assert inner.checkpoint_steps is True and inner.runner.vectorize == "always"


# ---- one inner loop: stacked tasks against task by task -----------------------------------
FAMILY = {"metasgd": {}, "anil": {}, "mamlpp": {"inner.mamlpp.per_step_bn": False},
          "maml-clipped": {"inner.grad_clip": 0.5}, "imaml-tol": {"inner.grad_tol": 0.3}}


def one_task_at_a_time(inner):
    """The same optimizer, with an `adapt` written for one task (as a user might): the problem
    then adapts task by task instead of passing the stacked tasks."""
    base = type(inner.inner_optimizer)

    class OneTask(base):
        def adapt(self, model, support_x, support_y, n_steps):
            return base.adapt(self, model, support_x, support_y, n_steps)

    inner.inner_optimizer.__class__ = OneTask
    return inner


def family_gradient(name, episode, vectorize, one_task=False):
    problem = name.split("-")[0]
    outer, inner = build_system(tiny(problem, **{"inner.vectorize": vectorize, **FAMILY[name]}))
    if one_task:
        one_task_at_a_time(inner)
    return compute_meta_gradient(outer, inner, episode)


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_each_optimizer_stacked_matches_task_by_task(float64, name):
    episode = random_episode(tasks=3)
    looped = family_gradient(name, episode, "never", one_task=True)
    for vectorize in ("never", "always"):  # the loop executor and vmap, both on the stack
        assert rel_err(family_gradient(name, episode, vectorize), looped) < 1e-10, vectorize


@pytest.mark.parametrize("problem", ["maml", "anil", "mamlpp", "imaml"])
def test_evaluation_stacked_matches_task_by_task(float64, problem):
    episode = random_episode(tasks=3)
    results = {}
    for label, vectorize, one_task in (("loop", "never", True), ("stack", "never", False),
                                       ("vmap", "always", False)):
        _, inner = build_system(tiny(problem, **{"inner.vectorize": vectorize}))
        if one_task:
            one_task_at_a_time(inner)
        results[label] = torch.tensor([[loss, acc]
                                       for loss, acc in inner.evaluate(episode, steps=4)])
    for label in ("stack", "vmap"):
        assert rel_err(results[label], results["loop"]) < 1e-10, label


def threaded_meta_gradient(problem, episode, threads, **sets):
    outer, inner = build_system(tiny(problem, **{"inner.task_threads": threads, **sets}))
    grads = compute_meta_gradient(outer, inner, episode)
    return grads, inner


@pytest.mark.parametrize("problem", ["maml", "fomaml", "metasgd", "anil", "imaml", "imaml-neumann",
                                     "reptile"])
def test_task_threads_match_one_thread(float64, problem):
    """Groups of tasks adapted (and, unrolled, differentiated) on worker threads give the
    meta-gradient of all tasks together on one thread."""
    episode = random_episode(tasks=3)
    together, one = threaded_meta_gradient(problem, episode, 1)
    threaded, inner = threaded_meta_gradient(problem, episode, 2)
    assert (one.runner.threads is None and inner.runner.threads is not None
            and inner.runner.threads.threads == 2)
    # the outer loss ran on the groups too
    assert one.runner.groups is None and inner.runner.groups is not None
    assert rel_err(threaded, together) < 1e-10


def test_task_threads_run_the_groups_side_by_side(float64):
    """Each group is adapted on its own worker thread, calling its own replica of the backbone
    (functional_call swaps module attributes, so a shared module would race). Both groups wait
    at a barrier inside adapt: it passes only if they are in flight at once (a loaded machine
    may otherwise let one worker finish both, which proves nothing either way)."""
    import threading
    _, inner = build_system(tiny("maml", **{"inner.task_threads": 2}))
    seen = []
    adapt = inner.inner_optimizer.adapt
    both_in_flight = threading.Barrier(2, timeout=60)

    def recording(model, *args, **kwargs):
        seen.append((threading.current_thread().name, id(model.backbone)))
        both_in_flight.wait()
        return adapt(model, *args, **kwargs)
    inner.inner_optimizer.adapt = recording
    inner.adapt_meta_batch(random_episode(tasks=4))
    assert [len(s) for _, s in inner.runner.groups] == [2, 2]
    assert len({name for name, _ in seen}) == 2 and all(n.startswith("task") for n, _ in seen)
    assert (len({backbone for _, backbone in seen}) == 2
            and id(inner.backbone) not in {b for _, b in seen})


def test_task_threads_stay_off_where_state_is_written_in_place():
    """MAML++'s per-step batch norm keeps running statistics: its tasks stay on one thread."""
    _, inner = build_system(tiny("mamlpp", **{"inner.task_threads": 2}))
    inner.adapt_meta_batch(random_episode(tasks=2))
    assert inner.runner.groups is None


@pytest.mark.parametrize("problem", ["maml", "metasgd", "imaml"])
def test_evaluation_on_task_threads_matches_one_thread(float64, problem):
    episode = random_episode(tasks=3, seed=4)
    scores = []
    for threads in (1, 2):
        _, inner = build_system(tiny(problem, **{"inner.task_threads": threads}))
        scores.append(inner.evaluate(episode, steps=4))
    (one, threaded) = scores
    assert [a for _, a in one] == [a for _, a in threaded]
    assert max(abs(x - y) for (x, _), (y, _) in zip(one, threaded)) < 1e-10
