"""The step guard: whether an optimizer step may be taken, and the loss scaler's rules around it.

Not a hook: ``Trainer.run_step`` calls it between the backward and the optimizer step (it lives in this
package next to the hooks that read its verdict).

A step whose loss (on any rank) or gradient is not finite is skipped, and the BatchNorm statistics its forward
pass changed are put back. ``max_consecutive_nonfinite`` consecutive skipped steps stop the run with
:class:`NonFiniteLossError`. Under float16 loss scaling a finite loss with overflowing gradients is the
scaler's normal back-off and is counted separately, against ``max_consecutive_overflow`` (the scale has then
been halved that many times, far beyond any legitimate back-off).
"""
from dataclasses import dataclass

import torch
import torch.distributed as dist
from loguru import logger

from yolox.utils.errors import YOLOXError

__all__ = ["NonFiniteLossError", "StepCheck", "StepGuard"]


class NonFiniteLossError(YOLOXError, RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


@dataclass
class StepCheck:
    """What the guard read after one backward, in one host synchronisation."""

    loss_finite: bool  # the loss is finite on every rank
    step_ok: bool  # ... and every gradient is finite: the optimizer may step
    values: dict  # the model's outputs (loss terms, num_fg) as Python floats, for the log
    loss_scale: float  # the loss scale of this backward (1.0 without loss scaling)


class StepGuard:
    """The non-finite policy of the optimizer steps and the ``GradScaler`` calls around them.

    Per step: :meth:`before_forward` (backs up the BatchNorm statistics), :meth:`backward` (once per
    micro-batch when the step accumulates several), :meth:`check`, :meth:`step`. ``scaler`` is a
    ``torch.amp.GradScaler``, enabled for float16 autocast only.
    """

    def __init__(self, scaler, max_consecutive_nonfinite=10, max_consecutive_overflow=50, checkpoint_dir="",
                 is_distributed=False):
        self.scaler = scaler
        self.loss_scaling = scaler.is_enabled()
        self.max_consecutive_nonfinite = max_consecutive_nonfinite
        self.max_consecutive_overflow = max_consecutive_overflow
        self.checkpoint_dir = checkpoint_dir  # named in the error that stops the run
        self.is_distributed = is_distributed
        self.nonfinite_streak = 0  # consecutive skipped steps (non-finite loss; or gradient without loss scaling)
        self.overflow_streak = 0  # consecutive loss-scaled steps with a finite loss but overflowing gradients
        self._bn_buffers, self._bn_backup = [], []

    # ------------------------------------------------------------------ BatchNorm statistics
    def watch_batchnorm(self, model):
        """Keep a copy of ``model``'s BatchNorm buffers: the forward pass moves them, a skipped step puts them back."""
        self._bn_buffers = [b for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                            for b in m.buffers()]
        self._bn_backup = [b.detach().clone() for b in self._bn_buffers]

    def before_forward(self):
        _copy_tensors(self._bn_buffers, self._bn_backup)

    def restore_batchnorm(self):
        _copy_tensors(self._bn_backup, self._bn_buffers)

    # ------------------------------------------------------------------ one step
    def backward(self, loss, optimizer, unscale=True):
        """Backward of the (scaled) loss, then the gradients unscaled in place.

        It always runs, also for a non-finite loss: deciding first would cost a host synchronisation before
        the backward; a non-finite loss makes :meth:`check` skip the step anyway. A step accumulated over
        micro-batches passes ``unscale=False`` for all but the last: their gradients add up in the same loss
        scale, and the sum is unscaled (and checked, stepped, the scale updated) once per step."""
        self.scaler.scale(loss).backward()
        if unscale:
            self.scaler.unscale_(optimizer)

    def check(self, loss, outputs, parameters):
        """The :class:`StepCheck` of the backward just done, with one host synchronisation.

        The step is ok when the loss is finite on every rank and every gradient of ``parameters`` is finite
        (DDP has averaged the gradients, so all ranks agree). The flags travel in one collective; the output
        values come back in the same device-to-host copy.
        """
        grads = [p.grad for p in parameters if p.grad is not None]
        grads_finite = (torch.isfinite(torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False))
                        if grads else torch.ones((), dtype=torch.bool, device=loss.device))
        flags = torch.stack([torch.isfinite(loss.detach()), grads_finite.to(loss.device)]).float()
        if self.is_distributed:
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        names = list(outputs)
        values = torch.stack([torch.as_tensor(outputs[k]).detach().float().reshape(()).to(flags.device)
                              for k in names])
        host = torch.cat([flags, values]).tolist()
        loss_finite = host[0] > 0
        loss_scale = self.scaler.get_scale() if self.loss_scaling else 1.0
        return StepCheck(loss_finite, loss_finite and host[1] > 0, dict(zip(names, host[2:])), loss_scale)

    def step(self, optimizer, check, position):
        """Take or skip the optimizer step of ``check``; update the loss scale; count the streaks.

        ``position`` = (epoch, iteration in epoch, global iteration), 0-based, for the messages.
        """
        if check.step_ok:
            self.scaler.step(optimizer)
        else:
            # the forward pass already moved the BatchNorm statistics (possibly to NaN): undo it too
            self.restore_batchnorm()
        if check.loss_finite:
            # GradScaler.update() needs the inf check of unscale_()
            self.scaler.update()
        elif self.loss_scaling:
            # a non-finite loss says nothing about the gradient scale: keep it (and end this step's unscale_()
            # record, which update() does)
            self.scaler.update(check.loss_scale)
        self.record(check, position)

    def record(self, check, position):
        """Count ``check`` in the streaks; raise :class:`NonFiniteLossError` when one reaches its limit."""
        if check.step_ok:
            self.nonfinite_streak = self.overflow_streak = 0
            return
        terms = ", ".join(f"{k}={float(v):.4g}" for k, v in check.values.items())
        epoch, iteration, progress = position
        where = f"epoch {epoch + 1} iter {iteration + 1} (global iteration {progress + 1})"
        if self.loss_scaling and check.loss_finite:
            self.overflow_streak += 1
            streak, limit, what = self.overflow_streak, self.max_consecutive_overflow, "gradient overflows"
            logger.info(f"gradient overflow under mixed precision at {where}: step skipped, loss scale lowered")
        else:
            self.nonfinite_streak += 1
            streak, limit = self.nonfinite_streak, self.max_consecutive_nonfinite
            what = "non-finite losses" if not check.loss_finite else "non-finite gradients"
            logger.warning(f"non-finite {'loss' if not check.loss_finite else 'gradient'} at {where}: step skipped "
                           f"({terms})")
        if streak >= limit:
            raise NonFiniteLossError(
                f"{streak} consecutive steps with {what}, the last at {where}, loss terms: {terms}; "
                f"stopping. The last good checkpoint is in {self.checkpoint_dir}"
            )

    # ------------------------------------------------------------------ checkpoint entries
    def state_dict(self):
        return {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, checkpoint):
        if "scaler" in checkpoint and self.loss_scaling:
            self.scaler.load_state_dict(checkpoint["scaler"])


def _copy_tensors(sources, destinations):
    if destinations:
        with torch.no_grad():
            torch._foreach_copy_(destinations, sources)
