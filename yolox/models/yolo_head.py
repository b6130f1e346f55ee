r"""The decoupled YOLOX head, serving both supervisors.

One set of convolutions (the upstream key names ``stems``, ``cls_convs``, ``reg_convs``, ``cls_preds``,
``reg_preds``, ``obj_preds``) and two ways of supervising them, chosen by the experiment:

- **YOLOX** (``anchor_scales=None``): one anchor point per location, boxes coded as (offset from the
  cell corner, log size) in stride units, SimOTA assignment, an objectness branch trained on all
  locations, the classification loss on foreground locations only (IoU-weighted one-hot targets), IoU
  loss, and an L1 loss on the raw outputs once ``use_l1`` is switched on for the final no-aug epochs.
- **YOLOX\*** (``anchor_scales=(3, 4)``): square anchors of side ``stride * s`` per location, boxes coded
  as anchor-relative deltas, ATSS assignment, the third branch predicting the IoU of the box with its
  target (score at inference = cls x IoU), the classification loss on every anchor (so focal-type and
  equalized losses see the negatives), GIoU on decoded boxes + L1 on deltas from the first iteration.

Anchor layout: level-major, then location (row-major), then anchor; with ``na`` anchors per location
anchor ``(y * W + x) * na + k`` of a level. The prediction convs emit ``na * C`` (anchor-major)
channels, so for ``na = 1`` the layout and the weights are exactly upstream YOLOX's.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from yolox.utils.boxes import cxcywh2xyxy, paired_box_iou
from yolox.utils.dist import local_normalizer, mean_normalizer, rank_average_normalizer

from .assigners import ATSSAssigner, SimOTAAssigner
from .losses import IOUloss, SigmoidBCELoss, check_background_weight
from .network_blocks import BaseConv, PredictionConv, conv_block

__all__ = ["YOLOXHead"]

MAX_LOG_SCALE = math.log(1000.0 / 16)


class YOLOXHead(nn.Module):
    """Decoupled head; see the module docstring for the two supervisors.

    Args:
        num_classes: C.
        width: width multiplier; the head has ``int(256 * width)`` channels.
        strides / in_channels: of the three input feature maps (``in_channels`` before ``width``).
        anchor_scales: None for YOLOX's anchor points, e.g. ``(3, 4)`` for YOLOX*'s square anchors.
        assigner: a ``SimOTAAssigner`` (YOLOX) or ``ATSSAssigner`` (YOLOX*); defaults follow
            ``anchor_scales``.
        cls_loss: a classification loss module from :mod:`yolox.models.losses` (default sigmoid BCE).
            It is a submodule, so its gradient statistics are saved with the model.
        box_loss_weight: weight of the IoU (YOLOX) or GIoU (YOLOX*) loss.
        l1_loss_weight / quality_loss_weight / cls_loss_weight: weights of the other terms.
        background_weight: YOLOX* only; the classification loss of a background anchor (not foreground,
            centre outside every gt box of its image) counts this many times. 1 = the paper's loss; K > 1
            emulates K times more background per object (a small dataset standing in for LVIS).
    """

    def __init__(self, num_classes, width=1.0, strides=(8, 16, 32), in_channels=(256, 512, 1024), act="silu",
                 depthwise=False, anchor_scales=None, assigner=None, cls_loss=None, box_loss_weight=5.0,
                 l1_loss_weight=1.0, quality_loss_weight=1.0, cls_loss_weight=1.0, background_weight=1.0):
        super().__init__()
        self.num_classes = num_classes
        self.strides = list(strides)
        self.anchor_scales = tuple(anchor_scales) if anchor_scales else None
        self.num_anchors = len(self.anchor_scales) if self.anchor_scales else 1
        self.decode_in_inference = True
        # YOLOX turns the L1 loss on for the final no-augmentation epochs; YOLOX* always uses it.
        self.use_l1 = self.anchor_scales is not None
        self.assigner = assigner or (ATSSAssigner(topk=9) if self.anchor_scales else SimOTAAssigner())
        self.cls_loss = cls_loss if cls_loss is not None else SigmoidBCELoss()
        self.box_loss_weight = box_loss_weight
        self.l1_loss_weight = l1_loss_weight
        self.quality_loss_weight = quality_loss_weight
        self.cls_loss_weight = cls_loss_weight
        self.background_weight = float(background_weight)
        check_background_weight(self.background_weight, self.anchor_scales is not None, self.cls_loss)
        self.iou_loss = IOUloss(reduction="none")

        Conv = conv_block(depthwise)
        hidden = int(256 * width)
        na = self.num_anchors
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for c in in_channels:
            self.stems.append(BaseConv(int(c * width), hidden, 1, 1, act=act))
            self.cls_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act)))
            self.reg_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act)))
            self.cls_preds.append(PredictionConv(hidden, na * num_classes))
            self.reg_preds.append(nn.Conv2d(hidden, na * 4, 1, 1, 0))
            self.obj_preds.append(nn.Conv2d(hidden, na, 1, 1, 0))
        self._anchor_cache = {}

    @property
    def anchor_based(self):
        return self.anchor_scales is not None

    def initialize_biases(self, prior_prob):
        """Start every class and objectness/IoU probability at ``prior_prob`` (focal-loss style init)."""
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(conv.bias, bias)

    # ------------------------------------------------------------------ anchors and decoding
    def _level_anchors(self, h, w, stride, device, dtype):
        """Per-anchor metadata of one level: grid (x, y) ``[h*w*na, 2]`` and anchor sides ``[h*w*na]``."""
        key = (h, w, stride, device, dtype)
        if key not in self._anchor_cache:
            ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
            grid = torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2).to(dtype)
            grid = grid.expand(-1, self.num_anchors, 2).reshape(-1, 2)
            if self.anchor_based:
                sides = torch.tensor(self.anchor_scales, device=device, dtype=dtype) * stride
                sides = sides.repeat(h * w)
            else:
                sides = torch.full((h * w,), float(stride), device=device, dtype=dtype)
            self._anchor_cache[key] = (grid, sides)
        return self._anchor_cache[key]

    @staticmethod
    def anchor_centers(grid, stride):
        """Anchor (grid-cell) centres ``[N, 2]`` in input pixels from the metadata of :meth:`_level_anchors`."""
        return (grid + 0.5) * stride[:, None]

    @staticmethod
    def anchor_boxes(grid, stride, side):
        """Square anchors ``[N, 4]`` xyxy in input pixels from the metadata of :meth:`_level_anchors`."""
        centers = YOLOXHead.anchor_centers(grid, stride)
        return torch.cat([centers - side[:, None] / 2, centers + side[:, None] / 2], dim=1)

    def _flatten(self, pred, channels):
        """``[B, na * channels, H, W]`` -> ``[B, H * W * na, channels]`` in the anchor layout above."""
        b, _, h, w = pred.shape
        return pred.view(b, self.num_anchors, channels, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, channels)

    def decode(self, box_raw, grid, strides, sides):
        """Raw box outputs ``[B, N, 4]`` -> boxes ``[B, N, 4]`` cxcywh in input pixels."""
        if self.anchor_based:
            # Deltas in anchor-side units, unnormalised, so the L1 term has YOLOX's scale (about 1 per box).
            xy = self.anchor_centers(grid, strides) + box_raw[..., :2] * sides[:, None]
            wh = sides[:, None] * torch.exp(box_raw[..., 2:4].clamp(max=MAX_LOG_SCALE))
        else:
            xy = (box_raw[..., :2] + grid) * strides[:, None]
            wh = torch.exp(box_raw[..., 2:4]) * strides[:, None]
        return torch.cat([xy, wh], dim=-1)

    # ------------------------------------------------------------------ forward
    def forward(self, xin, labels=None, imgs=None):
        """Args:
            xin: the three neck features ``[B, c_k, H/s_k, W/s_k]``.
            labels: training targets ``[B, max_labels, 5]`` (class, cx, cy, w, h) in input pixels; rows
                with zero width or height are padding.

        Returns:
            training: dict of scalar losses and ``num_fg`` (:meth:`yolox_losses`: upstream's ``iou_loss``,
            ``l1_loss``, ``conf_loss``, ``cls_loss``; :meth:`yolox_star_losses`: ``giou_loss``, ``l1_loss``,
            ``iou_branch_loss``, ``cls_loss``; both with ``total_loss``); eval: ``[B, N, 5 + C]`` (cx, cy, w, h in pixels,
            objectness/IoU probability, class probabilities), or the raw logits in the same layout when
            ``decode_in_inference`` is False.
        """
        box_raw, quality_raw, cls_raw, grid, stride, side, num_per_level = self._predict(xin)
        if self.training:
            return self.get_losses(box_raw, quality_raw.squeeze(-1), cls_raw, grid, stride, side, num_per_level, labels)

        if not self.decode_in_inference:
            return torch.cat([box_raw, quality_raw.sigmoid(), cls_raw.sigmoid()], dim=-1)
        boxes = self.decode(box_raw.float(), grid, stride, side).to(box_raw.dtype)
        return torch.cat([boxes, quality_raw.sigmoid(), cls_raw.sigmoid()], dim=-1)

    def _predict(self, xin):
        """The levels' raw outputs in the anchor layout: box_raw ``[B, N, 4]``, quality_raw ``[B, N, 1]``, cls_raw
        ``[B, N, C]``, and per anchor its grid cell ``[N, 2]``, stride ``[N]`` and side ``[N]``; the anchors per
        level."""
        box_raw, quality_raw, cls_raw, grids, strides, sides = [], [], [], [], [], []
        for k, (x, stride) in enumerate(zip(xin, self.strides)):
            x = self.stems[k](x)
            cls_out = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            reg_out = self.reg_preds[k](reg_feat)
            obj_out = self.obj_preds[k](reg_feat)
            h, w = x.shape[-2:]
            grid, side = self._level_anchors(h, w, stride, x.device, torch.float32)
            box_raw.append(self._flatten(reg_out, 4))
            quality_raw.append(self._flatten(obj_out, 1))
            cls_raw.append(self._flatten(cls_out, self.num_classes))
            grids.append(grid)
            sides.append(side)
            strides.append(torch.full((grid.shape[0],), float(stride), device=x.device))
        box_raw = torch.cat(box_raw, 1)
        quality_raw = torch.cat(quality_raw, 1)
        cls_raw = torch.cat(cls_raw, 1)
        grid, stride, side = torch.cat(grids), torch.cat(strides), torch.cat(sides)
        return box_raw, quality_raw, cls_raw, grid, stride, side, [g.shape[0] for g in grids]

    @torch.no_grad()
    def assign(self, xin, labels):
        """The label assignment that the training losses of this batch would use, without the losses (e.g. to
        look at it: ``tools/visualize_assign.py``).

        Args:
            xin: the three neck features; labels: ``[B, max_labels, 5]`` targets as for :meth:`forward`.
        Returns:
            dict: ``fg`` ``[B, N]`` bool (the positives, in ``fg.nonzero()`` order below), ``gt_rows`` ``[F]``
            (each positive's row in ``labels``), ``gt_boxes`` ``[F, 4]`` cxcywh, ``gt_classes`` ``[F]``, ``ious``
            ``[F]`` (IoU of the positive's predicted box with its gt: YOLOX*'s quality target), and the anchors'
            ``grid`` ``[N, 2]``, ``stride`` ``[N]``, ``side`` ``[N]`` and ``num_per_level``.
        """
        box_raw, quality_raw, cls_raw, grid, stride, side, num_per_level = self._predict(xin)
        boxes = self.decode(box_raw.float(), grid, stride, side)
        labels = labels.float()
        if self.anchor_based:
            targets = self._atss_targets(boxes, grid, stride, side, num_per_level, labels)
        else:
            targets = self._simota_targets(boxes, quality_raw.squeeze(-1), cls_raw, grid, stride, labels)
        fg, gt_boxes, gt_classes, ious, gt_rows = targets
        return {"fg": fg, "gt_rows": gt_rows, "gt_boxes": gt_boxes, "gt_classes": gt_classes, "ious": ious,
                "grid": grid, "stride": stride, "side": side, "num_per_level": num_per_level}

    # ------------------------------------------------------------------ training targets
    @staticmethod
    def _valid_labels(labels):
        """Padding rows of the target tensor have zero width or height."""
        return (labels[..., 3] > 0) & (labels[..., 4] > 0)

    @staticmethod
    def _drop_padding_columns(labels):
        """``[B, G, 5]`` targets -> ``[B, G', 5]``, the first G' rows of each image, where G' - 1 is the last
        row that is a box in any image (G' = 0 without boxes).

        Why: the targets are padded to ``max_labels`` rows (500 for LVIS), and the batched ATSS (and the
        background test) work on every row, boxes or padding. The rows dropped are padding in every image,
        which ATSS never assigns, and the kept rows keep their indices, so the targets are the same. Only on
        the CPU: finding G' reads a value on the host, a synchronisation a GPU step should not pay for work
        that is cheap there.
        """
        if labels.device.type != "cpu":
            return labels
        valid = YOLOXHead._valid_labels(labels).any(dim=0)  # [G]: a box in some image
        count = int(valid.nonzero().max()) + 1 if bool(valid.any()) else 0
        return labels[:, :count]

    @torch.no_grad()
    def _simota_targets(self, boxes, quality_raw, cls_raw, grid, stride, labels):
        """Per image SimOTA. Returns fg mask ``[B, N]``, matched gt boxes ``[F, 4]`` cxcywh, labels ``[F]``,
        the IoU of each foreground prediction with its gt ``[F]`` and the gt's row in ``labels`` ``[F]``."""
        valid = self._valid_labels(labels)
        centers = self.anchor_centers(grid, stride)
        fg_masks, gt_boxes, gt_classes, ious, rows = [], [], [], [], []
        for b in range(boxes.shape[0]):
            gts = labels[b][valid[b]]
            fg = torch.zeros(boxes.shape[1], dtype=torch.bool, device=boxes.device)
            if gts.shape[0] > 0:
                res = self.assigner.assign(
                    boxes[b], cls_raw[b], quality_raw[b], centers, stride, gts[:, 1:5], gts[:, 0].long()
                )
                fg = res.fg_mask
                gt_boxes.append(gts[res.matched_gt_inds, 1:5])
                gt_classes.append(gts[res.matched_gt_inds, 0].long())
                ious.append(res.matched_ious)
                rows.append(valid[b].nonzero().squeeze(1)[res.matched_gt_inds])
            fg_masks.append(fg)
        return self._stack_targets(fg_masks, gt_boxes, gt_classes, ious, rows, boxes)

    @torch.no_grad()
    def _atss_targets(self, boxes, grid, stride, side, num_per_level, labels):
        """ATSS over the whole batch. Same returns as :meth:`_simota_targets`."""
        valid = self._valid_labels(labels)
        anchors = self.anchor_boxes(grid, stride, side)
        gt_xyxy = cxcywh2xyxy(labels[..., 1:5].float())
        assigned = self.assigner.assign_batch(anchors, num_per_level, gt_xyxy, valid)  # [B, N]
        fg = assigned >= 0
        b_idx, a_idx = fg.nonzero(as_tuple=True)
        rows = assigned[b_idx, a_idx]
        gt_rows = labels[b_idx, rows]
        gt_boxes = gt_rows[:, 1:5].float()
        pred = boxes[b_idx, a_idx]
        ious = paired_box_iou(cxcywh2xyxy(pred), cxcywh2xyxy(gt_boxes))
        return fg, gt_boxes, gt_rows[:, 0].long(), ious, rows

    @staticmethod
    def _stack_targets(fg_masks, gt_boxes, gt_classes, ious, rows, like):
        fg = torch.stack(fg_masks)
        if gt_boxes:
            return fg, torch.cat(gt_boxes).float(), torch.cat(gt_classes), torch.cat(ious).float(), torch.cat(rows)
        no_index = torch.zeros(0, dtype=torch.long, device=like.device)
        return fg, like.new_zeros((0, 4)).float(), no_index, like.new_zeros(0).float(), no_index

    # ------------------------------------------------------------------ losses
    def get_losses(self, box_raw, quality_raw, cls_raw, grid, stride, side, num_per_level, labels):
        """The training losses of the experiment's supervisor (:meth:`yolox_losses` or :meth:`yolox_star_losses`)."""
        box_raw_f = box_raw.float()
        boxes = self.decode(box_raw_f, grid, stride, side)  # [B, N, 4] cxcywh
        labels = labels.float()
        if self.anchor_based:
            return self.yolox_star_losses(box_raw_f, boxes, quality_raw, cls_raw, grid, stride, side, num_per_level,
                                          labels)
        return self.yolox_losses(box_raw_f, boxes, quality_raw, cls_raw, grid, stride, labels)

    def yolox_losses(self, box_raw, boxes, obj_raw, cls_raw, grid, stride, labels):
        """Upstream YOLOX: SimOTA; IoU loss x ``box_loss_weight``, objectness BCE on every location and the
        classification loss on foreground locations (IoU-weighted one-hot targets), each summed and divided
        by the foreground count (averaged over ranks); the L1 loss on the raw outputs once ``use_l1`` is on.

        Args:
            box_raw: ``[B, N, 4]`` float32 raw box outputs; boxes: their decoding, cxcywh pixels.
            obj_raw: ``[B, N]`` objectness logits; cls_raw: ``[B, N, C]`` class logits.
        Returns:
            dict with upstream's keys ``total_loss``, ``iou_loss``, ``l1_loss``, ``conf_loss``, ``cls_loss``
            and ``num_fg`` (foreground locations per image).
        """
        fg, gt_boxes, gt_classes, ious, _ = self._simota_targets(
            boxes.detach(), obj_raw.detach(), cls_raw.detach(), grid, stride, labels
        )
        num_fg = fg.sum()
        # The foreground count averaged over ranks: DDP's mean of the per-rank losses then equals the
        # single-process loss over the whole batch.
        normalizer = mean_normalizer(num_fg)
        loss_cls = self.classification_loss(cls_raw[fg], torch.arange(gt_classes.shape[0], device=fg.device),
                                            gt_classes, ious, normalizer)
        loss_iou = self.iou_loss(boxes[fg], gt_boxes).sum()
        loss_obj = F.binary_cross_entropy_with_logits(obj_raw.float(), fg.to(torch.float32), reduction="sum")
        if self.use_l1:
            l1_target = self._encode_yolox(gt_boxes, grid, stride, fg)
            loss_l1 = F.l1_loss(box_raw[fg], l1_target, reduction="sum") / normalizer
        else:
            loss_l1 = box_raw.new_zeros(())
        terms = {
            "iou_loss": self.box_loss_weight * loss_iou / normalizer,
            "l1_loss": self.l1_loss_weight * loss_l1,
            "conf_loss": self.quality_loss_weight * loss_obj / normalizer,
            "cls_loss": self.cls_loss_weight * loss_cls / normalizer,
        }
        return self._with_total(terms, num_fg, fg)

    def yolox_star_losses(self, box_raw, boxes, iou_raw, cls_raw, grid, stride, side, num_per_level, labels):
        """YOLOX* as the authors released it (ModelTC/EOD ``retina_post_iou``; docs/recipe.md), per rank:

        - classification: the loss over every anchor and class, summed, / n_pos;
        - ``giou_loss``: sum over positives of (1 - GIoU) x q, / max(sum of q over all ranks, 1) x world size,
          where q is the IoU of the positive's detached decoded box with its gt;
        - ``l1_loss``: mean over the elements of the anchor deltas, sum |d - d_gt| / (4 x positives here);
        - ``iou_branch_loss``: BCE of the IoU branch against q over the positives, / n_pos;

        with n_pos = max(positives over all ranks, 1) / world size. Each term is then multiplied by its
        weight (``box_loss_weight``, ``l1_loss_weight``, ``quality_loss_weight``, ``cls_loss_weight``; 1 in the
        released configs). Shapes as in :meth:`yolox_losses` (``iou_raw``: ``[B, N]`` IoU-branch logits).
        """
        labels = self._drop_padding_columns(labels)
        fg, gt_boxes, gt_classes, ious, _ = self._atss_targets(boxes.detach(), grid, stride, side, num_per_level, labels)
        num_fg = fg.sum()
        pos_normalizer = rank_average_normalizer(num_fg)
        # Every anchor is a classification sample: focal-type losses need the negatives.
        row_weight = None
        if self.background_weight != 1.0:
            background = ~fg & ~self._centre_in_any_gt(grid, stride, labels)
            row_weight = (1.0 + (self.background_weight - 1.0) * background.float()).reshape(-1)
        loss_cls = self.classification_loss(cls_raw.reshape(-1, self.num_classes), fg.reshape(-1).nonzero().squeeze(1),
                                            gt_classes, ious, pos_normalizer, row_weight)

        giou = torchvision.ops.generalized_box_iou_loss(cxcywh2xyxy(boxes[fg]), cxcywh2xyxy(gt_boxes), reduction="none")
        loss_giou = (giou * ious).sum() / rank_average_normalizer(ious.sum())
        l1_target = self._encode_deltas(gt_boxes, grid, stride, side, fg)
        loss_l1 = F.l1_loss(box_raw[fg], l1_target, reduction="sum") / local_normalizer(l1_target.numel())
        loss_iou_branch = F.binary_cross_entropy_with_logits(iou_raw[fg].float(), ious, reduction="sum")
        terms = {
            "giou_loss": self.box_loss_weight * loss_giou,
            "l1_loss": self.l1_loss_weight * loss_l1,
            "iou_branch_loss": self.quality_loss_weight * loss_iou_branch / pos_normalizer,
            "cls_loss": self.cls_loss_weight * loss_cls / pos_normalizer,
        }
        return self._with_total(terms, num_fg, fg)

    def classification_loss(self, logits, rows, classes, ious, normalizer, row_weight=None):
        """The classification loss, called the one way of :class:`~yolox.models.losses.ClassificationLoss` for
        both supervisors; returns its sum (not normalised).

        Args:
            logits: [N, C] class logits (YOLOX: the foreground locations'; YOLOX*: every anchor's).
            rows, classes: [F] the foreground rows of ``logits`` and their gt classes: the positives. A matched
                anchor whose box does not overlap its gt yet has quality 0 but is still a positive for the
                gradient statistics (as in the official EQFL); they cover every non-zero target, so the loss
                needs no [N, C] search.
            ious: [F] float32 IoU of each foreground prediction with its gt: the positives' target for a loss
                with ``quality_targets``, else the target is 1.
            normalizer: n_pos, passed on (analytic gradient statistics divide by it).
            row_weight: None or [N] factor per row (YOLOX*'s background weight).
        """
        loss = self.cls_loss
        values = ious if loss.quality_targets else torch.ones_like(ious)
        extra = {"pos_index": (rows, classes)}
        if row_weight is not None:
            extra["row_weight"] = row_weight
        if loss.takes_pos_targets:
            # Sparse targets: each foreground anchor's value at its class, 0 elsewhere, without the dense
            # float32 [N, C] tensor (about 1.3 GB at LVIS's 1203 classes, 640 px, batch 16).
            return loss(logits, None, normalizer, pos_targets=values, **extra)
        targets = logits.new_zeros(logits.shape, dtype=torch.float32)
        targets[rows, classes] = values
        return loss(logits, targets, normalizer, **extra)

    @staticmethod
    def _with_total(terms, num_fg, fg):
        total = sum(terms.values())
        return {"total_loss": total, **terms, "num_fg": num_fg.float() / max(fg.shape[0], 1)}

    @staticmethod
    def _centre_in_any_gt(grid, stride, labels):
        """Anchor centres ``[N, 2]`` against the valid gt boxes of each image -> ``[B, N]`` bool."""
        centers = YOLOXHead.anchor_centers(grid, stride)
        gt = cxcywh2xyxy(labels[..., 1:5].float())  # [B, G, 4]
        cx, cy = centers[None, :, None, 0], centers[None, :, None, 1]
        inside = (cx > gt[:, None, :, 0]) & (cx < gt[:, None, :, 2]) & (cy > gt[:, None, :, 1]) & (cy < gt[:, None, :, 3])
        return (inside & YOLOXHead._valid_labels(labels)[:, None, :]).any(dim=2)

    @staticmethod
    def _encode_yolox(gt_boxes, grid, stride, fg):
        """YOLOX's L1 target: the raw outputs that decode exactly to the gt box."""
        idx = fg.nonzero(as_tuple=True)[1]
        s = stride[idx][:, None]
        xy = gt_boxes[:, :2] / s - grid[idx]
        wh = torch.log(gt_boxes[:, 2:4] / s + 1e-8)
        return torch.cat([xy, wh], dim=1)

    @staticmethod
    def _encode_deltas(gt_boxes, grid, stride, side, fg):
        """Anchor-relative deltas of the gt boxes (the inverse of :meth:`decode`)."""
        idx = fg.nonzero(as_tuple=True)[1]
        centers = YOLOXHead.anchor_centers(grid[idx], stride[idx])
        sides = side[idx][:, None]
        d_xy = (gt_boxes[:, :2] - centers) / sides
        d_wh = torch.log(gt_boxes[:, 2:4].clamp(min=1e-3) / sides)
        return torch.cat([d_xy, d_wh], dim=1)
