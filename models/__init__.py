"""Backbones written for torch.func.functional_call: all state is in parameters and buffers,
and forward takes an optional inner-step index (used by per-step batch norm, MAML++)."""
from models.cnn4 import CNN4
from models.mlp import SinusoidMLP
from models.step_batchnorm import StepBatchNorm
from models.factory import build_backbone

__all__ = ["CNN4", "SinusoidMLP", "StepBatchNorm", "build_backbone"]
