"""How each finetuning method changes the plain finetune loop.

A :class:`Recipe` holds the method's hooks into the loop of :mod:`agwm.finetune`::

    model = recipe.prepare(model, train_batches)        # before the optimizer is built
    for batch in batches:
        recipe.loss(model, batch).backward()
        recipe.before_step(); optimizer.step(); recipe.after_step()
    model = recipe.finished(model)                      # a plain model for evaluation and saving

The base class is plain finetuning; each baseline overrides what its paper changes. A method's
own random draws (masks, noise, re-initialisation) take its own stream of the run's seed, so the
data order and dropout are those of vanilla.
"""

from __future__ import annotations

from torch import nn

from .data import generator, stream_seed
from .devices import device_of
from .optim import steps_for
from .runtime import model_loss
from .settings import ConfigError, RunConfig


class Recipe:
    """Plain (vanilla) finetuning of every trainable weight."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def prepare(self, model: nn.Module, train_batches) -> nn.Module:
        return model

    def loss(self, model: nn.Module, batch: dict):
        return model_loss(model, batch)

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def finished(self, model: nn.Module) -> nn.Module:
        return model


class Mixout(Recipe):
    def prepare(self, model, train_batches):
        from .baselines.mixout import inject_mixout

        inject_mixout(model, self.cfg.mixout.p, stream_seed(self.cfg.seed, "mixout"), self.cfg.mixup.target_modules)
        return model

    def finished(self, model):
        from .baselines.mixout import merge_mixout

        return merge_mixout(model)


class MaskedGradients(Recipe):
    """A sub-network method: its ``mask`` object masks the gradients around each step."""

    mask = None

    def before_step(self):
        self.mask.before_step()

    def after_step(self):
        self.mask.after_step()


class ChildTuningD(MaskedGradients):
    def prepare(self, model, train_batches):
        from .baselines.subnetworks import FixedMask, fisher_information, target_parameters, top_fraction_masks

        params = target_parameters(model, self.cfg.child_tuning.target)
        fisher = fisher_information(model, params, train_batches, model_loss)
        self.mask = FixedMask(params, top_fraction_masks(fisher, self.cfg.child_tuning.reserve_p))
        return model


class ChildTuningF(MaskedGradients):
    def prepare(self, model, train_batches):
        from .baselines.subnetworks import BernoulliGradientMask, target_parameters

        params = target_parameters(model, self.cfg.child_tuning.target)
        self.mask = BernoulliGradientMask(params, self.cfg.child_tuning.reserve_p,
                                          generator(self.cfg.seed, "child-tuning-f", device_of(model)))
        return model


class Dps(MaskedGradients):
    def prepare(self, model, train_batches):
        from .baselines.subnetworks import DynamicSelection, target_parameters

        d = self.cfg.dps
        window = max(1, round(d.update_ratio * steps_for(1, len(train_batches.dataset), self.cfg.batch_size)))
        self.mask = DynamicSelection(target_parameters(model, d.target), d.reserve_p, window)
        return model


class R3f(Recipe):
    def prepare(self, model, train_batches):
        self.noise = generator(self.cfg.seed, "r3f", device_of(model))
        return model

    def loss(self, model, batch):
        from .baselines.consistency import r3f_loss

        r = self.cfg.r3f
        return r3f_loss(model, batch, r.noise, r.eps, r.kl_lambda, self.noise)


class RDropout(Recipe):
    def loss(self, model, batch):
        from .baselines.consistency import r_dropout_loss

        return r_dropout_loss(model, batch, self.cfg.rdrop.kl_alpha)


class Reinit(Recipe):
    def prepare(self, model, train_batches):
        from .baselines.reinit import reinit_top_layers

        reinit_top_layers(model, self.cfg.reinit.layers, stream_seed(self.cfg.seed, "re-init"))
        return model


class Peft(Recipe):
    def prepare(self, model, train_batches):
        from .baselines.peft_tuning import PrefixTuningUnsupported, wrap_with_peft

        try:
            return wrap_with_peft(model, self.cfg.finetune.method, self.cfg.peft)
        except PrefixTuningUnsupported as error:
            raise ConfigError(str(error)) from None

    def finished(self, model):
        from .baselines.peft_tuning import unwrap_peft

        return unwrap_peft(model)


# The finetune methods that train through the loop above.
RECIPES: dict[str, type[Recipe]] = {
    "vanilla": Recipe, "mixout": Mixout, "child-tuning-d": ChildTuningD, "child-tuning-f": ChildTuningF,
    "dps": Dps, "r3f": R3f, "r-dropout": RDropout, "re-init": Reinit, "lora": Peft, "prefix": Peft, "prompt": Peft,
    "soup": Recipe,  # vanilla members, averaged by agwm.finetune
    "vanilla-tuned": Recipe,  # vanilla at the lr and epochs agwm.finetune chose on a held-out part of the sample
}
# The methods that use the encoder as a sentence encoder instead (agwm.baselines.sentence_encoder).
ENCODER_METHODS = ("probe", "setfit")
# The one list of finetune methods (``--method``, ``finetune.method``, grid method names).
FINETUNE_METHODS = (*RECIPES, *ENCODER_METHODS)


def make_recipe(cfg: RunConfig) -> Recipe:
    return RECIPES[cfg.finetune.method](cfg)
