"""Post-processing against straightforward reference implementations."""
import pytest
import torch
import torchvision

from yolox.utils import cxcywh2xyxy, multilabel_postprocess, postprocess, xyxy2cxcywh, xyxy2xywh


def random_predictions(b, n, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(b, n, 2, generator=g) * 200
    wh = torch.rand(b, n, 2, generator=g) * 60 + 4
    obj = torch.rand(b, n, 1, generator=g)
    cls = torch.rand(b, n, c, generator=g) ** 3  # mostly low scores, a few high
    return torch.cat([xy, wh, obj, cls], dim=-1)


def reference_multilabel(pred, num_classes, conf, nms, max_det, pre_nms_topk):
    """Per class: threshold, per-class NMS; then merge and keep the best max_det (plain loops)."""
    out = []
    for image in pred:
        scores = image[:, 5:5 + num_classes] * image[:, 4:5]
        cand = [(float(scores[a, c]), a, c) for a, c in (scores >= conf).nonzero().tolist()]
        cand = sorted(cand, reverse=True)[:pre_nms_topk]
        kept = []
        for c in range(num_classes):
            rows = [(s, a) for s, a, cc in cand if cc == c]
            if not rows:
                continue
            boxes = cxcywh2xyxy(image[[a for _, a in rows], :4])
            keep = torchvision.ops.nms(boxes, torch.tensor([s for s, _ in rows]), nms)
            kept += [(rows[k][0], rows[k][1], c) for k in keep.tolist()]
        out.append(sorted(kept, reverse=True)[:max_det])
    return out


def test_multilabel_postprocess_matches_reference():
    pred = random_predictions(2, 300, 12)
    ours = multilabel_postprocess(pred, 12, conf_thre=0.05, nms_thre=0.5, max_det=40, pre_nms_topk=500)
    ref = reference_multilabel(pred, 12, 0.05, 0.5, 40, 500)
    for b in range(2):
        assert ours[b].shape == (len(ref[b]), 7)
        scores = ours[b][:, 4] * ours[b][:, 5]
        torch.testing.assert_close(scores, torch.tensor([s for s, _, _ in ref[b]]))
        assert ours[b][:, 6].long().tolist() == [c for _, _, c in ref[b]]
        torch.testing.assert_close(ours[b][:, :4], cxcywh2xyxy(pred[b, [a for _, a, _ in ref[b]], :4]))


def test_multilabel_reports_one_box_for_several_classes():
    pred = torch.zeros(1, 1, 5 + 3)
    pred[0, 0] = torch.tensor([50, 50, 20, 20, 1.0, 0.9, 0.8, 0.01])
    out = multilabel_postprocess(pred, 3, conf_thre=0.05, nms_thre=0.5)[0]
    assert out[:, 6].tolist() == [0.0, 1.0]


def test_multilabel_pre_nms_topk_and_empty():
    pred = random_predictions(1, 200, 5)
    out = multilabel_postprocess(pred, 5, conf_thre=0.0, nms_thre=1.0, max_det=1000, pre_nms_topk=17)[0]
    assert out.shape[0] == 17
    assert multilabel_postprocess(pred, 5, conf_thre=2.0, nms_thre=0.5)[0] is None


def test_postprocess_single_label_reference():
    pred = random_predictions(1, 150, 4, seed=3)
    ours = postprocess(pred.clone(), 4, conf_thre=0.1, nms_thre=0.45)[0]
    image = pred[0]
    conf, cls = image[:, 5:].max(1)
    keep = image[:, 4] * conf >= 0.1
    boxes = cxcywh2xyxy(image[keep, :4])
    scores = (image[keep, 4] * conf[keep])
    ref_rows = []
    for c in range(4):
        m = cls[keep] == c
        idx = m.nonzero().squeeze(1)
        k = torchvision.ops.nms(boxes[idx], scores[idx], 0.45)
        ref_rows += [(float(scores[idx][j]), int(c)) for j in k]
    ref_rows.sort(reverse=True)
    torch.testing.assert_close(ours[:, 4] * ours[:, 5], torch.tensor([s for s, _ in ref_rows]))
    assert ours[:, 6].long().tolist() == [c for _, c in ref_rows]
    # the input is not modified in place (upstream's version rewrites it)
    torch.testing.assert_close(pred, random_predictions(1, 150, 4, seed=3))


def test_box_conversions():
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(xyxy2cxcywh(xyxy), torch.tensor([[20.0, 40.0, 20.0, 40.0]]))
    torch.testing.assert_close(cxcywh2xyxy(xyxy2cxcywh(xyxy)), xyxy)
    torch.testing.assert_close(xyxy2xywh(xyxy), torch.tensor([[10.0, 20.0, 20.0, 40.0]]))


# ----------------------------------------------------------------------------- YOLOX*'s released inference


def _released_predictor(prediction, num_classes, sizes, image_hw, pre_nms_topk, nms_thre, max_det):
    """The authors' inference written out (ModelTC/EOD base_multicls + retina_multicls): per level clip, drop
    boxes with no area, top-k of the flattened [anchors, classes] scores, then per-class NMS via boxes
    shifted by class * 4096, sorted by score, first max_det."""
    from torchvision.ops import nms

    rows = []
    for i, pred in enumerate(prediction):
        h, w = image_hw[i]
        xyxy = torch.cat([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)
        xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, w)
        xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, h)
        scores = pred[:, 5:] * pred[:, 4:5]
        start, cands = 0, []
        for size in sizes:
            boxes, sc = xyxy[start:start + size], scores[start:start + size]
            index = torch.arange(start, start + size)
            start += size
            keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
            boxes, sc, index = boxes[keep], sc[keep], index[keep]
            flat, order = sc.flatten().sort(descending=True)
            k = min(pre_nms_topk, boxes.shape[0])
            for s, o in zip(flat[:k], order[:k]):
                anchor, cls = int(o) // num_classes, int(o) % num_classes
                cands.append((float(s), index[anchor].item(), cls, boxes[anchor]))
        cands.sort(key=lambda c: -c[0])
        boxes = torch.stack([c[3] for c in cands])
        cls = torch.tensor([c[2] for c in cands], dtype=torch.float32)
        scores = torch.tensor([c[0] for c in cands])
        kept = nms(boxes + cls[:, None] * 4096, scores, nms_thre)[:max_det]
        rows.append([(cands[k][1], cands[k][2]) for k in kept.tolist()])
    return rows


