"""The training loop. It receives an experiment object and never imports :mod:`yolox.exp`.

One iteration: batch -> (multi-scale resize) -> forward under autocast -> backward -> unscale -> one
host synchronisation that reads, together, whether the loss is finite on every rank and the gradients
are finite, and the logged loss values -> commit the EFL gradient statistics (skipped together with a
non-finite step) -> optimizer step -> EMA -> learning rate.

Throughput options (experiment attributes and flags, all off by default; each is tested equal to the
default path on the CPU): ``--bf16`` (bfloat16 autocast, no loss scaling, CUDA or CPU), ``channels_last``
(the model and its inputs in NHWC memory format), ``compile_model`` (``torch.compile`` of the backbone and
the head's towers, :mod:`yolox.models.compile`; ``compile_backend``, ``compile_mode``; if compilation
fails the run continues eagerly with a warning) and ``fused_optimizer`` (SGD's fused kernel).

Exact resume: a checkpoint records the position (epoch, iteration in epoch), the input size, and every
rank's random-number states. The data stream is (re)started at each resume point (every epoch start and
after a mid-epoch checkpoint) from ``progress * per-rank batch`` of the deterministic sampler stream, right
after the states were recorded, so a resumed run builds the same batches, with the same augmentation
(DataLoader worker seeds derive from the torch state), as the run that was interrupted. Evaluation leaves the
random-number states as it found them.

Final epochs and evaluation: from epoch ``max_epoch - no_aug_epochs`` on (1-based; upstream YOLOX's rule, so
the last ``no_aug_epochs + 1`` epochs; with ``exp.no_aug_extra_epoch`` False, the released EFL code's rule,
the last ``no_aug_epochs``) mosaic and mixup are off and the L1 box loss is added, so that training
ends on whole, unmixed images with boxes fitted to them (the learning rate stays at its minimum over the last
``no_aug_epochs``). Evaluation runs after every ``eval_interval``-th epoch and after the last epoch, in those
final epochs as in the others; ``best_ckpt.pth`` is the best evaluated so far. (Upstream evaluates after each
final epoch regardless of ``eval_interval``: 16 passes over LVIS val's ~20k images with ``no_aug_epochs`` 15;
set ``eval_interval 1`` to get that.) Before each evaluation the BatchNorm statistics of the model and of its EMA
are averaged over the ranks, so that every rank evaluates the same network.

Non-finite steps: a step whose loss (on any rank) or gradient is not finite is skipped together with its EFL
statistics, and the BatchNorm statistics its forward pass changed are put back.
``exp.max_consecutive_nonfinite`` (default 10) consecutive skipped steps stop the run with
:class:`NonFiniteLossError`. Under mixed precision a finite loss with overflowing gradients is the loss
scaler's normal back-off and is counted separately, against ``exp.max_consecutive_overflow`` (default 50:
the scale has then been halved 50 times, far beyond any legitimate back-off).
"""
import datetime
import io
import math
import os
import random
import time

import numpy as np
import torch
import torch.distributed as dist
from loguru import logger
from torch.nn.parallel import DistributedDataParallel as DDP

from yolox.utils.errors import YOLOXError
from yolox.utils import (
    CheckpointError, MeterBuffer, ModelEMA, all_reduce_norm, get_local_rank, get_model_info, get_rank, get_world_size,
    load_checkpoint_file, load_ckpt, save_checkpoint, seed_everything, setup_logger, unwrap_model,
)

__all__ = ["Trainer", "NonFiniteLossError"]


