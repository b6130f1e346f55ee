"""Multi-scale training of ``multiscale_mode`` "batch": a new size for whole batches every few iterations.

(``multiscale_mode`` "image" draws a size per image in the loader's transform; no hook is involved.)
"""
from .base import HookBase

__all__ = ["MultiScaleHook"]


class MultiScaleHook(HookBase):
    """Every ``every`` global iterations, ``exp.random_resize`` draws the next input size (the same on every
    rank); ``exp.preprocess`` resizes the loader's batches to it."""

    def __init__(self, every=10):
        self.every = every

    def after_step(self):
        trainer = self.trainer
        if (trainer.progress_in_iter + 1) % self.every == 0:
            trainer.input_size = trainer.exp.random_resize(trainer.train_loader, trainer.epoch, trainer.rank,
                                                           trainer.is_distributed)
