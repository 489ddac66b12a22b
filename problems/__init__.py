"""Betty problems for bi-level weight mixup, reusable in other bi-level studies: each takes a
module, its own parameters, a loss function and a data loader, and knows nothing of tasks or
models. Importing the package registers the hypergradient methods of :mod:`problems.hypergrad`
(``agwm_darts``, ``agwm_cg``) with Betty; :mod:`problems.engine_settings` reads an engine YAML."""

from .attention import AttentionProblem
from .base import LevelProblem, register_hypergradient, rng_state, set_rng_state
from .hypergrad import attention_kernels
from .joint import JointProblem
from .task_weights import TaskWeightProblem

__all__ = ["AttentionProblem", "JointProblem", "LevelProblem", "TaskWeightProblem", "attention_kernels",
           "register_hypergradient", "rng_state", "set_rng_state"]
