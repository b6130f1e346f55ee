"""EQLv2* : Equalization Loss v2 (Tan et al., CVPR 2021) applied to the sigmoid focal loss."""
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from .efl import _check_shapes
from .grad_stats import GradStatsMixin

__all__ = ["EQLv2FocalLoss"]


class EQLv2FocalLoss(GradStatsMixin):
    """Summed EQLv2-reweighted focal loss (the EFL supplement's EQLv2* baseline), 0/1 targets.

        neg_w^j = sigmoid(gamma * (g^j - mu))      pos_w^j = 1 + alpha * (1 - neg_w^j)
        loss    = sum_ij w_ij * FL(x_ij, y_ij),    w_ij = pos_w^j for positives, neg_w^j for negatives

    As in the official EQLv2 code, g^j = pos_grad / neg_grad is *not* clamped and starts at 100 so both
    weights start at ~1; the EQLv2 authors suggest exactly this "multiply the EQLv2 weights into the
    focal loss" for dense detectors. The statistics are the gradients of the weighted loss, as in EQLv2.

    Analytic derivative: |dloss/dx| = w * alpha_t * (1 - p_t)^gamma_f * (1 - p_t - gamma_f * p_t * log p_t).
    """

    quality_targets = False
    clamp_ratio = False

    def __init__(self, num_classes, gamma=12.0, mu=0.8, alpha=4.0, focal_alpha=0.25, focal_gamma=2.0,
                 grad_mode="hook"):
        super().__init__()
        self.gamma = float(gamma)
        self.mu = float(mu)
        self.alpha = float(alpha)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self._init_grad_stats(num_classes, grad_mode, initial_ratio=100.0)

    def class_weights(self):
        """Detached (pos_w [C], neg_w [C]) float32."""
        neg_w = torch.sigmoid(self.gamma * (self.pos_neg.detach() - self.mu))
        return 1.0 + self.alpha * (1.0 - neg_w), neg_w

    def _element_weights(self, pos_mask):
        pos_w, neg_w = self.class_weights()
        return torch.where(pos_mask.to(pos_w.device), pos_w.unsqueeze(0), neg_w.unsqueeze(0))

    def forward(self, logits, targets=None, normalizer=1.0, pos_index=None, row_weight=None, pos_targets=None,
                pos_mask=None):
        """Summed EQLv2* loss (the call of :class:`~yolox.models.losses.base.ClassificationLoss`: dense
        targets, no row weight; plus ``pos_mask``).

        Args:
            logits: [N, C] raw class scores (any float dtype; computed in float32).
            targets: [N, C] 0/1 targets.
            normalizer: what the caller divides the returned sum by before backward (analytic mode only).
            pos_index: optional (rows [P], cols [P]) of the positive elements (each foreground anchor's class).
            pos_mask: optional bool [N, C] of positive elements instead of pos_index (default targets > 0).
        Returns:
            float32 scalar, the summed (not normalised) loss.
        """
        self.check_call(targets, row_weight, pos_targets)
        _check_shapes(logits, targets, self.num_classes)
        x = logits.float()
        y = targets.to(x.dtype)
        if pos_index is not None:
            if pos_mask is not None:
                raise ValueError("give the positives as pos_index or pos_mask, not both")
            pos_mask = torch.zeros(y.shape, dtype=torch.bool, device=y.device)
            pos_mask[pos_index] = True
        pos_mask = y > 0 if pos_mask is None else pos_mask
        self._collect_grad_stats(x, y, pos_mask, normalizer)
        focal = sigmoid_focal_loss(x, y, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="none")
        return (self._element_weights(pos_mask) * focal).sum()

    def _analytic_grad_abs(self, x, targets, pos_mask):
        log_p_t = -F.binary_cross_entropy_with_logits(x, targets, reduction="none")
        p = x.sigmoid()
        p_t = p * targets + (1.0 - p) * (1.0 - targets)
        g = self.focal_gamma
        grad = (1.0 - p_t).pow(g) * (1.0 - p_t - g * p_t * log_p_t)
        if self.focal_alpha >= 0:
            grad = grad * (self.focal_alpha * targets + (1.0 - self.focal_alpha) * (1.0 - targets))
        return self._element_weights(pos_mask) * grad

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, gamma={self.gamma}, mu={self.mu}, alpha={self.alpha}, "
                f"focal_alpha={self.focal_alpha}, focal_gamma={self.focal_gamma}, grad_mode={self.grad_mode!r}")
