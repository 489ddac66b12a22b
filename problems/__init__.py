"""Betty problems for bi-level studies, with nothing of tasks or models inside: a level is a module,
the parameters it owns, a loss function, an optimizer and a data loader. Importing the package
registers this package's hypergradient methods with Betty (``agwm_darts``, ``agwm_sama``,
``agwm_reverse``, ``agwm_cg``, ``agwm_neumann``; :func:`register_hypergradient` adds one).

    settings = shipped_engine_settings("darts")                       # or load_engine_settings(path)
    inner = TaskWeightProblem("inner", settings.inner, module, loss_fn, weights, w_opt, train_loader)
    outer = AttentionProblem("outer", settings.outer, module, loss_fn, alphas, a_opt, val_loader)
    build_engine(inner, outer, settings.engine, train_iters=1000).run()
"""

from . import hypergrad  # noqa: F401  (importing it registers the methods with Betty)
from .attention import AttentionProblem
from .base import LevelProblem, StepRecord, register_hypergradient
from .engine import HYPERGRADS, LevelEngine, build_engine, engine_config_dir, engine_config_on, shipped_engine_settings
from .engine_settings import EngineSettings, LevelConfig, load_engine_settings
from .joint import JointProblem
from .overrides import ConfigError
from .task_weights import TaskWeightProblem

__all__ = ["HYPERGRADS", "AttentionProblem", "ConfigError", "EngineSettings", "JointProblem", "LevelConfig",
           "LevelEngine", "LevelProblem", "StepRecord", "TaskWeightProblem", "build_engine", "engine_config_dir",
           "engine_config_on", "load_engine_settings", "register_hypergradient", "shipped_engine_settings"]
