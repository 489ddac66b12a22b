from .base import LevelProblem


class TaskWeightProblem(LevelProblem):
    """The inner level: w*(lambda) = argmin_w L_tr(w, lambda), here the task weights W (every
    trainable weight but the attention factors) on the training part of a split, with weight
    decay from the optimizer. The outer variables lambda enter through ``module``'s forward pass.

    For a hypergradient method registered with ``needs_pre_step_state`` (finite-difference DARTS;
    :func:`agwm_problems.base.register_hypergradient`) it keeps the weights, learning rates, batch and
    random state from before each step.
    """
