"""Commits the EFL/EQFL/EQLv2 gradient statistics of each backward into the loss modules' buffers."""
from yolox.models.losses import commit_all_grad_stats
from yolox.utils import unwrap_model

from .base import HookBase

__all__ = ["GradientStatsHook"]


class GradientStatsHook(HookBase):
    """After every step's backward, on every rank (the commit all-reduces the statistics): the pending
    per-class gradient sums are folded into ``pos_grad`` / ``neg_grad`` / ``pos_neg``, in unscaled float32
    units (the backward's loss scale divided out), or dropped together with a step the guard skips. A step
    accumulated over micro-batches commits once, the sums of all its backwards (they share one loss scale), so
    every micro-batch's loss weights with the statistics of the steps before, as one batch would."""

    def after_backward(self):
        check = self.trainer.step_check
        commit_all_grad_stats(unwrap_model(self.trainer.model), grad_scale=check.loss_scale, skip=not check.step_ok)
