from .base import LevelProblem


class AttentionProblem(LevelProblem):
    """The outer level: min_lambda L_val(w*(lambda), lambda), here the attention factors A, B on
    the held-out part of a split, with weight decay from the optimizer and ``projection`` putting
    them back into their box after each update. Its gradient flows through the inner solution
    by the method named in the inner level's ``Config.type``; its own ``Config`` needs
    ``first_order=True`` (Betty's switch for adding that implicit part) and ``retain_graph=True``.
    """
