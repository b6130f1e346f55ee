"""The training loop. It receives an experiment object and never imports :mod:`yolox.exp`.

The loop (:meth:`Trainer.train`) runs epochs of :meth:`Trainer.run_step` and calls the hooks of
:mod:`yolox.core.hooks` around them (detectron2's ``HookBase`` model, with epochs). One step: batch ->
preprocessing (the current input size) -> forward under autocast -> backward -> the step guard's check (one
host synchronisation: the loss finite on every rank, the gradients finite, the logged values) -> the
``after_backward`` hooks (the EFL gradient statistics) -> the optimizer step or its skip -> the learning rate
of the next iteration -> the ``after_step`` hooks (EMA, multi-scale size, mid-epoch checkpoint, progress).

Gradient accumulation (``exp.accumulate_steps`` N, ``--accumulate N``; docs/accumulation.md): ``-b`` stays the
total batch of an optimizer step; each process trains micro-batches of ``b / (processes x N)`` images, N of
them per step (:meth:`Trainer.forward_backward`: a no-grad pass records the loss normalisers, then N forward +
backward passes replay the whole step's normalisers, DDP synchronising the last only). Everything counted in
iterations counts optimizer steps: the learning rate and its warm-up, the EMA, the step guard, the EFL
statistics' commit, the checkpoints; an epoch has ``len(loader) // N`` steps. N = 1 is the plain step.

Throughput options (experiment attributes and flags, all off by default; each is tested equal to the
default path on the CPU): ``--bf16`` (bfloat16 autocast, no loss scaling, CUDA or CPU), ``channels_last``
(the model and its inputs in NHWC memory format), ``compile_model`` (``torch.compile`` of the backbone and
the head's towers, :mod:`yolox.models.compile`; ``compile_backend``, ``compile_mode``; if compilation
fails the run continues eagerly with a warning) and ``fused_optimizer`` (SGD's fused kernel).

Exact resume: a checkpoint records the position (epoch, iteration in epoch), the input size, and every
rank's random-number states. The data stream is (re)started at each resume point (every epoch start and
after a mid-epoch checkpoint) from ``progress * N * micro-batch`` (``progress * per-rank batch`` without
accumulation) of the deterministic sampler stream, right
after the states were recorded, so a resumed run builds the same batches, with the same augmentation
(DataLoader worker seeds derive from the torch state), as the run that was interrupted.

Final epochs (:class:`~yolox.core.hooks.FinalPhaseHook`): from epoch ``max_epoch - no_aug_epochs`` on
(1-based; upstream YOLOX's rule, so the last ``no_aug_epochs + 1`` epochs; with ``exp.no_aug_extra_epoch``
False, the released EFL code's rule, the last ``no_aug_epochs``) mosaic and mixup are off and the L1 box loss
is added (the learning rate stays at its minimum over the last ``no_aug_epochs``). Evaluation:
:class:`~yolox.core.hooks.EvalHook`. Non-finite steps: :class:`~yolox.core.hooks.StepGuard`
(``exp.max_consecutive_nonfinite``, default 10; ``exp.max_consecutive_overflow``, default 50).
"""
import contextlib
import os
import time

import torch
from loguru import logger
from torch.nn.parallel import DistributedDataParallel as DDP

from yolox.utils import get_local_rank, get_model_info, get_rank, get_world_size, setup_logger, unwrap_model
from yolox.utils.dist import NormalizerReplay
from yolox.utils.errors import YOLOXError

from .hooks import (
    CheckpointHook, EMAHook, EvalHook, FinalPhaseHook, GradientStatsHook, MultiScaleHook, NonFiniteLossError,
    ProgressHook, StepGuard,
)

__all__ = ["Trainer", "NonFiniteLossError", "micro_batch_size"]


