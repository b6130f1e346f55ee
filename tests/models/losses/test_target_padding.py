"""The YOLOX* losses do not depend on how far the targets are padded.

``YOLOXHead._drop_padding_columns`` cuts the target rows that are padding in every image (LVIS pads to 500)
before ATSS and the background test: losses, logit and parameter gradients and EFL statistics must be
bit for bit those of the untrimmed targets.
"""
import copy

import pytest
import torch

from yolox.models import YOLOXHead
from yolox.models.assigners import ATSSAssigner
from yolox.models.losses import EqualizedFocalLoss, commit_all_grad_stats

C = 5
INPUT = 64


def _head(background_weight):
    loss = EqualizedFocalLoss(C, stats_layout="released", anchors_per_location=2)
    return YOLOXHead(C, width=0.25, anchor_scales=(3, 4), assigner=ATSSAssigner(topk=18, iou_offset=1.0),
                     cls_loss=loss, box_loss_weight=1.0, l1_loss_weight=1.0, quality_loss_weight=1.0,
                     background_weight=background_weight).train()


def _labels(max_labels):
    """3 images padded to max_labels rows: 3 boxes, none, and 2 boxes with a padding row between them."""
    labels = torch.zeros(3, max_labels, 5)
    labels[0, :3] = torch.tensor([[1, 20, 24, 18, 22], [3, 44, 38, 30, 26], [0, 30, 30, 56, 50]])
    labels[2, 0] = torch.tensor([2, 32, 32, 40, 40])
    labels[2, 4] = torch.tensor([4, 12, 50, 16, 12])
    return labels


def _step(head, feats, labels):
    feats = [f.clone().requires_grad_(True) for f in feats]
    head.zero_grad(set_to_none=True)
    out = head(feats, labels)
    out["total_loss"].backward()
    commit_all_grad_stats(head)
    grads = [f.grad for f in feats] + [p.grad for p in head.parameters() if p.grad is not None]
    return out, grads


def test_drop_padding_columns():
    labels = _labels(9)
    assert torch.equal(YOLOXHead._drop_padding_columns(labels), labels[:, :5])
    assert YOLOXHead._drop_padding_columns(torch.zeros(2, 7, 5)).shape == (2, 0, 5)
    assert YOLOXHead._drop_padding_columns(torch.zeros(2, 0, 5)).shape == (2, 0, 5)


@pytest.mark.parametrize("background_weight", [1.0, 4.0])
@pytest.mark.parametrize("max_labels", [5, 500])
def test_yolox_star_losses_equal_with_untrimmed_padding(background_weight, max_labels):
    torch.manual_seed(0)
    head = _head(background_weight)
    untrimmed = copy.deepcopy(head)
    untrimmed._drop_padding_columns = lambda labels: labels  # every padding row goes to ATSS, as before
    gen = torch.Generator().manual_seed(1)
    feats = [torch.randn(3, c, INPUT // s, INPUT // s, generator=gen)
             for c, s in zip((64, 128, 256), (8, 16, 32))]
    labels = _labels(max_labels)
    for _ in range(2):  # the second step with the first one's EFL statistics
        out, grads = _step(head, feats, labels)
        ref_out, ref_grads = _step(untrimmed, feats, labels)
        assert out["num_fg"] > 0
        for key in ref_out:
            assert torch.equal(out[key], ref_out[key]), key
        assert len(grads) == len(ref_grads) and all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
    for key in ("pos_grad", "neg_grad", "pos_neg"):
        assert torch.equal(getattr(head.cls_loss, key), getattr(untrimmed.cls_loss, key))


def test_no_boxes_at_all():
    head = _head(1.0)
    feats = [torch.randn(2, c, INPUT // s, INPUT // s) for c, s in zip((64, 128, 256), (8, 16, 32))]
    out = head(feats, torch.zeros(2, 500, 5))
    assert out["num_fg"] == 0 and torch.isfinite(out["total_loss"])
    out["total_loss"].backward()


def test_padding_is_kept_off_the_cpu():
    """On an accelerator the trim would cost a host synchronisation per step: the targets pass unchanged."""
    labels = _labels(9).to("meta")
    assert YOLOXHead._drop_padding_columns(labels) is labels
