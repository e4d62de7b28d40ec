"""What speed.py and memory.py share: the two standard settings, a fixed pool of meta-batches,
this project's training path built from config, and a record of the machine.

Import this before torch anywhere else: it sets OMP_WAIT_POLICY=PASSIVE (docs/DESIGN.md: with 2
threads, OpenMP spin-waiting makes runs 10-30x slower whenever another process is busy)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from betty.logging.logger_base import get_logger  # noqa: E402

from problems.options import RunOptions, load_options  # noqa: E402
from envs import Episode, make_env  # noqa: E402
from problems.meta_gradient import compute_meta_gradient  # noqa: E402
from problems.system import TaskShape, build_system  # noqa: E402

#: name -> (dataset preset, input shape, source of the episodes)
SETTINGS = {
    "omniglot5w1s": ("omniglot5w1s", (1, 28, 28), "shared Omniglot subset, train split"),
    "omniglot20w1s": ("omniglot20w1s", (1, 28, 28), "shared Omniglot subset, train split"),
    "mini5w1s-shapes": ("mini1shot", (3, 84, 84), "random tensors in mini-ImageNet shapes"),
}
#: the benchmark protocol every speed figure is measured under, whatever a preset trains with
#: (15 queries per class in training episodes: the Omniglot presets now train with one)
STANDARD = {"data.meta_batch": 4, "inner.steps": 5, "data.train_query": "null"}


def configure(threads: int | None) -> dict:
    """Threads (None: torch's own default, as run.py leaves it), quiet Betty, device; returns
    what the output records about the machine."""
    if threads is not None:
        torch.set_num_threads(threads)
    get_logger().setLevel(logging.WARNING)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # kernels may be picked per shape; the math stays fp32 (no TF32/bf16)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {"device": device, "device_name": torch.cuda.get_device_name() if device == "cuda"
            else platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "python": platform.python_version()}


def config(problem: str, setting: str, **sets) -> RunOptions:
    dataset = SETTINGS[setting][0]
    overrides = {**STANDARD, **sets}
    return load_options(problem, dataset, [f"{k}={v}" for k, v in overrides.items()])


def episodes(setting: str, count: int, device: str, seed: int = 0) -> list[Episode]:
    """`count` meta-batches every method sees in the same order: the real train split for
    Omniglot, random tensors (fixed seed) in the other setting's shapes."""
    cfg = config("maml", setting)
    data = cfg.data
    if setting.startswith("omniglot"):
        env = make_env(data, os.environ.get("METALEARN_DATA_ROOT"), seed)
        out = [env.step() for _ in range(count)]
    else:
        g = torch.Generator().manual_seed(seed)
        shape, ways, t = SETTINGS[setting][1], data.ways, data.meta_batch
        labels = lambda n: torch.arange(ways).repeat_interleave(n).repeat(t, 1)  # noqa: E731
        out = [Episode(torch.rand(t, ways * data.shots, *shape, generator=g), labels(data.shots),
                       torch.rand(t, ways * data.query, *shape, generator=g), labels(data.query))
               for _ in range(count)]
    return [e.to(device) for e in out]


class Ours:
    """This project's training path: problems.build_system, one Betty train_step per
    meta-iteration (inner adaptation, outer loss, hypergradient, Adam update)."""

    def __init__(self, cfg: RunOptions, setting: str, device: str, seed: int = 0):
        shape = TaskShape(SETTINGS[setting][1], "classification", cfg.data.ways)
        system = build_system(cfg, shape, seed=seed, strategy="gpu" if device == "cuda" else "cpu",
                              train_iters=10 ** 9)
        self.env, self.engine, self.outer, self.inner = (system.env, system.engine, system.outer,
                                                         system.inner)
        self.backbone = self.inner.backbone

    def step(self, episode: Episode) -> None:
        self.env.batch = episode
        self.engine.global_step += 1
        self.engine.train_step()

    def meta_gradient(self, episode: Episode) -> list[torch.Tensor]:
        return compute_meta_gradient(self.outer, self.inner, episode)[
            :len(list(self.backbone.parameters()))]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_worker(script: str, spec: dict) -> dict:
    """Run one configuration in a fresh process (`script --worker SPEC`) so allocator state,
    caches and peak counters never leak between configurations; return its last JSON line."""
    import json
    import subprocess
    out = subprocess.run([sys.executable, script, "--worker", json.dumps(spec)],
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


class JsonLines:
    """Prints each record as one JSON line and, with a path, appends it there too."""

    def __init__(self, path: Path | None = None):
        self.sink = path.open("a") if path else None

    def __call__(self, record: dict) -> None:
        import json
        line = json.dumps(record)
        print(line, flush=True)
        if self.sink:
            self.sink.write(line + "\n")
            self.sink.flush()


def thread_settings(text: str) -> list[int]:
    """'1,2' -> [1, 2]; '' -> 1 and the number of cores this process may use."""
    if text.strip():
        return sorted({int(t) for t in text.split(",") if t.strip()})
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else (os.cpu_count() or 1))
    return sorted({1, cores})


def parse_or_work(parser, worker) -> "object | None":
    """Add the options both benchmarks share and parse; in a `--worker` child process, run
    `worker(spec)`, print its JSON line and return None so the caller stops."""
    import argparse
    import json
    parser.add_argument("--threads", type=thread_settings, default=thread_settings(""),
                        help="intra-op thread settings to time each configuration at, e.g. 1,2 "
                             "(default: 1 and every core; a configuration counts at its fastest)")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON lines here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    return args