def micro_batch_size(batch_size, processes, accumulate_steps=1):
    """Images of one process's micro-batch: ``batch_size`` (the total of an optimizer step) / (``processes`` x
    ``accumulate_steps``); it must divide. Without accumulation, upstream's ``max(batch_size // processes, 1)``."""
    if accumulate_steps == 1:
        return max(batch_size // processes, 1)
    if batch_size % (processes * accumulate_steps):
        raise YOLOXError(f"-b {batch_size} is not a multiple of {processes} process(es) x {accumulate_steps} "
                         f"accumulated micro-batches: choose -b, -d or --accumulate so that it is")
    return batch_size // (processes * accumulate_steps)


class Trainer:
    """Trains ``exp``'s model as ``args`` say (upstream tools/train.py arguments plus ``device``).

    Optional experiment attributes read here: ``accumulate_steps`` (micro-batches per optimizer step, default
    1), ``ckpt_interval_iters`` (0: checkpoints at epoch ends only; N: also a resumable ``latest`` checkpoint
    every N iterations), ``max_consecutive_nonfinite`` and ``max_consecutive_overflow`` (see
    :class:`~yolox.core.hooks.StepGuard`).
    """

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
        self.channels_last = bool(getattr(exp, "channels_last", False))
        self.compile_model = bool(getattr(exp, "compile_model", False))
        self.compiled = False  # True while compiled modules run (False again after a fallback)
        self.data_type = torch.float16 if self.autocast_dtype is torch.float16 else torch.float32
        self.input_size = exp.input_size
        self.accumulate_steps = int(getattr(exp, "accumulate_steps", 1))
        if self.accumulate_steps < 1:
            raise YOLOXError(f"accumulate_steps must be at least 1, got {self.accumulate_steps}")
        self.file_name = os.path.join(exp.output_dir, args.experiment_name)
        self.guard = StepGuard(
            torch.amp.GradScaler("cuda", enabled=self.autocast_dtype is torch.float16),
            max_consecutive_nonfinite=getattr(exp, "max_consecutive_nonfinite", 10),
            max_consecutive_overflow=getattr(exp, "max_consecutive_overflow", 50),
            checkpoint_dir=self.file_name, is_distributed=self.is_distributed,
        )
        self.step_check = None  # the guard's StepCheck of the current step
        self.data_time = 0.0  # seconds the current step waited for its batch (preprocessing included)
        if self.rank == 0:
            os.makedirs(self.file_name, exist_ok=True)
        setup_logger(self.file_name, distributed_rank=self.rank, filename="train_log.txt", mode="a")
        self.hooks = []
        self.register_hooks(self.build_hooks())
        if self.rank == 0:
            self.checkpointer.remove_interrupted_writes()

    def build_hooks(self):
        """The run's hooks in calling order. As in detectron2's ``build_hooks``, the ones that change the
        training state come before the ones that read it: the statistics and the EMA follow the step they
        belong to; the multi-scale size is drawn before a checkpoint records it; checkpointing comes after them
        all, and the epoch's ``latest`` is written before its evaluation (a run killed while evaluating resumes
        after the epoch); the progress writer comes last, so that it reports the finished iteration."""
        exp = self.exp
        # 0-based epoch of the switch: upstream YOLOX's epoch + 1 == max_epoch - no_aug_epochs, or the released
        # code's last no_aug_epochs
        first_final_epoch = self.max_epoch - exp.no_aug_epochs - (1 if exp.no_aug_extra_epoch else 0)
        hooks = [GradientStatsHook()]
        if exp.ema:
            hooks.append(EMAHook(getattr(exp, "ema_decay", 0.9999)))
        hooks.append(FinalPhaseHook(first_final_epoch))
        if exp.multiscale_range > 0 and exp.multiscale_mode == "batch":
            hooks.append(MultiScaleHook(every=10))
        evaluation = EvalHook(save_history=exp.save_history_ckpt)
        logger_name = getattr(self.args, "logger", "tensorboard")
        progress = ProgressHook(exp.print_interval, tensorboard=logger_name == "tensorboard", evaluation=evaluation)
        hooks += [
            CheckpointHook(self.file_name, interval_iters=int(getattr(exp, "ckpt_interval_iters", 0) or 0)),
            evaluation,
            progress,
        ]
        # -l wandb / mlflow: the progress hook's scalars go to that tracker instead of TensorBoard (rank 0)
        from .hooks import build_logger_hook

        tracker = build_logger_hook(logger_name, progress, self.args, rank=self.rank)
        if tracker is not None:
            hooks.append(tracker)
        return hooks

    def register_hooks(self, hooks):
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    def call_hooks(self, moment):
        for hook in self.hooks:
            getattr(hook, moment)()

    def find_hook(self, kind):
        """The first registered hook of class ``kind``, or None."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    # ------------------------------------------------------------------ main loop
    def train(self):
        self.before_train()
        try:
            for self.epoch in range(self.start_epoch, self.max_epoch):
                logger.info(f"---> start train epoch {self.epoch + 1}")
                self.call_hooks("before_epoch")
                self.restart_data_stream(self.epoch * self.max_iter + self.start_iter_in_epoch)
                for self.iter in range(self.start_iter_in_epoch, self.max_iter):
                    self.run_step()
                self.start_iter_in_epoch = 0
                self.call_hooks("after_epoch")
        finally:
            self.call_hooks("after_train")

    def run_step(self):
        """One iteration (optimizer step) at (``self.epoch``, ``self.iter``): see the module docstring."""
        self.call_hooks("before_step")
        step_start = time.time()
        batches = [self.next_batch() for _ in range(self.accumulate_steps)]
        self.data_time = time.time() - step_start
        self.guard.before_forward()
        loss, outputs = self.forward_backward(batches)
        self.step_check = self.guard.check(loss, outputs, self.model.parameters())
        self.call_hooks("after_backward")
        self.guard.step(self.optimizer, self.step_check, (self.epoch, self.iter, self.progress_in_iter))
        self.advance_lr()
        self.call_hooks("after_step")

    def forward_backward(self, batches):
        """The forward and backward passes of one optimizer step over ``batches``, its micro-batches (one
        without accumulation), each (images [b, 3, H, W], targets [b, max_labels, 5]).

        Leaves the step's gradients in the parameters' ``.grad``, summed over the micro-batches and unscaled
        once, after the last. Returns (the step's loss, 0-d; its outputs: each loss term summed over the
        micro-batches, ``num_fg`` their mean). With several micro-batches, a no-grad forward of each first
        records the loss normalisers (:class:`~yolox.utils.dist.NormalizerReplay`) and the BatchNorm statistics
        it moved are put back; each real forward then divides by the whole step's normalisers, so the summed
        gradients, the losses and the EFL statistics are those of one batch of all the micro-batches (with
        BatchNorm's batch statistics over each micro-batch). Under DDP only the last backward all-reduces.
        """
        if len(batches) == 1:
            outputs = self._forward(*batches[0])
            loss = outputs["total_loss"]
            self.optimizer.zero_grad(set_to_none=True)
            self.guard.backward(loss, self.optimizer)
            return loss, outputs
        self.optimizer.zero_grad(set_to_none=True)
        normalizers = NormalizerReplay()
        with torch.no_grad():
            for batch in batches:
                with normalizers.record():
                    self._forward(*batch)
        self.guard.restore_batchnorm()
        parts = []
        for k, batch in enumerate(batches):
            last = k == len(batches) - 1
            no_sync = self.model.no_sync() if not last and isinstance(self.model, DDP) else contextlib.nullcontext()
            with no_sync, normalizers.replay():
                outputs = self._forward(*batch)
                self.guard.backward(outputs["total_loss"], self.optimizer, unscale=last)
            parts.append({key: torch.as_tensor(v).detach().float() for key, v in outputs.items()})
        # each micro-batch's loss is its share of the step's: they add up; num_fg (per image) averages
        outputs = {key: torch.stack([p[key] for p in parts]).sum() if "loss" in key
                   else torch.stack([p[key] for p in parts]).mean() for key in parts[0]}
        return outputs["total_loss"], outputs

    @property
    def progress_in_iter(self):
        return self.epoch * self.max_iter + self.iter

    def next_batch(self):
        """The next training batch on the device, resized to the current input size: (images [B, 3, H, W],
        targets [B, max_labels, 5] as (class, cx, cy, w, h) in pixels)."""
        inps, targets = next(self.train_iter)[:2]
        inps = inps.to(self.device, non_blocking=True).to(self.data_type)
        targets = targets.to(self.device, non_blocking=True).to(self.data_type)
        targets.requires_grad = False
        inps, targets = self.exp.preprocess(inps, targets, self.input_size)
        if self.channels_last:
            inps = inps.contiguous(memory_format=torch.channels_last)
        return inps, targets

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
                self.guard.restore_batchnorm()
                return self.model(inps, targets)

    def advance_lr(self):
        """Set the optimizer's learning rate for the iteration after the current one; returns it."""
        lr = self.lr_scheduler.update_lr(self.progress_in_iter + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

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
        self.build_train_loader(resumed=ckpt is not None)
        self.lr_scheduler = self.exp.get_lr_scheduler(self.exp.basic_lr_per_img * self.args.batch_size, self.max_iter)
        self.attach_model(model)
        self.frequency_groups = self.exp.class_frequency_groups(self.train_loader.base_dataset)
        self.call_hooks("before_train")
        if ckpt is not None:
            for part in (self.guard, *self.hooks):
                part.load_state_dict(ckpt)
            # last, so that nothing above (model init, loader set-up) consumes the restored states
            self.checkpointer.restore_rng(ckpt)
        self.model.train()
        logger.info(f"Training start on {self.device} with {self.world_size} process(es), "
                    f"{self.max_iter} iterations per epoch")
        if self.accumulate_steps > 1:
            left = len(self.train_loader) - self.max_iter * self.accumulate_steps
            logger.info(f"gradient accumulation: an optimizer step of {self.args.batch_size} images is "
                        f"{self.accumulate_steps} micro-batches of {self.per_rank_batch} per process; an epoch's "
                        f"last {left} micro-batch(es) are left out (the data stream continues in the next epoch)")

    def resume_train(self, model):
        """Load ``--resume`` (continue a run) or ``-c`` (initial weights). Returns the checkpoint dict of a
        resumed run, else None."""
        return self.checkpointer.resume(model)

    def build_train_loader(self, resumed=False):
        """The training loader of this process (``per_rank_batch`` images a micro-batch) and ``max_iter`` (optimizer
        steps per epoch: the loader's micro-batches // ``accumulate_steps``)."""
        self.per_rank_batch = micro_batch_size(self.args.batch_size, self.world_size, self.accumulate_steps)
        no_aug = self.find_hook(FinalPhaseHook).loader_starts_without_mosaic(self.start_epoch)
        self.train_loader = self.exp.get_data_loader(
            batch_size=self.per_rank_batch, is_distributed=self.is_distributed, no_aug=no_aug,
            cache_img=self.args.cache,
        )
        dataset_classes = getattr(self.train_loader.base_dataset, "num_classes", self.exp.num_classes)
        if dataset_classes != self.exp.num_classes:
            raise YOLOXError(
                f"the experiment has num_classes={self.exp.num_classes} but the training annotations have "
                f"{dataset_classes} categories; set num_classes {dataset_classes} (or use matching annotations)"
            )
        self.max_iter = len(self.train_loader) // self.accumulate_steps
        if self.max_iter == 0:
            raise ValueError("the training set yields no batch: fewer images than processes x batch size?")
        if resumed and self.start_iter_in_epoch >= self.max_iter:
            raise YOLOXError(
                f"the checkpoint stopped at iteration {self.start_iter_in_epoch} of an epoch, but an epoch now has "
                f"{self.max_iter} iterations (different dataset, batch size or number of processes?)"
            )
        self.train_iter = None  # started by restart_data_stream() at each resume point

    def attach_model(self, model):
        """Make ``model`` (on ``self.device``, the optimizer already built over it) the one :meth:`run_step`
        trains: channels-last when asked, DDP when distributed, its BatchNorm statistics watched by the step
        guard, compiled when asked. (The hooks' ``before_train`` then make their copies, e.g. the EMA.)"""
        if self.channels_last:
            # in place: the optimizer built over the parameters keeps them
            model.to(memory_format=torch.channels_last)
        if self.is_distributed:
            model = DDP(model, device_ids=[self.local_rank] if self.device_type == "cuda" else None,
                        broadcast_buffers=False)
        self.model = model
        self.guard.watch_batchnorm(unwrap_model(model))
        if self.compile_model:
            from yolox.models.compile import compile_dense_parts

            backend = getattr(self.exp, "compile_backend", "inductor")
            mode = getattr(self.exp, "compile_mode", None)
            parts = compile_dense_parts(unwrap_model(model), backend=backend, mode=mode)
            self.compiled = True
            logger.info(f"torch.compile: {len(parts)} modules (backbone, head stems and towers), "
                        f"backend {backend}; compiled at their first use")

    # ------------------------------------------------------------------ data stream
    def restart_data_stream(self, progress):
        """(Re)start the loader at global iteration (optimizer step) ``progress`` of the sampler stream (a resume
        point): after ``progress * accumulate_steps`` micro-batches of this process."""
        restarted = self.train_loader.restart_at(progress * self.accumulate_steps * self.per_rank_batch)
        if progress and not restarted:
            logger.warning("the training sampler has no 'start': the resumed run restarts its data stream")
        self.train_iter = iter(self.train_loader)

    # ------------------------------------------------------------------ the parts, by name
    @property
    def checkpointer(self):
        return self.find_hook(CheckpointHook)

    @property
    def ema_model(self):
        """The :class:`yolox.utils.ModelEMA` of the run, or None (``exp.ema`` False)."""
        hook = self.find_hook(EMAHook)
        return hook.ema if hook is not None else None

    def evaluation_model(self):
        """The weights evaluation runs and checkpoints publish as ``model``: the EMA's when there is one."""
        return self.ema_model.ema if self.ema_model is not None else unwrap_model(self.model)

    @property
    def evaluator(self):
        return self.find_hook(EvalHook).evaluator

    @property
    def scaler(self):
        return self.guard.scaler

    @property
    def loss_scaling(self):
        return self.guard.loss_scaling

    @property
    def nonfinite_streak(self):
        return self.guard.nonfinite_streak

    @property
    def overflow_streak(self):
        return self.guard.overflow_streak

    @property
    def best_ap(self):
        return self.find_hook(EvalHook).best_ap
