"""The training loop (a Betty Engine), evaluation protocol and checkpoints."""
from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.evaluation import Summary, confidence_interval, evaluate
from engines.meta_engine import MetaEngine, TrainingDiverged

__all__ = ["MetaEngine", "Summary", "TrainingDiverged", "confidence_interval", "evaluate",
           "load_checkpoint", "save_checkpoint"]
