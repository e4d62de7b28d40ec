"""Every configuration the benchmarks time or measure, built at the same θ (seed) on the same
setting: this project's training path (by its default `vectorize: auto` and forced variants)
and the two baselines."""
from __future__ import annotations

from benchmarks.harness import Ours, config


def _ours(problem, **inner):
    """`inner`: settings of the inner section forced on top (task_threads=1, vectorize=...)."""
    def build(setting, device, seed=0, **sets):
        extra = {"inner.optimizer": "anil"} if problem == "anil" else {}
        extra.update({f"inner.{k}": v for k, v in inner.items()})
        return Ours(config("maml" if problem == "anil" else problem, setting, **extra, **sets),
                    setting, device, seed)
    return build


def _l2l(first_order=False):
    def build(setting, device, seed=0):
        from benchmarks.baselines.l2l_maml import L2LMAML
        cfg = config("maml", setting)
        ref = Ours(cfg, setting, device, seed)  # the same initial θ as ours
        return L2LMAML(ref.backbone, cfg.inner.lr, cfg.inner.steps, cfg.outer.lr,
                       first_order=first_order)
    return build


def _betty_imaml(setting, device, seed=0):
    from benchmarks.baselines.betty_imaml import BettyIMAML
    cfg = config("imaml", setting)
    inner = cfg.inner
    ref = Ours(cfg, setting, device, seed)
    return BettyIMAML(ref.backbone, inner.lr, inner.steps, cfg.outer.lr, inner.implicit.lam,
                      inner.implicit.iters, cfg.data.meta_batch, device)


def speed_methods() -> dict:
    return {
        "maml": _ours("maml"), "maml-serial": _ours("maml", task_threads=1),
        "maml-vectorized": _ours("maml", vectorize="always", task_threads=1),
        "fomaml": _ours("fomaml"), "fomaml-serial": _ours("fomaml", task_threads=1),
        "imaml": _ours("imaml"), "imaml-serial": _ours("imaml", task_threads=1),
        "imaml-vectorized": _ours("imaml", vectorize="always", task_threads=1),
        "l2l-maml": _l2l(), "l2l-fomaml": _l2l(first_order=True), "betty-imaml": _betty_imaml,
        "anil": _ours("anil"),
    }


def memory_methods() -> dict:
    """Task threads off: torch's profiler counts only the calling thread's allocations (the
    groups' graphs are the same tensors either way, alive at the same points)."""
    return {"maml": _ours("maml", task_threads=1),
            "maml-checkpointed": _ours("maml", checkpoint_steps=True, task_threads=1),
            "fomaml": _ours("fomaml", task_threads=1), "imaml": _ours("imaml", task_threads=1)}


#: (ours, reference): meta-gradients checked to agree before timing, and tasks/s ratios.
PAIRS = [("maml", "l2l-maml"), ("maml-serial", "l2l-maml"), ("maml-vectorized", "l2l-maml"),
         ("fomaml", "l2l-fomaml"), ("fomaml-serial", "l2l-fomaml"),
         ("imaml", "betty-imaml"), ("imaml-serial", "betty-imaml"),
         ("imaml-vectorized", "betty-imaml")]
#: Timed at one thread setting only: this project at its defaults runs as `run.py` does (torch's
#: own intra-op thread count, every core); everything else counts at its fastest setting.
DEFAULTS = ("maml", "fomaml", "imaml", "anil")
