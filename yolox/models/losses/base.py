"""The one interface between the detection head and a classification loss.

Every classification loss is called the same way::

    loss(logits, targets, normalizer, pos_index=(rows, cols), row_weight=w)            # dense targets
    loss(logits, None, normalizer, pos_index=(rows, cols), pos_targets=v, row_weight=w)  # sparse targets

and returns the summed (not normalised) loss, a float32 scalar. What a loss can take is declared by class
attributes (or properties, where a setting decides), read by the head without probing:

- ``quality_targets``: a positive's target is the IoU of its matched box (True) or 1 (False);
- ``takes_pos_targets``: ``targets=None`` with ``pos_targets`` is accepted (no dense ``[N, C]`` targets);
- ``takes_row_weight``: ``row_weight`` is applied (YOLOX*'s ``background_weight`` needs it);
- ``learns_from_negatives``: the loss needs the negative elements, i.e. every anchor (YOLOX*'s head):
  YOLOX's head applies the classification loss to foreground locations only.
"""
from torch import nn

__all__ = ["ClassificationLoss", "check_background_weight"]


class ClassificationLoss(nn.Module):
    """Base of the classification losses; see the module docstring for the call and the declarations."""

    quality_targets = False
    takes_pos_targets = False
    takes_row_weight = False
    learns_from_negatives = False

    def forward(self, logits, targets=None, normalizer=1.0, pos_index=None, row_weight=None, pos_targets=None):
        """Summed loss over every element.

        Args:
            logits: [N, C] raw class scores (any float dtype; computed in float32).
            targets: [N, C] targets in [0, 1], or None for sparse targets (``takes_pos_targets``).
            normalizer: what the caller divides the returned sum by before backward (a positive scalar or
                0-d tensor); the losses whose gradient statistics are analytic read it, the others do not.
            pos_index: (rows [P], cols [P]) of the positive elements: each foreground anchor's class. It
                covers every non-zero target; a positive whose target is 0 (IoU 0) still counts as a
                positive for the gradient statistics. With sparse targets it says where ``pos_targets`` go.
            row_weight: None or [N] non-negative factor on every element of a row (``takes_row_weight``).
            pos_targets: with ``targets=None``, the [P] targets at ``pos_index``; every other target is 0.
        Returns:
            float32 scalar, the summed loss.
        """
        raise NotImplementedError

    def gamma_per_class(self):
        """The focusing factor per class, [C] float32, for a loss that has one (EFL, EQFL); else None."""
        return None

    def check_call(self, targets, row_weight, pos_targets):
        """Raise ValueError when the call asks for something this loss does not declare."""
        if targets is None and not self.takes_pos_targets:
            raise ValueError(f"{type(self).__name__} needs dense [N, C] targets (it does not take pos_targets)")
        if row_weight is not None and not self.takes_row_weight:
            raise ValueError(f"{type(self).__name__} does not apply a row_weight")
        if targets is not None and pos_targets is not None:
            raise ValueError("give the targets either dense or sparse (pos_targets), not both")


def check_background_weight(background_weight, anchor_based, loss_class):
    """The rule for YOLOX*'s ``background_weight`` (an extra factor on the loss of background anchors), in
    one place for the head and the experiment checks: a weight other than 1 needs the anchors of YOLOX* and a
    loss that applies row weights. ``loss_class``: the loss's class (or the loss). Raises ValueError."""
    if background_weight != 1.0 and not (anchor_based and loss_class.takes_row_weight):
        raise ValueError(
            f"background_weight {background_weight} needs YOLOX* (anchor_scales, assigner atss) and a cls_loss of "
            f"fl, qfl, efl or eqfl; got {'YOLOX*' if anchor_based else 'YOLOX (anchor_scales None)'} with "
            f"{getattr(loss_class, '__name__', type(loss_class).__name__)}: set background_weight 1.0")
