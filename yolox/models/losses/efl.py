"""Equalized Focal Loss (Li et al., CVPR 2022)."""
import torch
import torch.nn.functional as F

from .grad_stats import GradStatsMixin
from .modulated_bce import modulated_bce_sum

__all__ = ["EqualizedFocalLoss"]


def _check_shapes(logits, targets, num_classes):
    """Dense targets must match the [N, C] logits; ``targets=None`` (sparse targets) checks the logits only."""
    target_shape = logits.shape if targets is None else targets.shape
    if logits.dim() != 2 or logits.shape != target_shape or logits.shape[1] != num_classes:
        raise ValueError(
            f"expected logits and targets of shape [N, {num_classes}], got {tuple(logits.shape)} "
            f"and {None if targets is None else tuple(targets.shape)}"
        )


def _check_sparse_targets(loss, targets, pos_mask, pos_index, pos_targets):
    """Sparse targets (``targets=None``): the positives are pos_index, their targets pos_targets; hook mode only."""
    if targets is not None:
        return
    if pos_index is None or pos_targets is None or pos_mask is not None:
        raise ValueError("sparse targets (targets=None) need pos_index and pos_targets, and no pos_mask")
    if not loss.takes_pos_targets:
        raise ValueError(f"sparse targets need grad_mode='hook': the {loss.grad_mode!r} statistics read dense targets")


class EqualizedFocalLoss(GradStatsMixin):
    """Summed EFL over [N, C] logits with 0/1 targets.

        EFL(p_t) = -alpha_t * (gamma^j / gamma_b) * (1 - p_t)^gamma^j * log(p_t)
        gamma^j  = gamma_b + s * (1 - g^j),   g^j = pos_neg[j] = clamp(pos_grad / neg_grad, 0, 1)

    As in the official implementation (ModelTC EOD/United-Perception): ``pos_neg`` starts at ones, so
    gamma^j = gamma_b and EFL equals the focal loss until the first statistics arrive; the weighting
    factor gamma^j / gamma_b multiplies the whole per-element loss (positives and negatives); alpha_t
    is the usual focal balance (alpha for positives, 1 - alpha for negatives); the factors are detached.
    With all g^j = 1 the loss is exactly torchvision's ``sigmoid_focal_loss(alpha, gamma_b)``.

    Gradient statistics: see :class:`GradStatsMixin`. The analytic derivative (the supplement's eq. 2,
    i.e. the focal-loss derivative with per-class gamma, times alpha_t and the weighting factor) is

        |dEFL/dx| = alpha_t * w^j * (1 - p_t)^gamma^j * (1 - p_t - gamma^j * p_t * log p_t).
    """

    takes_row_weight = True
    quality_targets = False

    def __init__(self, num_classes, gamma_b=2.0, scale_factor=4.0, alpha=0.25, grad_mode="hook", neg_grad_scale=1.0,
                 stats_layout="per_class", anchors_per_location=1):
        super().__init__()
        self.gamma_b = float(gamma_b)
        self.scale_factor = float(scale_factor)
        self.alpha = float(alpha)
        self._init_grad_stats(num_classes, grad_mode, initial_ratio=1.0, neg_grad_scale=neg_grad_scale,
                              stats_layout=stats_layout, anchors_per_location=anchors_per_location)

    def gamma_per_class(self):
        """Focusing factor gamma^j = gamma_b + s * (1 - g^j), [C] float32."""
        return self.gamma_b + self.scale_factor * (1.0 - self.pos_neg)

    def _factors(self):
        """Detached ([1, C] focusing factor, [1, C] weighting factor gamma^j / gamma_b)."""
        gamma = self.gamma_per_class().detach().unsqueeze(0)
        return gamma, gamma / self.gamma_b

    def _alpha_t(self, targets):
        if self.alpha < 0:  # negative alpha disables balancing, as in torchvision
            return 1.0
        return self.alpha * targets + (1.0 - self.alpha) * (1.0 - targets)

    @property
    def takes_pos_targets(self):
        """Whether sparse targets (``targets=None`` with pos_index and pos_targets) are accepted: in hook mode;
        the analytic mode evaluates its derivative over the dense [N, C] targets."""
        return self.grad_mode == "hook"

    def forward(self, logits, targets=None, normalizer=1.0, pos_mask=None, pos_index=None, row_weight=None,
                pos_targets=None):
        """Summed EFL (the call of :class:`~yolox.models.losses.base.ClassificationLoss`, plus ``pos_mask``).

        Args:
            logits: [N, C] raw class scores (any float dtype; computed in float32).
            targets: [N, C] 0/1 targets, or None for sparse targets (``pos_index`` and ``pos_targets``; hook
                mode only, see :attr:`takes_pos_targets`).
            normalizer: what the caller divides the returned sum by before backward (analytic mode only).
            pos_mask: optional bool [N, C] marking positive elements for the statistics (default targets > 0).
            pos_index: optional (rows, cols) of the positive elements instead of pos_mask; must cover every
                non-zero target (the head passes each foreground anchor's class). With sparse targets, the
                [P] rows and [P] classes of the positives (one per row at most).
            row_weight: optional [N] factor on every element of a row (loss and statistics).
            pos_targets: with ``targets=None``, the [P] targets at pos_index (1 for EFL); every other target
                is 0, and no dense [N, C] target is built. The loss, gradient and statistics equal those of
                the dense targets with the same pos_index.
        Returns:
            float32 scalar, the summed (not normalised) loss.
        """
        _check_shapes(logits, targets, self.num_classes)
        _check_sparse_targets(self, targets, pos_mask, pos_index, pos_targets)
        y = None if targets is None else targets.to(torch.float32)
        x, pos_index, covers, sink, regroup = self._positives_and_stats(logits, y, pos_mask, normalizer, pos_index,
                                                                        row_weight)
        gamma = self.gamma_per_class()
        alpha = None if self.alpha < 0 else self.alpha
        return modulated_bce_sum(x, y, gamma, gamma / self.gamma_b, alpha, pos_index, covers, sink, row_weight,
                                 pos_targets, regroup)

    def _analytic_grad_abs(self, x, targets, pos_mask):
        gamma, weight = self._factors()
        log_p_t = -F.binary_cross_entropy_with_logits(x, targets, reduction="none")
        p = x.sigmoid()
        p_t = p * targets + (1.0 - p) * (1.0 - targets)
        focal_grad = (1.0 - p_t).pow(gamma) * (1.0 - p_t - gamma * p_t * log_p_t)
        return self._alpha_t(targets) * weight * focal_grad

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, gamma_b={self.gamma_b}, scale_factor={self.scale_factor}, "
                f"alpha={self.alpha}, grad_mode={self.grad_mode!r}, neg_grad_scale={self.neg_grad_scale}, "
                f"stats_layout={self.stats_layout!r}, anchors_per_location={self.anchors_per_location}")
