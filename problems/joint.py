from .base import LevelProblem


class JointProblem(LevelProblem):
    """The single-level ablation: min_{w, lambda} L_tr(w, lambda) on the whole training set, both
    variables by plain gradient descent (one optimizer, a param group each); ``projection``
    keeps the constrained ones (for example the attention factors) in their box.
    """

    def __init__(self, *args, constrained_parameters=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.constrained_parameters = list(constrained_parameters)

    def param_callback(self):
        if self.projection is not None:
            self.projection(self.constrained_parameters)
