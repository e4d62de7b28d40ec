"""Data-parallel meta-training over torch.distributed (gloo, 2 CPU processes via torchrun):
each rank adapts to its share of the meta-batch and the outer gradients are averaged, so
training follows the single-process run. With plain SGD as the outer optimizer, θ after each
step is θ − lr·(meta-gradient), so equal parameters mean equal meta-gradients."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engines import checkpoint

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(out, problem, launcher):
    # 3 tasks per meta-batch: the ranks get 2 and 1, so the averaging weights matter.
    args = ["run.py", "--problem", problem, "--dataset", "sinusoid", "--iterations", "3",
            "--seed", "5", "--out", str(out), "--set", "data.meta_batch=3",
            "--set", "outer.optimizer=sgd", "--set", "outer.lr=0.01", "--set", "eval.val_every=0",
            "--set", "eval.episodes=4", "--set", "checkpoint_every=0"]
    done = subprocess.run([*launcher, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    return checkpoint.load_checkpoint(out / "last.pt")


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["maml", "imaml"])
def test_two_gloo_processes_take_the_single_process_steps(tmp_path, problem):
    single = train(tmp_path / "single", problem, [sys.executable])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    parallel = train(tmp_path / "parallel", problem, torchrun)
    assert parallel["iteration"] == single["iteration"] == 3
    for key, value in single["model"].items():
        assert torch.allclose(parallel["model"][key], value, rtol=1e-5, atol=1e-6), key
