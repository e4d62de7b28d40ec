"""Every configuration the benchmarks time or measure, built at the same θ (seed) on the same
setting: this project's training path (by its default `vectorize: auto` and forced variants)
and the two baselines."""
from __future__ import annotations

from benchmarks.harness import Ours, config


def _ours(problem, **attributes):
    def build(setting, device, seed=0, **sets):
        extra = {"inner.optimizer": "anil"} if problem == "anil" else {}
        return Ours(config("maml" if problem == "anil" else problem, setting, **extra, **sets),
                    setting, device, seed, **attributes)
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
    return BettyIMAML(ref.backbone, inner.lr, inner.steps, cfg.outer.lr, inner.lam,
                      inner.solver_iters, cfg.data.meta_batch, device)


def speed_methods() -> dict:
    return {
        "maml": _ours("maml"), "maml-vectorized": _ours("maml", vectorize="always"),
        "maml-loop": _ours("maml", vectorize="never"),
        "fomaml": _ours("fomaml"), "imaml": _ours("imaml"),
        "imaml-vectorized": _ours("imaml", vectorize="always"),
        "imaml-loop": _ours("imaml", vectorize="never"),
        "l2l-maml": _l2l(), "l2l-fomaml": _l2l(first_order=True), "betty-imaml": _betty_imaml,
        "anil": _ours("anil"),
    }


def memory_methods() -> dict:
    return {"maml": _ours("maml"), "maml-checkpointed": _ours("maml", checkpoint_steps=True),
            "fomaml": _ours("fomaml"), "imaml": _ours("imaml")}


#: (ours, reference): meta-gradients checked to agree before timing, and tasks/s ratios.
PAIRS = [("maml", "l2l-maml"), ("maml-vectorized", "l2l-maml"), ("maml-loop", "l2l-maml"),
         ("fomaml", "l2l-fomaml"), ("imaml", "betty-imaml"), ("imaml-vectorized", "betty-imaml"),
         ("imaml-loop", "betty-imaml")]
