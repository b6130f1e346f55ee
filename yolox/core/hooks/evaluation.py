"""Evaluation after every ``eval_interval``-th epoch and after the last, with ``best_ckpt.pth``.

The final no-augmentation epochs follow the same rule (upstream YOLOX evaluates after each of them regardless
of ``eval_interval``: 16 passes over LVIS val's ~20k images with ``no_aug_epochs`` 15; set ``eval_interval 1``
to get that). Before each evaluation the BatchNorm statistics of the model and of its EMA are averaged over the
ranks, so that every rank evaluates the same network. Evaluation leaves the random-number states as it found
them (exact resume).
"""
import math
import os
import time

import torch
from loguru import logger

from yolox.utils import all_reduce_norm, unwrap_model

from .base import HookBase
from .rng import preserved_rng_state

__all__ = ["EvalHook"]


class EvalHook(HookBase):
    """Evaluates ``trainer.evaluation_model()`` with the experiment's evaluator; writes ``last_epoch`` (and
    ``best_ckpt.pth`` when the AP is the best so far; ``epoch_<n>`` with ``save_history``) through the
    trainer's checkpointer."""

    def __init__(self, save_history=False):
        self.save_history = save_history
        self.evaluator = None  # the experiment's, made in before_train
        self.best_ap = 0.0  # AP50:95 in [0, 1]
        self.seconds = 0.0  # wall-clock time spent in evaluations (the ETA leaves it out)
        self.scalars = {}  # TensorBoard tag -> value of this epoch's evaluation; {} when none ran

    def before_train(self):
        trainer = self.trainer
        self.evaluator = trainer.exp.get_evaluator(batch_size=trainer.per_rank_batch * trainer.world_size,
                                                   is_distributed=trainer.is_distributed)

    def before_epoch(self):
        self.scalars = {}

    def after_epoch(self):
        trainer = self.trainer
        if (trainer.epoch + 1) % trainer.exp.eval_interval == 0 or trainer.epoch + 1 == trainer.max_epoch:
            start = time.time()
            self.evaluate()
            self.seconds += time.time() - start

    def after_train(self):
        logger.info(f"Training of experiment is done and the best AP is {self.best_ap * 100:.2f}")

    def evaluate(self):
        trainer = self.trainer
        logger.info(f"evaluating after epoch {trainer.epoch + 1}")
        all_reduce_norm(unwrap_model(trainer.model))
        if trainer.ema_model is not None:
            all_reduce_norm(trainer.ema_model.ema)
        # evaluation must not shift the training's random streams (exact resume)
        with preserved_rng_state(), torch.no_grad():
            ap50_95, ap50, summary = trainer.exp.eval(trainer.evaluation_model(), self.evaluator,
                                                      trainer.is_distributed)
        trainer.model.train()
        # The first evaluation always writes best_ckpt.pth, even at AP 0 (users expect the file).
        update_best = ap50_95 > self.best_ap or not os.path.exists(os.path.join(trainer.file_name, "best_ckpt.pth"))
        self.best_ap = max(self.best_ap, ap50_95)
        self.scalars = self.validation_scalars(ap50_95, ap50)
        if trainer.rank == 0:
            logger.info("\n" + summary)
        trainer.checkpointer.save("last_epoch", update_best, ap=ap50_95)
        if self.save_history:
            trainer.checkpointer.save(f"epoch_{trainer.epoch + 1}", ap=ap50_95)

    def validation_scalars(self, ap50_95, ap50):
        """TensorBoard tag -> value of one evaluation: ``val/AP50_95`` and ``val/AP50`` (COCO or LVIS AP,
        as the experiment's evaluator computes it), then the evaluator's other metrics (``val/AP75``,
        ``val/APs`` ..., and for LVIS ``val/APr``, ``val/APc``, ``val/APf``). A metric with nothing to
        average (e.g. APl without large objects in the validation set) is left out rather than logged NaN."""
        scalars = {"val/AP50_95": float(ap50_95), "val/AP50": float(ap50)}
        for key, value in (getattr(self.evaluator, "last_metrics", None) or {}).items():
            if key in ("AP", "AP50") or not isinstance(value, (int, float)) or math.isnan(value):
                continue
            scalars[f"val/{key}"] = float(value)
        return scalars

    def state_dict(self):
        return {"best_ap": self.best_ap}

    def load_state_dict(self, checkpoint):
        # best_ckpt.pth may hold a better AP: an evaluation may have finished after `latest` was written
        self.best_ap = max(float(checkpoint.get("best_ap", 0.0) or 0.0), self._best_ap_on_disk())

    def _best_ap_on_disk(self):
        path = os.path.join(self.trainer.file_name, "best_ckpt.pth")
        if not os.path.isfile(path):
            return 0.0
        try:
            return float(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("best_ap", 0.0) or 0.0)
        except Exception:  # noqa: BLE001 - only a hint; the resumed run's own evaluations still count
            return 0.0
