"""The training loop (a Betty Engine), evaluation protocol, checkpoints and run records."""
from engines.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from engines.evaluation import Summary, confidence_interval, evaluate
from engines.meta_engine import MetaEngine, TrainingDiverged

__all__ = ["CheckpointError", "MetaEngine", "Summary", "TrainingDiverged", "confidence_interval",
           "evaluate", "load_checkpoint", "save_checkpoint"]
