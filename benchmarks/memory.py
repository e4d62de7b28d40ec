"""Peak memory of one meta-gradient against the number of inner steps, for MAML, MAML with
checkpointed inner steps (`inner.checkpoint_steps`), FOMAML and iMAML, through the training
path (problems.meta_gradient), on the standard Omniglot setting.

Method. Each (method, steps) runs in a fresh subprocess. CPU: the peak of the running sum of
torch's allocation/free events recorded by torch.profiler(profile_memory=True) during one
meta-gradient (measures.memory.peak_cpu_bytes, the same measure `run.py compare`
reports); tracemalloc does not see torch's allocations, and ru_maxrss was tried and is useless
here: the process's resident peak is set earlier, while the Omniglot pool loads. CUDA:
torch.cuda.max_memory_allocated() during the call minus memory_allocated() at its start.
Also checks that the checkpointed meta-gradient equals the plain one.

    PYTHONPATH=. .venv/bin/python benchmarks/memory.py [--steps 1,5,10,20,50]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.harness import JsonLines, configure, episodes, parse_or_work, run_worker  # noqa: E402
from measures.errors import rel_err  # noqa: E402
from measures.memory import MEMORY_METHODS, peak_bytes  # noqa: E402


def worker(spec: dict) -> dict:
    from benchmarks.methods import memory_methods
    info = configure(spec["threads"])
    episode = episodes(spec["setting"], 1, info["device"])[0]
    method = memory_methods()[spec["method"]](spec["setting"], info["device"],
                                               **{"inner.steps": spec["steps"]})
    peak = peak_bytes(lambda: method.meta_gradient(episode), info["device"] == "cuda") / 2 ** 20
    return {"peak_mb": round(peak, 2), **info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1,5,10,20,50")
    parser.add_argument("--methods", default="maml,maml-checkpointed,fomaml,imaml")
    parser.add_argument("--setting", default="omniglot5w1s")
    args = parse_or_work(parser, worker)
    if args is None:
        return
    from benchmarks.methods import memory_methods
    threads = max(args.threads)  # memory does not depend on threads; use every core
    info = configure(threads)
    emit = JsonLines(args.out)
    steps = [int(s) for s in args.steps.split(",")]
    episode = episodes(args.setting, 1, info["device"])[0]
    plain, ckpt = (memory_methods()[m](args.setting, info["device"], **{"inner.steps": 20})
                   for m in ("maml", "maml-checkpointed"))
    emit({"benchmark": "memory", "check": "meta_gradient", "ours": "maml-checkpointed",
          "reference": "maml", "inner_steps": 20,
          "rel_err": rel_err(ckpt.meta_gradient(episode), plain.meta_gradient(episode))})
    peaks = {}
    for method in args.methods.split(","):
        for k in steps:
            result = run_worker(__file__, {"method": method, "setting": args.setting, "steps": k,
                                           "threads": threads})
            peaks[method, k] = result["peak_mb"]
            emit({"benchmark": "memory", "setting": args.setting, "method": method,
                  "inner_steps": k, "peak_mb": result["peak_mb"],
                  "measure": f"{MEMORY_METHODS[result['device']]}; fresh process", **info})
    summary = {"benchmark": "memory", "summary": True, **info}
    if ("imaml", 5) in peaks and ("imaml", 20) in peaks:
        summary["imaml_peak_20_over_5"] = round(peaks["imaml", 20] / peaks["imaml", 5], 3)
    if ("maml", 20) in peaks and ("maml-checkpointed", 20) in peaks:
        summary["maml_over_checkpointed_at_20"] = round(
            peaks["maml", 20] / peaks["maml-checkpointed", 20], 3)
    emit(summary)


if __name__ == "__main__":
    main()