def test_level_topk_postprocess_equals_the_released_predictor():
    from yolox.utils import level_sizes, level_topk_postprocess

    gen = torch.Generator().manual_seed(0)
    num_classes, input_hw = 6, (64, 96)
    sizes = level_sizes(input_hw, (8, 16, 32), anchors_per_location=2)
    assert sizes == [2 * 8 * 12, 2 * 4 * 6, 2 * 2 * 3]
    n = sum(sizes)
    centres = torch.rand(2, n, 2, generator=gen) * torch.tensor([110.0, 80.0]) - 5  # some outside the image
    wh = torch.rand(2, n, 2, generator=gen) * 30 + 2
    pred = torch.cat([centres, wh, torch.rand(2, n, 1 + num_classes, generator=gen)], dim=2)
    image_hw = [(60.0, 90.0), (64.0, 70.0)]
    out = level_topk_postprocess(pred, num_classes, conf_thre=0.0, nms_thre=0.5, max_det=25, input_hw=input_hw,
                                 image_hw=image_hw, anchors_per_location=2, pre_nms_topk=40)
    expected = _released_predictor(pred, num_classes, sizes, image_hw, 40, 0.5, 25)
    for i in range(2):
        assert out[i].shape == (25, 7)
        # which (anchor, class) pairs, in order: match the rows' boxes, scores and classes
        for row, (anchor, cls) in zip(out[i], expected[i]):
            assert int(row[6]) == cls
            torch.testing.assert_close(row[4] * row[5], pred[i, anchor, 4] * pred[i, anchor, 5 + cls])
        h, w = image_hw[i]
        assert (out[i][:, 0] >= 0).all() and (out[i][:, 2] <= w).all() and (out[i][:, 3] <= h).all()
    # The per-level cut: with top-1 per level at most 3 candidates survive.
    few = level_topk_postprocess(pred, num_classes, input_hw=input_hw, image_hw=image_hw, anchors_per_location=2,
                                 pre_nms_topk=1)
    assert all(o.shape[0] <= 3 for o in few)


def test_level_topk_postprocess_refuses_a_wrong_input_size():
    from yolox.utils import level_topk_postprocess

    pred = torch.rand(1, 2 * (64 + 16 + 4), 8)
    level_topk_postprocess(pred, 3, input_hw=(64, 64), anchors_per_location=2)
    with pytest.raises(ValueError, match="do not match"):
        level_topk_postprocess(pred, 3, input_hw=(96, 64), anchors_per_location=2)
