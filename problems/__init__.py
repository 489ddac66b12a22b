"""Betty problems for bi-level weight mixup, reusable in other bi-level studies: each takes a
module, its own parameters, a loss function and a data loader, and knows nothing of tasks or
models."""

from .attention import AttentionProblem
from .base import LevelProblem, rng_state, set_rng_state
from .joint import JointProblem
from .task_weights import TaskWeightProblem

__all__ = ["AttentionProblem", "JointProblem", "LevelProblem", "TaskWeightProblem",
           "rng_state", "set_rng_state"]
