"""The final epochs without mosaic and mixup, with the L1 box loss."""
from loguru import logger

from yolox.utils import unwrap_model

from .base import HookBase

__all__ = ["FinalPhaseHook"]


class FinalPhaseHook(HookBase):
    """From epoch ``first_epoch`` (0-based) on, mosaic and mixup are off and the model adds its L1 box loss, so
    that training ends on whole, unmixed images with boxes fitted to them.

    Upstream YOLOX's ``first_epoch`` is ``max_epoch - no_aug_epochs - 1`` (the last ``no_aug_epochs + 1``
    epochs), the released EFL code's ``max_epoch - no_aug_epochs``; the trainer passes the experiment's.
    """

    def __init__(self, first_epoch):
        self.first_epoch = first_epoch

    def loader_starts_without_mosaic(self, start_epoch):
        """Whether a run starting at ``start_epoch`` (a resumed one) is past the switch: its loader is built
        without mosaic from the start."""
        return start_epoch > self.first_epoch

    def before_epoch(self):
        trainer = self.trainer
        resumed_inside = self.loader_starts_without_mosaic(trainer.start_epoch)
        if trainer.epoch == self.first_epoch or (resumed_inside and trainer.epoch == trainer.start_epoch):
            logger.info("--->No mosaic aug now!")
            trainer.train_loader.close_mosaic()
            logger.info("--->Add additional L1 loss now!")
            unwrap_model(trainer.model).enter_final_phase()
            if not resumed_inside:
                # the switch point: a run resumed from here repeats the switch, not the mosaic epochs
                trainer.checkpointer.save("last_mosaic_epoch", next_position=(trainer.epoch, 0))
