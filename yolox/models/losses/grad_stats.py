"""Per-class positive/negative gradient statistics shared by EFL, EQFL and EQLv2*.

The statistics describe the loss that is actually back-propagated: the caller divides the summed loss by a
normaliser (number of foreground anchors, averaged over ranks) before ``backward``, and under AMP the
gradients are multiplied by the loss scale. Each step, per class j:

    pos_grad[j] += sum over positive elements of |dL/dx_ij|
    neg_grad[j] += sum over negative elements of |dL/dx_ij|
    pos_neg[j]   = clamp(pos_grad[j] / (neg_grad[j] + eps), 0, 1)      (= g^j)

(a class that has never received any gradient keeps its initial ``pos_neg``; EQLv2 skips the clamp).

Two ways to obtain |dL/dx| are provided (the EFL supplement describes both):
- ``grad_mode="hook"``: a tensor hook on the logits reads the real gradient during backward. It sees the
  caller's normalisation and the AMP loss scale; the scale is removed in :meth:`commit_grad_stats`.
- ``grad_mode="analytic"``: the loss module evaluates its closed-form derivative in forward and divides by
  the ``normalizer`` the caller passes (the caller must then back-propagate ``summed / normalizer``).

Two statistics layouts (``stats_layout``):
- ``"per_class"`` (default): class j's sums are over class j's own logits, the paper's g^j.
- ``"released"``: what the authors' code (ModelTC/EOD ``efl.py`` / ``eqfl.py``, ``collect_grad``) computes.
  Their head lays a location's ``na * C`` class channels out as [class][anchor] (channel ``c * na + a``)
  but the collector reads them as [anchor][class] (channel ``a * C + c``), so with ``na > 1`` the gradient
  summed for (anchor a', class c') is the one of the logit at channel ``a' * C + c'`` of the true layout.
  With one anchor per location both layouts give the same statistic.

Where they are summed: in hook mode with the positives known (the YOLOX* head's case), the focal-family
kernel (``modulated_bce``) sums either layout inside its pass over the logits (the released one from
per-anchor-slot column sums and a gather at the positives, see ``_released_stats`` there); otherwise
(a ``pos_mask``, analytic mode, EQLv2) :meth:`GradStatsMixin._split_stats` sums the whole gradient, the
released layout from a regrouped copy of it. Both give the same values up to the order of the sums.

Pending sums are kept outside the state dict; the trainer calls :meth:`commit_grad_stats` exactly once
after every backward, which all-reduces them across ranks (every rank must call it, even when it skips).
"""
import torch
import torch.distributed as dist

from .base import ClassificationLoss

__all__ = ["GradStatsMixin", "commit_all_grad_stats"]

GRAD_MODES = ("hook", "analytic")
STATS_LAYOUTS = ("per_class", "released")


