"""Progress: the log line every ``print_interval`` iterations, its ETA, and the TensorBoard scalars.

The ETA's rate is wall-clock seconds per iteration since the end of this run's first iteration (which also
waits for the loader's workers), so that checkpoint writes and the loader's restart at each epoch count, and
multi-scale sizes average out; evaluations are left out (``EvalHook.seconds``).
"""
import datetime
import os
import time

import numpy as np
import torch
from loguru import logger

from yolox.utils import MeterBuffer, unwrap_model

from .base import HookBase

__all__ = ["ProgressHook"]


class ProgressHook(HookBase):
    """Logs ``epoch: e/E, iter: i/I, <loss terms>, iter_time, data_time, lr, size, num_fg[, gamma_<group>], ETA``
    and writes ``train/<loss term>``, ``train/lr``, ``efl/gamma_<group>`` (per progress line, at the global
    iteration) and the evaluation's ``val/...`` (per evaluation, at the epoch) to TensorBoard (rank 0, when
    ``tensorboard``). Register it last: it reports the finished iteration, all other hooks included.

    ``evaluation``: the run's :class:`EvalHook` (its time and scalars), or None.
    """

    def __init__(self, print_interval, tensorboard=True, evaluation=None, early_eta_iters=2):
        self.print_interval = print_interval
        self.tensorboard = tensorboard
        self.evaluation = evaluation
        self.early_eta_iters = early_eta_iters  # a first ETA after this many iterations, before the first line
        self.meter = MeterBuffer(window_size=print_interval)
        self.writer = None  # the SummaryWriter of rank 0
        self.run_start_progress = 0  # the global iteration this run starts at (a resumed one: later)
        self.rate_start, self.rate_start_progress = None, 0  # time.time() and progress at the rate's start
        self.step_start, self.step_size = None, None  # the current iteration's start and input height

    def before_train(self):
        trainer = self.trainer
        self.run_start_progress = trainer.start_epoch * trainer.max_iter + trainer.start_iter_in_epoch
        if trainer.rank == 0 and self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(trainer.file_name, "tensorboard"))

    def before_step(self):
        # the size this iteration trains at (a multi-scale hook may draw the next one before this line is logged)
        self.step_start, self.step_size = time.time(), self.trainer.input_size[0]

    def after_step(self):
        trainer = self.trainer
        now = time.time()
        done = trainer.progress_in_iter + 1  # iterations of the whole training done
        if self.rate_start is None:
            self.rate_start, self.rate_start_progress = now, done
        self.meter.update(iter_time=now - self.step_start, data_time=trainer.data_time,
                          lr=trainer.optimizer.param_groups[0]["lr"], **trainer.step_check.values)
        left_iters = trainer.max_iter * trainer.max_epoch - done
        run_iters = done - self.run_start_progress
        on_line = (trainer.iter + 1) % self.print_interval == 0
        if run_iters == self.early_eta_iters and not on_line:
            # A first estimate, long before the first progress line of a slow CPU run; from the latest step
            # only, as the first one also waits for the data loader's workers to start.
            eta = datetime.timedelta(seconds=int(self.meter["iter_time"].latest * left_iters))
            logger.info(f"first {run_iters} iterations done, the last in {self.meter['iter_time'].latest:.2f}s: "
                        f"about {eta} of training left, evaluations not included (progress every "
                        f"{self.print_interval} iterations)")
        if on_line:
            self.log_progress(done, left_iters)

    def log_progress(self, done, left_iters):
        trainer = self.trainer
        rate_iters = done - self.rate_start_progress
        eval_seconds = self.evaluation.seconds if self.evaluation is not None else 0.0
        mean_iter = ((time.time() - self.rate_start - eval_seconds) / rate_iters if rate_iters > 0
                     else self.meter["iter_time"].global_avg)
        eta = datetime.timedelta(seconds=int(mean_iter * left_iters))
        losses = {k: v.latest for k, v in self.meter.get_filtered_meter("loss").items()}
        loss_str = ", ".join(f"{k}: {v:.3f}" for k, v in losses.items())
        times = self.meter.get_filtered_meter("time")
        time_str = ", ".join(f"{k}: {v.avg:.3f}s" for k, v in times.items())
        gamma = self.gamma_by_group()
        gamma_str = (", " + ", ".join(f"gamma_{g}: {v:.2f}" for g, v in gamma.items())) if gamma else ""
        logger.info(
            f"epoch: {trainer.epoch + 1}/{trainer.max_epoch}, iter: {trainer.iter + 1}/{trainer.max_iter}, "
            f"{loss_str}, {time_str}, lr: {self.meter['lr'].latest:.3e}, size: {self.step_size}, "
            f"num_fg: {self.meter['num_fg'].latest:.1f}{gamma_str}, ETA: {eta}"
        )
        if self.writer is not None:
            for k, v in losses.items():
                self.writer.add_scalar(f"train/{k}", v, done)
            self.writer.add_scalar("train/lr", self.meter["lr"].latest, done)
            for g, v in gamma.items():
                self.writer.add_scalar(f"efl/gamma_{g}", v, done)
        self.meter.clear_meters()

    def gamma_by_group(self):
        """Mean EFL focusing factor per frequency group ('r', 'c', 'f'); {} without EFL or groups."""
        trainer = self.trainer
        gamma = unwrap_model(trainer.model).gamma_per_class()
        if gamma is None:
            return {}
        gamma = gamma.float().cpu()
        if not trainer.frequency_groups:
            return {"all": float(gamma.mean())}
        groups = np.asarray(trainer.frequency_groups)
        return {g: float(gamma[torch.from_numpy(groups == g)].mean()) for g in ("r", "c", "f") if (groups == g).any()}

    def after_epoch(self):
        if self.writer is not None and self.evaluation is not None:
            for tag, value in self.evaluation.scalars.items():
                self.writer.add_scalar(tag, value, self.trainer.epoch + 1)

    def after_train(self):
        if self.writer is not None:
            self.writer.close()
