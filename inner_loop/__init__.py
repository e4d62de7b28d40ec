"""The inner-loop runtime: a backbone evaluated at explicit parameters for one task (`Learner`)
or all tasks of a meta-batch (`TaskStack`), the task executors that run the task axis, task
threads, and checkpointed steps. The algorithms that move φ are in `optimizers/`."""
from inner_loop.checkpointing import checkpointed_step
from inner_loop.executor import LOOP, SETTINGS, VMAP, TaskExecutor, choose_executor, vmappable
from inner_loop.learner import Learner, TaskStack
from inner_loop.threads import TaskThreads, task_thread_count, thread_safe

__all__ = ["LOOP", "SETTINGS", "VMAP", "Learner", "TaskExecutor", "TaskStack", "TaskThreads",
           "checkpointed_step", "choose_executor", "task_thread_count", "thread_safe", "vmappable"]
