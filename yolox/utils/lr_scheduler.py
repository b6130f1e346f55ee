"""Learning-rate schedules of YOLOX (per iteration)."""
import math

__all__ = ["LRScheduler"]


class LRScheduler:
    """``update_lr(iters)`` returns the learning rate after ``iters`` iterations (0-based count).

    ``yoloxwarmcos``: quadratic warm-up from ``warmup_lr_start`` over ``warmup_epochs``, cosine decay to
    ``lr * min_lr_ratio``, then constant at the minimum for the final ``no_aug_epochs``.
    ``warmcos``: linear warm-up then cosine to the minimum. ``cos``: plain cosine.
    """

    def __init__(self, name, lr, iters_per_epoch, total_epochs, warmup_epochs=0, warmup_lr_start=0.0,
                 no_aug_epochs=0, min_lr_ratio=0.05):
        if name not in ("yoloxwarmcos", "warmcos", "cos"):
            raise ValueError(f"unknown lr scheduler {name!r} (yoloxwarmcos, warmcos, cos)")
        self.name = name
        self.lr = lr
        self.total_iters = iters_per_epoch * total_epochs
        self.warmup_iters = iters_per_epoch * warmup_epochs
        self.warmup_lr_start = warmup_lr_start
        self.no_aug_iters = iters_per_epoch * no_aug_epochs
        self.min_lr = lr * min_lr_ratio

    def update_lr(self, iters):
        lr, min_lr = self.lr, self.min_lr
        if self.name != "cos" and self.warmup_iters > 0 and iters <= self.warmup_iters:
            progress = iters / self.warmup_iters
            if self.name == "yoloxwarmcos":
                progress = progress ** 2
            return (lr - self.warmup_lr_start) * progress + self.warmup_lr_start
        if self.name == "yoloxwarmcos" and iters >= self.total_iters - self.no_aug_iters:
            return min_lr
        start = 0 if self.name == "cos" else self.warmup_iters
        end = self.total_iters - (self.no_aug_iters if self.name == "yoloxwarmcos" else 0)
        progress = min(max((iters - start) / max(end - start, 1), 0.0), 1.0)
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
