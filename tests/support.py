"""Builders shared by tests: a Betty-initialised (outer, inner) pair on a fixed episode."""
from __future__ import annotations

import torch

import problems.system
from problems.options import load_options
from envs import Episode
from problems.system import TaskShape


def make_cfg(problem: str, dataset: str = "omniglot5w1s", **sets):
    return load_options(problem, dataset, [f"{k}={v}" for k, v in sets.items()])


TINY = {"model.hidden": 4, "inner.lr": 0.1, "inner.steps": 3}


def tiny_cfg(problem: str, **sets):
    """A model small enough for exact (float64, dense) checks; `sets` override the defaults."""
    return make_cfg(problem, **{**TINY, **sets})


def train_run(tmp_path, problem: str, dataset: str, iterations: int, *sets, extra=(), name=None,
              data_root=None) -> dict:
    """Train through run.main (the CLI path) with seed 1 and return results.json."""
    import json
    import run
    out = tmp_path / f"{name or problem}-{dataset}"
    argv = ["--problem", problem, "--dataset", dataset, "--iterations", str(iterations),
            "--out", str(out), "--seed", "1", *extra]
    if data_root:
        argv += ["--data-root", str(data_root)]
    for s in sets:
        argv += ["--set", s]
    assert run.main(argv) == 0
    return json.loads((out / "results.json").read_text())


def train_losses(results) -> list[float]:
    return [h["loss"] for h in results["history"] if h["split"] == "train"]


def build_system(cfg: dict, input_shape=(1, 16, 16), ways: int = 3, task_kind="classification",
                 seed: int = 0):
    """(outer, inner) initialised by a plain Betty Engine, as training initialises them."""
    system = problems.system.build_system(cfg, TaskShape(tuple(input_shape), task_kind, ways),
                                          seed=seed)
    return system.outer, system.inner


def random_episode(tasks=1, ways=3, shots=2, query=3, shape=(1, 16, 16), seed=0,
                   dtype=None) -> Episode:
    g = torch.Generator().manual_seed(seed)
    def images(n):
        return torch.rand(tasks, n, *shape, generator=g, dtype=torch.float64).to(
            dtype or torch.get_default_dtype())

    def labels(n):
        return torch.arange(ways).repeat_interleave(n).repeat(tasks, 1)
    return Episode(images(ways * shots), labels(shots), images(ways * query), labels(query))


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def fails(capsys, argv, *needles) -> str:
    """The shape of every user error: run.main(argv) exits 2 with one `error:` line on stderr
    (no traceback) that contains every needle; returns the line."""
    import run
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err
