"""The built-in finetune methods, one package each (PEFT's ``tuners/``): its ``__init__`` declares
it (settings and registration, :mod:`agwm.registry`; no torch), its ``recipe`` module (or
``encoder``) implements it. Importing this package registers them all, in the order of ``--help``."""

from . import vanilla  # noqa: F401,I001  (first: the reference)
from . import sentence_encoder, mixout, subnetworks, consistency, reinit, peft_tuning  # noqa: F401,I001