class NonFiniteLossError(YOLOXError, RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


def _rng_state():
    """Random-number states as plain containers and tensors, so a weights-only load accepts them."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state):
    if not state:
        return
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    # A checkpoint loaded with map_location="cuda" brings these tensors to the GPU; the setters take CPU ones.
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def _describe_mismatch(model_sd, ckpt_sd, limit=12):
    """One line listing the keys/shapes that differ between a model's and a checkpoint's state dicts."""
    problems = [f"{k} (not in model)" for k in ckpt_sd if k not in model_sd]
    problems += [f"{k} (not in checkpoint)" for k in model_sd if k not in ckpt_sd]
    problems += [
        f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)})"
        for k, v in ckpt_sd.items() if k in model_sd and hasattr(v, "shape") and tuple(v.shape) != tuple(model_sd[k].shape)
    ]
    more = f", ... ({len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{len(problems)} mismatched tensors: " + ", ".join(problems[:limit]) + more


class Trainer:
    """Trains ``exp``'s model as ``args`` say (upstream tools/train.py arguments plus ``device``).

    Optional experiment attributes read here: ``ckpt_interval_iters`` (0: checkpoints at epoch ends only;
    N: also a resumable ``latest`` checkpoint every N iterations), ``max_consecutive_nonfinite`` and
    ``max_consecutive_overflow`` (see the module docstring).
    """

    max_consecutive_nonfinite = 10
    max_consecutive_overflow = 50
    early_eta_iters = 2  # a first ETA after this many iterations of a run (before the first progress line)

    def __init__(self, exp, args):
        self.exp = exp
        self.args = args
        self.max_epoch = exp.max_epoch
        self.device_type = getattr(args, "device", "cpu")
        # Mixed precision: float16 (--fp16, CUDA, with loss scaling) or bfloat16 (--bf16, CUDA or CPU,
        # float32's exponent range, so no loss scaling and no skipped steps).
        self.autocast_dtype = None
        if getattr(args, "bf16", False):
            self.autocast_dtype = torch.bfloat16
        elif args.fp16 and self.device_type == "cuda":
            self.autocast_dtype = torch.float16
        elif args.fp16:
            logger.warning("--fp16 needs CUDA; training in float32 on the CPU (--bf16 works on the CPU)")
        self.amp_training = self.autocast_dtype is not None
        self.is_distributed = get_world_size() > 1
        self.rank = get_rank()
        self.local_rank = get_local_rank()
        self.world_size = get_world_size()
        self.device = torch.device(f"cuda:{self.local_rank}" if self.device_type == "cuda" else "cpu")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype is torch.float16)
        self.loss_scaling = self.scaler.is_enabled()
        self.channels_last = bool(getattr(exp, "channels_last", False))
        self.compile_model = bool(getattr(exp, "compile_model", False))
        self.compiled = False  # True while compiled modules run (False again after a fallback)
        self.use_model_ema = exp.ema
        self.save_history_ckpt = exp.save_history_ckpt
        self.data_type = torch.float16 if self.autocast_dtype is torch.float16 else torch.float32
        self.input_size = exp.input_size
        self.best_ap = 0.0
        self.meter = MeterBuffer(window_size=exp.print_interval)
        self.file_name = os.path.join(exp.output_dir, args.experiment_name)
        self.tblogger = None
        self.nonfinite_streak = 0  # consecutive skipped steps (non-finite loss; or gradient without AMP)
        self.overflow_streak = 0  # consecutive AMP steps with a finite loss but overflowing gradients
        self.max_consecutive_nonfinite = getattr(exp, "max_consecutive_nonfinite", self.max_consecutive_nonfinite)
        self.max_consecutive_overflow = getattr(exp, "max_consecutive_overflow", self.max_consecutive_overflow)
        self.ckpt_interval_iters = int(getattr(exp, "ckpt_interval_iters", 0) or 0)
        self.run_start_progress = 0  # the global iteration this run starts at (a resumed one: later)
        # The ETA's rate: wall-clock seconds per iteration since the end of this run's first iteration
        # (which also waits for the loader's workers), so that checkpoint writes and the loader's restart at
        # each epoch count, and multi-scale sizes average out; evaluations are left out (eval_seconds).
        self.rate_start, self.rate_start_progress, self.eval_seconds = None, 0, 0.0
        if self.rank == 0:
            os.makedirs(self.file_name, exist_ok=True)
        setup_logger(self.file_name, distributed_rank=self.rank, filename="train_log.txt", mode="a")
        if self.rank == 0:
            self._remove_interrupted_writes()

    def _remove_interrupted_writes(self):
        """Delete temporary files of checkpoint writes that a killed run left behind (never a checkpoint)."""
        for name in os.listdir(self.file_name):
            if name.startswith(".tmp_") and name.endswith(".pth"):
                logger.info(f"removing {name}, an unfinished checkpoint write of an interrupted run")
                os.remove(os.path.join(self.file_name, name))

    # ------------------------------------------------------------------ main loop
    def train(self):
        self.before_train()
        try:
            for self.epoch in range(self.start_epoch, self.max_epoch):
                self.before_epoch()
                for self.iter in range(self.start_iter_in_epoch, self.max_iter):
                    self.train_one_iter()
                self.start_iter_in_epoch = 0
                self.after_epoch()
        finally:
            self.after_train()

    @property
    def progress_in_iter(self):
        return self.epoch * self.max_iter + self.iter

    def train_one_iter(self):
        iter_start = time.time()
        inps, targets = next(self.train_iter)[:2]
        inps = inps.to(self.device, non_blocking=True).to(self.data_type)
        targets = targets.to(self.device, non_blocking=True).to(self.data_type)
        targets.requires_grad = False
        inps, targets = self.exp.preprocess(inps, targets, self.input_size)
        if self.channels_last:
            inps = inps.contiguous(memory_format=torch.channels_last)
        data_end = time.time()

        self._copy_tensors(self._bn_buffers, self._bn_backup)
        outputs = self._forward(inps, targets)
        loss = outputs["total_loss"]
        self.optimizer.zero_grad(set_to_none=True)
        # Backward always runs, also for a non-finite loss: deciding first would cost a host
        # synchronisation before the backward; a non-finite loss makes the step skipped below anyway.
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        loss_ok, step_ok, logged = self._step_decision(loss, outputs)
        grad_scale = self.scaler.get_scale() if self.loss_scaling else 1.0
        for module in self.grad_stat_modules:
            module.commit_grad_stats(grad_scale=grad_scale, skip=not step_ok)
        if step_ok:
            self.scaler.step(self.optimizer)
        else:
            # the forward pass already moved the BatchNorm statistics (possibly to NaN): undo it too
            self._copy_tensors(self._bn_backup, self._bn_buffers)
        if loss_ok:
            # GradScaler.update() needs the inf check of unscale_()
            self.scaler.update()
        elif self.loss_scaling:
            # a non-finite loss says nothing about the gradient scale: keep it (and end this step's
            # unscale_() record, which update() does)
            self.scaler.update(grad_scale)
        self._count_nonfinite(loss_ok, step_ok, logged)

        if self.use_model_ema and step_ok:
            self.ema_model.update(self.model)
        lr = self.advance_lr()

        iter_end = time.time()
        if self.rate_start is None:
            self.rate_start, self.rate_start_progress = iter_end, self.progress_in_iter + 1
        self.meter.update(iter_time=iter_end - iter_start, data_time=data_end - iter_start, lr=lr, **logged)
        self.after_iter()

    def _forward(self, inps, targets):
        """The model's loss dict under the run's autocast; if compiled modules fail (no compiler, an
        unsupported operation), they are switched off and the step is run again eagerly."""
        with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.amp_training):
            if not self.compiled:
                return self.model(inps, targets)
            try:
                return self.model(inps, targets)
            except Exception as e:  # noqa: BLE001 - any compiler failure; an eager failure re-raises below
                from yolox.models.compile import uncompile

                root = e
                while getattr(root, "inner_exception", None) or root.__cause__:  # the compiler's own error
                    root = getattr(root, "inner_exception", None) or root.__cause__
                lines = str(root).strip().splitlines()
                logger.warning(f"torch.compile failed ({type(root).__name__}: {lines[0][:300] if lines else ''}); "
                               f"training eagerly")
                uncompile(unwrap_model(self.model))
                self.compiled = False
                self._copy_tensors(self._bn_backup, self._bn_buffers)
                return self.model(inps, targets)

    def _step_decision(self, loss, outputs):
        """(loss finite on every rank, step ok, the outputs as floats) with one host synchronisation.

        The step is ok when the loss is finite on every rank and every gradient is finite (DDP has
        averaged the gradients, so all ranks agree). The flags travel in one collective; the logged
        values come back in the same device-to-host copy.
        """
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        grads_finite = (torch.isfinite(torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False))
                        if grads else torch.ones((), dtype=torch.bool, device=loss.device))
        flags = torch.stack([torch.isfinite(loss.detach()), grads_finite.to(loss.device)]).float()
        if self.is_distributed:
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        names = list(outputs)
        values = torch.stack([torch.as_tensor(outputs[k]).detach().float().reshape(()).to(flags.device)
                              for k in names])
        host = torch.cat([flags, values]).tolist()
        loss_ok = host[0] > 0
        return loss_ok, loss_ok and host[1] > 0, dict(zip(names, host[2:]))

    def advance_lr(self):
        """Set the optimizer's learning rate for the iteration after the current one; returns it."""
        lr = self.lr_scheduler.update_lr(self.progress_in_iter + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    @staticmethod
    def _copy_tensors(sources, destinations):
        if destinations:
            with torch.no_grad():
                torch._foreach_copy_(destinations, sources)

    def _count_nonfinite(self, loss_ok, step_ok, outputs):
        if step_ok:
            self.nonfinite_streak = self.overflow_streak = 0
            return
        terms = ", ".join(f"{k}={float(v):.4g}" for k, v in outputs.items())
        where = f"epoch {self.epoch + 1} iter {self.iter + 1} (global iteration {self.progress_in_iter + 1})"
        if self.loss_scaling and loss_ok:
            self.overflow_streak += 1
            streak, limit, what = self.overflow_streak, self.max_consecutive_overflow, "gradient overflows"
            logger.info(f"gradient overflow under mixed precision at {where}: step skipped, loss scale lowered")
        else:
            self.nonfinite_streak += 1
            streak, limit = self.nonfinite_streak, self.max_consecutive_nonfinite
            what = "non-finite losses" if not loss_ok else "non-finite gradients"
            logger.warning(f"non-finite {'loss' if not loss_ok else 'gradient'} at {where}: step skipped ({terms})")
        if streak >= limit:
            raise NonFiniteLossError(
                f"{streak} consecutive steps with {what}, the last at {where}, loss terms: {terms}; "
                f"stopping. The last good checkpoint is in {self.file_name}"
            )

    # ------------------------------------------------------------------ setup
    def before_train(self):
        logger.info(f"args: {self.args}")
        logger.info(f"exp value:\n{self.exp}")
        model = self.exp.get_model()
        if self.rank == 0:
            try:
                logger.info(f"Model summary: {get_model_info(model, self.exp.test_size)}")
            except Exception as e:  # noqa: BLE001 - thop is informative only
                logger.warning(f"could not count FLOPs: {e}")
        model.to(self.device)

        self.optimizer = self.exp.get_optimizer(self.args.batch_size)
        self.start_epoch, self.start_iter_in_epoch = 0, 0
        ckpt = self.resume_train(model)

        # 0-based epoch of the switch: upstream YOLOX's epoch + 1 == max_epoch - no_aug_epochs, or the released
        # code's last no_aug_epochs
        self.no_aug_start_epoch = self.max_epoch - self.exp.no_aug_epochs - (1 if self.exp.no_aug_extra_epoch else 0)
        self.no_aug = self.start_epoch > self.no_aug_start_epoch
        self.per_rank_batch = max(self.args.batch_size // self.world_size, 1)
        self.train_loader = self.exp.get_data_loader(
            batch_size=self.per_rank_batch, is_distributed=self.is_distributed, no_aug=self.no_aug,
            cache_img=self.args.cache,
        )
        dataset_classes = getattr(self._base_dataset(), "num_classes", self.exp.num_classes)
        if dataset_classes != self.exp.num_classes:
            raise YOLOXError(
                f"the experiment has num_classes={self.exp.num_classes} but the training annotations have "
                f"{dataset_classes} categories; set num_classes {dataset_classes} (or use matching annotations)"
            )
        self.max_iter = len(self.train_loader)
        if self.max_iter == 0:
            raise ValueError("the training set yields no batch: fewer images than processes x batch size?")
        if ckpt is not None and self.start_iter_in_epoch >= self.max_iter:
            raise YOLOXError(
                f"the checkpoint stopped at iteration {self.start_iter_in_epoch} of an epoch, but an epoch now has "
                f"{self.max_iter} iterations (different dataset, batch size or number of processes?)"
            )
        self.train_iter = None  # started by _restart_data_stream() at each resume point
        self.run_start_progress = self.start_epoch * self.max_iter + self.start_iter_in_epoch
        self.lr_scheduler = self.exp.get_lr_scheduler(self.exp.basic_lr_per_img * self.args.batch_size, self.max_iter)
        if self.no_aug:
            model.head.use_l1 = True

        self.attach_model(model, ckpt)
        self.frequency_groups = self.exp.class_frequency_groups(self._base_dataset())
        self.evaluator = self.exp.get_evaluator(batch_size=self.per_rank_batch * self.world_size,
                                                is_distributed=self.is_distributed)
        if self.rank == 0 and getattr(self.args, "logger", "tensorboard") == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.tblogger = SummaryWriter(os.path.join(self.file_name, "tensorboard"))
        if ckpt is not None:
            # last, so that nothing above (model init, loader set-up) consumes the restored states
            self._restore_rng(ckpt)
        self.model.train()
        logger.info(f"Training start on {self.device} with {self.world_size} process(es), "
                    f"{self.max_iter} iterations per epoch")

    def attach_model(self, model, ckpt=None):
        """Make ``model`` (on ``self.device``, the optimizer already built over it) the one
        :meth:`train_one_iter` trains: DDP when distributed, the modules that collect gradient statistics,
        the BatchNorm backup a skipped step restores, and the EMA (restored from ``ckpt`` when it has one;
        ``max_iter`` and the start position must be set)."""
        if self.channels_last:
            # in place: the optimizer built over the parameters keeps them
            model.to(memory_format=torch.channels_last)
        if self.is_distributed:
            model = DDP(model, device_ids=[self.local_rank] if self.device_type == "cuda" else None,
                        broadcast_buffers=False)
        self.model = model
        self.grad_stat_modules = [m for m in unwrap_model(model).modules() if hasattr(m, "commit_grad_stats")]
        # BatchNorm statistics change in the forward pass; a skipped step restores them from this copy
        self._bn_buffers = [b for m in unwrap_model(model).modules()
                            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for b in m.buffers()]
        self._bn_backup = [b.detach().clone() for b in self._bn_buffers]
        if self.use_model_ema:
            self.ema_model = ModelEMA(model, getattr(self.exp, "ema_decay", 0.9999))
            self.ema_model.updates = self.max_iter * self.start_epoch + self.start_iter_in_epoch
            if ckpt is not None and "ema" in ckpt:
                self.ema_model.ema.load_state_dict(ckpt["ema"])
                self.ema_model.updates = ckpt.get("ema_updates", self.ema_model.updates)
        if self.compile_model:
            # after the EMA copy, which stays eager (evaluation runs it once per eval_interval)
            from yolox.models.compile import compile_dense_parts

            parts = compile_dense_parts(unwrap_model(model), backend=getattr(self.exp, "compile_backend", "inductor"),
                                        mode=getattr(self.exp, "compile_mode", None))
            self.compiled = True
            logger.info(f"torch.compile: {len(parts)} modules (backbone, head stems and towers), "
                        f"backend {getattr(self.exp, 'compile_backend', 'inductor')}; compiled at their first use")

    def _base_dataset(self):
        dataset = self.train_loader.dataset
        return getattr(dataset, "_dataset", dataset)

    def _restart_data_stream(self, progress):
        """(Re)start the loader at iteration ``progress`` of the sampler stream (a resume point)."""
        sampler = getattr(getattr(self.train_loader, "batch_sampler", None), "sampler", None)
        if hasattr(sampler, "start"):
            sampler.start = progress * self.per_rank_batch
        elif progress:
            logger.warning("the training sampler has no 'start': the resumed run restarts its data stream")
        self.train_iter = iter(self.train_loader)

    def after_train(self):
        logger.info(f"Training of experiment is done and the best AP is {self.best_ap * 100:.2f}")
        if self.tblogger is not None:
            self.tblogger.close()

    def before_epoch(self):
        logger.info(f"---> start train epoch {self.epoch + 1}")
        if self.epoch == self.no_aug_start_epoch or (self.no_aug and self.epoch == self.start_epoch):
            logger.info("--->No mosaic aug now!")
            self.train_loader.close_mosaic()
            logger.info("--->Add additional L1 loss now!")
            unwrap_model(self.model).head.use_l1 = True
            if not self.no_aug:
                self.save_ckpt(ckpt_name="last_mosaic_epoch", next_position=(self.epoch, 0))
        self._restart_data_stream(self.epoch * self.max_iter + self.start_iter_in_epoch)

    def after_epoch(self):
        self.save_ckpt(ckpt_name="latest")
        if (self.epoch + 1) % self.exp.eval_interval == 0 or self.epoch + 1 == self.max_epoch:
            eval_start = time.time()
            self.evaluate_and_save_model()
            self.eval_seconds += time.time() - eval_start

    # ------------------------------------------------------------------ logging
    def after_iter(self):
        left_iters = self.max_iter * self.max_epoch - (self.progress_in_iter + 1)
        run_iters = self.progress_in_iter + 1 - self.run_start_progress
        if run_iters == self.early_eta_iters and (self.iter + 1) % self.exp.print_interval != 0:
            # A first estimate, long before the first progress line of a slow CPU run; from the latest step
            # only, as the first one also waits for the data loader's workers to start.
            eta = datetime.timedelta(seconds=int(self.meter["iter_time"].latest * left_iters))
            logger.info(f"first {run_iters} iterations done, the last in {self.meter['iter_time'].latest:.2f}s: "
                        f"about {eta} of training left, evaluations not included (progress every "
                        f"{self.exp.print_interval} iterations)")
        if (self.iter + 1) % self.exp.print_interval == 0:
            rate_iters = self.progress_in_iter + 1 - self.rate_start_progress
            mean_iter = ((time.time() - self.rate_start - self.eval_seconds) / rate_iters if rate_iters > 0
                         else self.meter["iter_time"].global_avg)
            eta = datetime.timedelta(seconds=int(mean_iter * left_iters))
            losses = {k: v.latest for k, v in self.meter.get_filtered_meter("loss").items()}
            loss_str = ", ".join(f"{k}: {v:.3f}" for k, v in losses.items())
            times = self.meter.get_filtered_meter("time")
            time_str = ", ".join(f"{k}: {v.avg:.3f}s" for k, v in times.items())
            gamma = self.gamma_by_group()
            gamma_str = (", " + ", ".join(f"gamma_{g}: {v:.2f}" for g, v in gamma.items())) if gamma else ""
            logger.info(
                f"epoch: {self.epoch + 1}/{self.max_epoch}, iter: {self.iter + 1}/{self.max_iter}, {loss_str}, "
                f"{time_str}, lr: {self.meter['lr'].latest:.3e}, size: {self.input_size[0]}, "
                f"num_fg: {self.meter['num_fg'].latest:.1f}{gamma_str}, ETA: {eta}"
            )
            if self.tblogger is not None:
                step = self.progress_in_iter + 1
                for k, v in losses.items():
                    self.tblogger.add_scalar(f"train/{k}", v, step)
                self.tblogger.add_scalar("train/lr", self.meter["lr"].latest, step)
                for g, v in gamma.items():
                    self.tblogger.add_scalar(f"efl/gamma_{g}", v, step)
            self.meter.clear_meters()

        # per-image sizes ("image") are drawn by the loader's transform; "batch" resizes whole batches here
        if self.exp.multiscale_range > 0 and self.exp.multiscale_mode == "batch" and (self.progress_in_iter + 1) % 10 == 0:
            self.input_size = self.exp.random_resize(self.train_loader, self.epoch, self.rank, self.is_distributed)

        if self.ckpt_interval_iters and (self.iter + 1) % self.ckpt_interval_iters == 0 and self.iter + 1 < self.max_iter:
            self.save_ckpt(ckpt_name="latest", next_position=(self.epoch, self.iter + 1))
            # a resume point: a resumed run restarts its stream here, so this run does too
            self._restart_data_stream(self.progress_in_iter + 1)

    def gamma_by_group(self):
        """Mean EFL focusing factor per frequency group ('r', 'c', 'f'); {} without EFL or groups."""
        loss = unwrap_model(self.model).head.cls_loss
        if not hasattr(loss, "gamma_per_class"):
            return {}
        gamma = loss.gamma_per_class().float().cpu()
        if not self.frequency_groups:
            return {"all": float(gamma.mean())}
        groups = np.asarray(self.frequency_groups)
        return {g: float(gamma[torch.from_numpy(groups == g)].mean()) for g in ("r", "c", "f") if (groups == g).any()}

    # ------------------------------------------------------------------ checkpoints and evaluation
    def resume_train(self, model):
        """Load ``--resume`` (continue a run) or ``-c`` (initial weights). Returns the checkpoint dict."""
        args = self.args
        if args.resume:
            ckpt_file = args.ckpt or os.path.join(self.file_name, "latest_ckpt.pth")
            logger.info(f"resume training from {ckpt_file}")
            ckpt = load_checkpoint_file(ckpt_file, map_location=self.device)
            if not isinstance(ckpt, dict) or "model" not in ckpt:
                raise CheckpointError(f"cannot resume from {ckpt_file}: it holds no 'model' weights")
            weights = ckpt.get("train_model", ckpt["model"])
            try:
                model.load_state_dict(weights)
            except RuntimeError:
                raise CheckpointError(
                    f"cannot resume from {ckpt_file}: it was saved for another architecture or class count; "
                    f"{_describe_mismatch(model.state_dict(), weights)}. Use -c (without --resume) to start from "
                    "its matching weights"
                ) from None
            if "optimizer" in ckpt:
                try:
                    self.optimizer.load_state_dict(ckpt["optimizer"])
                except (ValueError, KeyError, RuntimeError) as e:
                    raise CheckpointError(f"cannot resume the optimizer state of {ckpt_file}: {e}") from None
            else:
                logger.warning(f"{ckpt_file} has no optimizer state: the optimizer starts afresh")
            if "scaler" in ckpt and self.amp_training:
                self.scaler.load_state_dict(ckpt["scaler"])
            self.best_ap = max(float(ckpt.pop("best_ap", 0.0) or 0.0), self._best_ap_on_disk())
            if args.start_epoch is not None:
                self.start_epoch, self.start_iter_in_epoch = args.start_epoch - 1, 0
            else:
                self.start_epoch = int(ckpt.get("start_epoch", 0))
                self.start_iter_in_epoch = int(ckpt.get("start_iter", 0))
            if "input_size" in ckpt:
                self.input_size = tuple(int(v) for v in ckpt["input_size"])
            logger.info(f"loaded checkpoint '{ckpt_file}' (epoch {self.start_epoch}, iteration "
                        f"{self.start_iter_in_epoch} of the epoch)")
            return ckpt
        if args.ckpt is not None:
            logger.info(f"loading initial weights from {args.ckpt}")
            ckpt = load_checkpoint_file(args.ckpt, map_location=self.device)
            load_ckpt(model, ckpt["model"] if "model" in ckpt else ckpt)
        self.start_epoch = 0
        return None

    def _best_ap_on_disk(self):
        """best_ap of ``best_ckpt.pth`` (an evaluation may have finished after ``latest`` was written)."""
        path = os.path.join(self.file_name, "best_ckpt.pth")
        if not os.path.isfile(path):
            return 0.0
        try:
            return float(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("best_ap", 0.0) or 0.0)
        except Exception:  # noqa: BLE001 - only a hint; the resumed run's own evaluations still count
            return 0.0

    def _restore_rng(self, ckpt):
        states = ckpt.get("rng_per_rank")
        if states is not None and len(states) == self.world_size:
            _set_rng_state(states[self.rank])
        elif self.world_size == 1 and ckpt.get("rng"):
            _set_rng_state(ckpt["rng"])
        else:
            # another number of processes: exact continuation is impossible, keep ranks decorrelated
            seed = (self.exp.seed or 0) + self.rank + 1_000_003 * (self.start_epoch * self.max_iter + self.start_iter_in_epoch)
            seed_everything(seed)
            logger.warning("the checkpoint's random states do not match this number of processes: reseeded "
                           "(the run continues, but not bit for bit as it would have)")

    def _gather_rng_states(self):
        state = _rng_state()
        if not self.is_distributed:
            return [state]
        # gathered as serialized bytes: tensors inside gathered objects do not survive gloo's pickling
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payloads = [None] * self.world_size
        dist.all_gather_object(payloads, buffer.getvalue())
        return [torch.load(io.BytesIO(p), weights_only=True) for p in payloads]

    def evaluate_and_save_model(self):
        eval_model = self.ema_model.ema if self.use_model_ema else unwrap_model(self.model)
        logger.info(f"evaluating after epoch {self.epoch + 1}")
        if os.environ.get("YOLOX_TEST_SLOW_EVAL"):  # TEST HOOK for the crash tests: a wide window to kill in
            time.sleep(float(os.environ["YOLOX_TEST_SLOW_EVAL"]))
        all_reduce_norm(unwrap_model(self.model))
        if self.use_model_ema:
            all_reduce_norm(self.ema_model.ema)
        rng = _rng_state()  # evaluation must not shift the training's random streams (exact resume)
        try:
            with torch.no_grad():
                ap50_95, ap50, summary = self.exp.eval(eval_model, self.evaluator, self.is_distributed)
        finally:
            _set_rng_state(rng)
        self.model.train()
        # The first evaluation always writes best_ckpt.pth, even at AP 0 (users expect the file).
        update_best = ap50_95 > self.best_ap or not os.path.exists(os.path.join(self.file_name, "best_ckpt.pth"))
        self.best_ap = max(self.best_ap, ap50_95)
        if self.rank == 0:
            if self.tblogger is not None:
                for tag, value in self.validation_scalars(ap50_95, ap50).items():
                    self.tblogger.add_scalar(tag, value, self.epoch + 1)
            logger.info("\n" + summary)
        self.save_ckpt("last_epoch", update_best, ap=ap50_95)
        if self.save_history_ckpt:
            self.save_ckpt(f"epoch_{self.epoch + 1}", ap=ap50_95)

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

    def save_ckpt(self, ckpt_name, update_best_ckpt=False, ap=None, next_position=None):
        """Write ``<ckpt_name>_ckpt.pth`` (rank 0; every rank must call it, for the random states).

        ``next_position`` = (epoch, iteration in epoch) a resumed run starts at; default: the next epoch.
        """
        rng_states = self._gather_rng_states()
        if self.rank != 0:
            return
        next_epoch, next_iter = next_position if next_position is not None else (self.epoch + 1, 0)
        save_model = self.ema_model.ema if self.use_model_ema else unwrap_model(self.model)
        state = {
            "start_epoch": next_epoch,
            "start_iter": next_iter,
            # "model" holds the weights evaluation uses (the EMA), as in the published checkpoints.
            "model": save_model.state_dict(),
            "train_model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_ap": self.best_ap,
            "curr_ap": ap,
            "input_size": list(self.input_size),
            "rng": rng_states[0],
            "rng_per_rank": rng_states,
        }
        if self.use_model_ema:
            state["ema"] = self.ema_model.ema.state_dict()
            state["ema_updates"] = self.ema_model.updates
        logger.info(f"Save weights to {self.file_name} ({ckpt_name})")
        save_checkpoint(state, update_best_ckpt, self.file_name, ckpt_name)