class GradStatsMixin(ClassificationLoss):
    """Base for classification losses whose weights depend on accumulated gradient statistics.

    Buffers (float32, shape [C], saved in checkpoints): ``pos_grad``, ``neg_grad``, ``pos_neg``.
    Subclasses call :meth:`_init_grad_stats` in ``__init__``, implement ``_analytic_grad_abs`` and call
    :meth:`_collect_grad_stats` from ``forward``.
    """

    eps = 1e-10
    learns_from_negatives = True
    # EFL/EQFL use g = clamp(pos/neg, 0, 1); EQLv2 keeps the raw ratio (its sigmoid mapping saturates anyway).
    clamp_ratio = True

    def _init_grad_stats(self, num_classes, grad_mode="hook", initial_ratio=1.0, neg_grad_scale=1.0,
                         stats_layout="per_class", anchors_per_location=1):
        """``neg_grad_scale`` (kappa): g^j = pos_grad / (kappa * neg_grad). 1 is the paper's statistic; other
        values are an experiment only: on the CPU stand-in kappa = 1000 drove every class to g ~ 0, because
        it scales the near-object negatives as much as the background (docs/lt_benchmark.md; the head's
        ``background_weight`` emulates a denser background in the loss itself instead).

        ``stats_layout``: "per_class" or "released" (module docstring); ``anchors_per_location`` (na): the
        rows of the [N, C] logits come in groups of na anchors of one location (the head's layout)."""
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
        if not neg_grad_scale > 0:
            raise ValueError(f"neg_grad_scale must be > 0, got {neg_grad_scale}")
        if stats_layout not in STATS_LAYOUTS:
            raise ValueError(f"stats_layout must be one of {STATS_LAYOUTS}, got {stats_layout!r}")
        if int(anchors_per_location) < 1:
            raise ValueError(f"anchors_per_location must be >= 1, got {anchors_per_location}")
        self.stats_layout = stats_layout
        self.anchors_per_location = int(anchors_per_location)
        self.neg_grad_scale = float(neg_grad_scale)
        self.num_classes = int(num_classes)
        self.grad_mode = grad_mode
        self.register_buffer("pos_grad", torch.zeros(self.num_classes, dtype=torch.float32))
        self.register_buffer("neg_grad", torch.zeros(self.num_classes, dtype=torch.float32))
        self.register_buffer("pos_neg", torch.full((self.num_classes,), float(initial_ratio), dtype=torch.float32))
        self._reset_pending()

    def _reset_pending(self):
        # [2, C] float32 sums (row 0 positives, row 1 negatives); None until something is collected.
        self._pending_hook = None  # in AMP-scaled units, divided by grad_scale at commit time
        self._pending_analytic = None  # already in unscaled units of the normalised loss

    @staticmethod
    def _split_by_target(grad, pos_index):
        """[N, C] gradient and the (rows, cols) of the positive elements -> [2, C] float32 (per-class sums
        of |grad| over the positive elements, over the negative ones).

        Every loss here has dL/dx >= 0 on a negative element (y = 0 pushes the logit down; the AMP scale
        and normaliser are positive), so the negatives' |grad| sum is the signed column sum minus the
        positives: one pass over [N, C] and no |grad| copy.
        """
        grad = grad.detach().float()
        rows, cols = (i.to(grad.device) for i in pos_index)
        pos_signed = grad[rows, cols]
        pos = torch.zeros(2, grad.shape[1], dtype=grad.dtype, device=grad.device)
        pos[0].index_add_(0, cols, pos_signed.abs())
        pos[1].index_add_(0, cols, pos_signed)
        neg = (grad.sum(dim=0) - pos[1]).clamp_(min=0)
        return torch.stack([pos[0], neg])

    def _split_stats(self, grad, pos_index):
        """[N, C] gradient -> [2, C] per-class (positive, negative) sums of |grad| in ``stats_layout``."""
        if self.stats_layout == "per_class":
            return self._split_by_target(grad, pos_index)
        # "released": regroup each location's [anchor][class] gradients as the authors' collector reads
        # them (module docstring), then sum |grad| at the positive (row, class) elements and elsewhere.
        # Signs no longer follow the targets after the regrouping, so |grad| is taken explicitly.
        na = self.anchors_per_location
        n, c = grad.shape
        self._check_whole_locations(n)
        read = grad.detach().float().reshape(n // na, na, c).transpose(1, 2).reshape(n, c).abs()
        rows, cols = (i.to(read.device) for i in pos_index)
        pos = torch.zeros(c, dtype=read.dtype, device=read.device).index_add_(0, cols, read[rows, cols])
        return torch.stack([pos, (read.sum(dim=0) - pos).clamp_(min=0)])

    @staticmethod
    def _accumulate(pending, stats):
        return stats if pending is None else pending + stats.to(pending.device)

    def _collect_grad_stats(self, x, targets, pos_mask, normalizer, pos_index=None, row_weight=None):
        """Arrange for |dL/dx| of this forward to reach the pending sums.

        Args:
            x: float32 logits [N, C] exactly as used in the loss graph (the hook is registered on it).
            targets: float32 targets [N, C]; may be None in hook mode when pos_index is given.
            pos_mask: bool [N, C] of positive elements, or None for ``targets > 0`` (then found without a mask).
            normalizer: what the caller divides the summed loss by (used by the analytic mode only).
            pos_index: optional (rows, cols) of the positive elements instead of ``pos_mask``.
            row_weight: optional [N] factor the loss applies to each row (analytic mode only: the hook
                reads it from the real gradient).
        Returns:
            (rows, cols) of the positive elements, for reuse by the loss.
        """
        # targets >= 0, so its non-zero elements are the default positives: one search, no mask pass.
        if pos_index is None:
            pos_index = (targets if pos_mask is None else pos_mask).detach().nonzero(as_tuple=True)
        if not self._backward_follows(x):
            return pos_index  # no backward will follow (eval, no_grad, or frozen logits): collect nothing
        if self.grad_mode == "hook":
            def hook(grad):
                stats = self._split_stats(grad, pos_index)
                self._pending_hook = self._accumulate(self._pending_hook, stats)

            x.register_hook(hook)
        else:
            with torch.no_grad():
                if pos_mask is None:
                    pos_mask = torch.zeros_like(targets, dtype=torch.bool)
                    pos_mask[pos_index] = True
                grad_abs = self._analytic_grad_abs(x.detach(), targets.detach(), pos_mask)
                if row_weight is not None:
                    grad_abs = grad_abs * row_weight.detach().reshape(-1, 1).to(grad_abs)
                if isinstance(normalizer, torch.Tensor):
                    normalizer = normalizer.detach().float().to(grad_abs.device)
                stats = self._split_stats(grad_abs / normalizer, pos_index)
            self._pending_analytic = self._accumulate(self._pending_analytic, stats)
        return pos_index

    def _positives_and_stats(self, logits, targets, pos_mask, normalizer, pos_index, row_weight=None):
        """For the focal-family kernel: (logits for the kernel, pos_index, whether it covers every non-zero
        target, stats sink, stats regroup).

        When the positives for the statistics also cover the non-zero targets (given as pos_index, or the
        default targets > 0), the kernel gathers the hook-mode statistics itself, in either layout (the
        regroup is :attr:`fused_stats_regroup`); otherwise (a pos_mask, or analytic mode) they are collected
        the generic way and the sink is None. ``targets`` may be None (sparse targets) when pos_index is
        given and the mode is not analytic.

        The kernel takes the logits in their own dtype and casts them chunk by chunk; only the generic
        collection, which reads the whole float32 gradient (hook) or float32 logits (analytic), gets a
        float32 copy of the [N, C] logits, so its statistics stay what they were.
        """
        covers = pos_index is not None or pos_mask is None
        if covers and self.grad_mode == "hook":
            if pos_index is None:
                pos_index = targets.detach().nonzero(as_tuple=True)
            sink = self._fused_stats_sink(logits)
            if sink is not None:
                self._check_whole_locations(logits.shape[0])
            return logits, pos_index, True, sink, self.fused_stats_regroup
        x = logits.float() if self._backward_follows(logits) else logits
        pos_index = self._collect_grad_stats(x, targets, pos_mask, normalizer, pos_index, row_weight)
        return x, pos_index, covers, None, 1

    @property
    def fused_stats_regroup(self):
        """``stats_regroup`` for ``modulated_bce_sum``: na for the released layout, 1 for the per-class one
        (with one anchor per location the released regrouping is the identity: the per-class kernel path)."""
        return self.anchors_per_location if self.stats_layout == "released" else 1

    def _check_whole_locations(self, n):
        """The released layout regroups the rows in locations of na anchors: N must be a multiple of na."""
        if self.stats_layout == "released" and n % self.anchors_per_location:
            raise ValueError(f"{n} rows are not whole locations of {self.anchors_per_location} anchors")

    def _backward_follows(self, x):
        """Whether statistics are collected for this forward (not in eval, no_grad, or for frozen logits)."""
        return self.training and torch.is_grad_enabled() and x.requires_grad

    def _fused_stats_sink(self, x):
        """A callable for a loss kernel that gathers the hook-mode statistics itself (see
        ``modulated_bce_sum``), or None when no backward will follow or the mode is analytic."""
        if self.grad_mode != "hook" or not self._backward_follows(x):
            return None

        def sink(stats):
            self._pending_hook = self._accumulate(self._pending_hook, stats.detach().float())

        return sink

    def _analytic_grad_abs(self, x, targets, pos_mask):
        """|d(summed loss)/dx| [N, C] in closed form, float32."""
        raise NotImplementedError

    @torch.no_grad()
    def commit_grad_stats(self, grad_scale=1.0, skip=False):
        """Fold this step's pending statistics into the buffers; call once after every backward.

        Args:
            grad_scale: the AMP loss scale used for this backward (GradScaler.get_scale()); hook-mode
                gradients are divided by it so the buffers stay in unscaled float32 units.
            skip: True when the optimizer step is skipped (non-finite gradients): nothing is added.
                Under DDP every rank must call this; if any rank skips, all ranks skip.
        """
        device = self.pos_grad.device
        step = torch.zeros(2, self.num_classes, dtype=torch.float32, device=device)
        if self._pending_hook is not None:
            step += self._pending_hook.to(device) / float(grad_scale)
        if self._pending_analytic is not None:
            step += self._pending_analytic.to(device)
        self._reset_pending()

        skip_flag = torch.tensor([1.0 if skip else 0.0], dtype=torch.float32, device=device)
        packed = torch.cat([step.flatten(), skip_flag])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # The effective DDP loss is the mean of the per-rank losses, so its logit gradients are the
            # per-rank gradients divided by the world size. One collective for stats and skip flag.
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
            packed[:-1] /= dist.get_world_size()
        step = packed[:-1].view(2, self.num_classes)
        # Branch-free (no host sync on CUDA): a skipped or non-finite step leaves all buffers untouched.
        keep = (packed[-1] == 0) & torch.isfinite(step).all()
        self.pos_grad.copy_(torch.where(keep, self.pos_grad + step[0], self.pos_grad))
        self.neg_grad.copy_(torch.where(keep, self.neg_grad + step[1], self.neg_grad))
        ratio = self.pos_grad / (self.neg_grad_scale * self.neg_grad + self.eps)
        if self.clamp_ratio:
            ratio = ratio.clamp(0.0, 1.0)
        # A class that has never received any gradient keeps its initial ratio (an empty commit must not
        # turn EFL's initial g = 1 into g = 0); otherwise this is the official update.
        seen = (self.pos_grad > 0) | (self.neg_grad > 0)
        self.pos_neg.copy_(torch.where(keep & seen, ratio, self.pos_neg))


def commit_all_grad_stats(model, grad_scale=1.0, skip=False):
    """Call :meth:`GradStatsMixin.commit_grad_stats` on every such module inside ``model``.

    Modules are visited in ``model.modules()`` order, which is identical on every rank, so the
    collectives match. Returns the number of modules committed.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, GradStatsMixin):
            module.commit_grad_stats(grad_scale=grad_scale, skip=skip)
            count += 1
    return count
