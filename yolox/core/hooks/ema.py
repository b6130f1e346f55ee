"""The exponential moving average of the weights (what evaluation runs and checkpoints publish)."""
from yolox.utils import ModelEMA

from .base import HookBase

__all__ = ["EMAHook"]


class EMAHook(HookBase):
    """Keeps a :class:`yolox.utils.ModelEMA` of the trained model, updated after every step taken."""

    def __init__(self, decay=0.9999):
        self.decay = decay
        self.ema = None  # the ModelEMA, made in before_train

    def before_train(self):
        trainer = self.trainer
        self.ema = ModelEMA(trainer.model, self.decay)
        # the decay ramp continues where the run starts (a checkpoint's own count replaces this)
        self.ema.updates = trainer.max_iter * trainer.start_epoch + trainer.start_iter_in_epoch

    def after_step(self):
        if self.trainer.step_check.step_ok:
            self.ema.update(self.trainer.model)

    def state_dict(self):
        return {"ema": self.ema.ema.state_dict(), "ema_updates": self.ema.updates}

    def load_state_dict(self, checkpoint):
        if "ema" in checkpoint:
            self.ema.ema.load_state_dict(checkpoint["ema"])
            self.ema.updates = checkpoint.get("ema_updates", self.ema.updates)
