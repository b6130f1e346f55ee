import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from yolox.models.assigners import ATSSAssigner
from yolox.utils.boxes import paired_box_iou

# Two levels along one row: four 10x10 anchors (centres x = 5, 15, 25, 35), two 20x20 anchors
# (centres x = 10, 30).
ROW_ANCHORS = torch.tensor([
    [0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10], [30, 0, 40, 10],
    [0, 0, 20, 20], [20, 0, 40, 20],
], dtype=torch.float32)
ROW_LEVELS = [4, 2]


def test_single_gt_by_hand():
    gt = torch.tensor([[8.0, 0.0, 22.0, 10.0]])  # centre (15, 5), area 140
    assigner = ATSSAssigner(topk=2)
    cands, ious, thr = assigner.candidates_and_threshold(ROW_ANCHORS, ROW_LEVELS, gt[None])
    # Level 0 distances 10, 0, 10, 20: anchor 1, then 0 and 2 tie at 10 -> the lower index 0.
    # Level 1 keeps both of its anchors.
    assert cands[0, 0].tolist() == [1, 0, 4, 5]
    expected_ious = [100 / 140, 20 / 220, 120 / 420, 20 / 520]
    assert torch.allclose(ious[0, 0], torch.tensor(expected_ious), atol=1e-6)
    mean = sum(expected_ious) / 4
    std = (sum((v - mean) ** 2 for v in expected_ious) / 3) ** 0.5
    assert thr.item() == pytest.approx(mean + std, abs=1e-6)
    assert thr.item() == pytest.approx(0.58934, abs=1e-4)
    # Only anchor 1 (IoU 0.714) passes the threshold; its centre (15, 5) is inside the gt.
    assigned = assigner.assign(ROW_ANCHORS, ROW_LEVELS, gt, torch.tensor([7]))
    assert assigned.dtype == torch.long
    assert assigned.tolist() == [-1, 0, -1, -1, -1, -1]


def test_candidate_with_centre_outside_the_box_is_rejected():
    # Small 4x4 anchors on level 0 (centres x = 2, 6, ..., 38) and two 30-wide anchors on level 1.
    small = torch.tensor([[4.0 * i, 3.0, 4.0 * i + 4, 7.0] for i in range(10)])
    big = torch.tensor([[0.0, 0.0, 30.0, 10.0], [30.0, 0.0, 60.0, 10.0]])
    anchors, levels = torch.cat([small, big]), [10, 2]
    assigner = ATSSAssigner(topk=2)

    # gt [0, 0, 14, 10]: IoUs of the candidates 16/140, 16/140, 140/300, 0 -> threshold ~0.377. The big
    # anchor passes it (0.467) but its centre x = 15 lies outside the gt (x2 = 14).
    gt = torch.tensor([[0.0, 0.0, 14.0, 10.0]])
    cands, ious, thr = assigner.candidates_and_threshold(anchors, levels, gt[None])
    big_pos = cands[0, 0].tolist().index(10)
    assert ious[0, 0, big_pos] >= thr[0, 0]
    assert (assigner.assign(anchors, levels, gt, torch.zeros(1)) == -1).all()

    # Widen the gt to x2 = 16: the same anchor now has its centre inside and is assigned.
    gt = torch.tensor([[0.0, 0.0, 16.0, 10.0]])
    assigned = assigner.assign(anchors, levels, gt, torch.zeros(1))
    assert (assigned >= 0).nonzero().squeeze(1).tolist() == [10]


def test_centre_on_the_border_is_not_inside():
    # One anchor centred exactly on the gt's right edge: never positive, whatever its IoU.
    anchors = torch.tensor([[0.0, 0.0, 20.0, 10.0], [100.0, 100.0, 110.0, 110.0], [200.0, 0.0, 210.0, 10.0]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assigner = ATSSAssigner(topk=9)
    assert assigner.assign(anchors, [3], gt, torch.zeros(1)).tolist() == [-1, -1, -1]
    # The centre must clear the sides by more than 0.01 px.
    wider = torch.tensor([0.0, 0.0, 1.0, 0.0])
    assert assigner.assign(anchors, [3], gt + 0.005 * wider, torch.zeros(1)).tolist() == [-1, -1, -1]
    assert assigner.assign(anchors, [3], gt + 0.02 * wider, torch.zeros(1)).tolist() == [0, -1, -1]


def test_anchor_inside_two_gts_goes_to_higher_iou():
    anchors = torch.tensor([[5.0, 5.0, 20.0, 20.0], [100.0, 100.0, 110.0, 110.0], [90.0, 0.0, 100.0, 10.0]])
    gt_a = [0.0, 0.0, 20.0, 20.0]  # IoU with anchor 0: 225 / 400, threshold 0.5123
    gt_b = [5.0, 5.0, 30.0, 30.0]  # IoU with anchor 0: 225 / 625, threshold 0.3278
    assigner = ATSSAssigner(topk=9)
    _, ious, thr = assigner.candidates_and_threshold(anchors, [3], torch.tensor([[gt_a, gt_b]]))
    assert (ious[0, :, 0] >= thr[0]).all()  # positive for both
    assert assigner.assign(anchors, [3], torch.tensor([gt_a, gt_b]), torch.zeros(2)).tolist() == [0, -1, -1]
    assert assigner.assign(anchors, [3], torch.tensor([gt_b, gt_a]), torch.zeros(2)).tolist() == [1, -1, -1]


def test_no_gt_is_all_background():
    assigner = ATSSAssigner(topk=2)
    assigned = assigner.assign(ROW_ANCHORS, ROW_LEVELS, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert assigned.tolist() == [-1] * 6
    batched = assigner.assign_batch(ROW_ANCHORS, ROW_LEVELS, torch.zeros(3, 0, 4), torch.zeros(3, 0, dtype=torch.bool))
    assert batched.shape == (3, 6) and (batched == -1).all()


def test_ties_between_anchors_of_one_location_go_to_the_lower_index():
    # Two anchors per location (sides 8 and 12) on a 3x3 grid of stride 8; the gt centre sits on the
    # centre location, so its two anchors tie at distance 0.
    anchors = grid_anchors([(3, 3, 8)], scales=(1.0, 1.5))
    gt = torch.tensor([[[8.0, 8.0, 16.0, 16.0]]])
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    cands = ATSSAssigner(topk=1).nearest_candidates(centers, [18], torch.tensor([[[12.0, 12.0]]]))
    assert cands.flatten().tolist() == [8]  # location 4, anchor 0
    cands = ATSSAssigner(topk=3).candidates_and_threshold(anchors, [18], gt)[0]
    # Then locations 1, 3, 5, 7 all tie at distance 8: location 1's anchors (2, 3) come first.
    assert cands.flatten().tolist() == [8, 9, 2]


def test_paired_iou_matches_box_iou():
    gen = torch.Generator().manual_seed(0)
    a, b = random_boxes(50, gen), random_boxes(50, gen)
    assert torch.allclose(paired_box_iou(a, b), box_iou(a, b).diagonal(), atol=1e-7)


def test_threshold_is_mean_plus_unbiased_std_numpy():
    gen = torch.Generator().manual_seed(1)
    anchors = grid_anchors([(8, 8, 8), (4, 4, 16)], scales=(3.0, 4.0))
    levels = [128, 32]
    gts = random_boxes(6, gen, size=64.0)
    cands, ious, thr = ATSSAssigner(topk=5).candidates_and_threshold(anchors, levels, gts[None])
    for g in range(gts.shape[0]):
        idx = cands[0, g].numpy()
        ref_ious = np_iou(anchors.numpy()[idx].astype(np.float64), gts[g].numpy().astype(np.float64))
        assert np.allclose(ious[0, g].numpy(), ref_ious, atol=1e-6)
        assert thr[0, g].item() == pytest.approx(ref_ious.mean() + ref_ious.std(ddof=1), abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    anchors = grid_anchors([(8, 8, 8), (4, 4, 16), (2, 2, 32)], scales=(3.0, 4.0))
    levels = [128, 32, 8]
    gts = random_boxes(10, gen, size=64.0)
    topk = 7
    assigned = ATSSAssigner(topk=topk).assign(anchors, levels, gts, torch.zeros(10, dtype=torch.long))
    expected = np_atss(anchors.numpy(), levels, gts.numpy(), topk)
    assert assigned.tolist() == expected.tolist()
    assert (assigned >= 0).any()


def test_batched_equals_per_image_loop():
    gen = torch.Generator().manual_seed(5)
    anchors = grid_anchors([(8, 8, 8), (4, 4, 16)], scales=(3.0, 4.0))
    levels = [128, 32]
    batch, max_gt = 4, 7
    gts = random_boxes(batch * max_gt, gen, size=64.0).view(batch, max_gt, 4)
    valid = torch.rand(batch, max_gt, generator=gen) < 0.6
    valid[0] = False  # an image without gts
    valid[1] = True
    valid[3, :3] = False
    gts[2][~valid[2]] = 0.0  # padding rows like the head's; image 3 keeps real-looking boxes in them
    assigner = ATSSAssigner(topk=6)
    batched = assigner.assign_batch(anchors, levels, gts, valid)
    assert batched.shape == (batch, anchors.shape[0])
    for b in range(batch):
        keep = valid[b].nonzero().squeeze(1)
        single = assigner.assign(anchors, levels, gts[b, keep], torch.zeros(len(keep)))
        expected = torch.where(single >= 0, keep[single.clamp(min=0)], -1) if len(keep) else single
        assert batched[b].tolist() == expected.tolist()
        assert set(batched[b][batched[b] >= 0].tolist()) <= set(keep.tolist())
    assert (batched[1] >= 0).any()
    # The invalid boxes of image 3 would take anchors if they were valid.
    assert (assigner.assign_batch(anchors, levels, gts[3:], torch.ones(1, max_gt, dtype=torch.bool))[0]
            .unsqueeze(1) == (~valid[3]).nonzero().squeeze(1)).any()


def test_low_precision_inputs_are_cast():
    gen = torch.Generator().manual_seed(7)
    anchors = grid_anchors([(8, 8, 8), (4, 4, 16)], scales=(3.0, 4.0)).half()
    gts = random_boxes(5, gen, size=64.0).bfloat16()
    assigner = ATSSAssigner(topk=5)
    out = assigner.assign(anchors, [128, 32], gts, torch.zeros(5))
    assert out.tolist() == assigner.assign(anchors.float(), [128, 32], gts.float(), torch.zeros(5)).tolist()


# ---------------------------------------------------------------------------------------- helpers
def grid_anchors(levels, scales):
    """levels: (H, W, stride) each; anchors location-major, anchor-minor, square of side stride * s."""
    out = []
    for h, w, stride in levels:
        for y in range(h):
            for x in range(w):
                cx, cy = (x + 0.5) * stride, (y + 0.5) * stride
                for s in scales:
                    half = stride * s / 2
                    out.append([cx - half, cy - half, cx + half, cy + half])
    return torch.tensor(out, dtype=torch.float32)


def random_boxes(n, gen, size=100.0):
    xy = torch.rand(n, 2, generator=gen) * size * 0.8
    wh = torch.rand(n, 2, generator=gen) * size * 0.4 + 2.0
    return torch.cat([xy, xy + wh], dim=1)


def np_iou(boxes, box):
    ix = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = ix * iy
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def np_atss(anchors, levels, gts, topk):
    """Plain per-gt ATSS: stable sort by squared centre distance, mean + std threshold, centre-in-box
    margin 0.01, highest IoU (then lowest gt index) wins."""
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    best_iou = np.full(len(anchors), -1.0)
    assigned = np.full(len(anchors), -1)
    for g, gt in enumerate(gts):
        gc = (gt[:2] + gt[2:]) / 2
        cands, start = [], 0
        for count in levels:
            c = centers[start:start + count]
            d2 = (gc[0] - c[:, 0]) ** 2 + (gc[1] - c[:, 1]) ** 2  # float32, like the model
            cands.extend((np.argsort(d2, kind="stable")[:topk] + start).tolist())
            start += count
        cands = np.array(cands)
        ious = np_iou(anchors[cands].astype(np.float64), gt.astype(np.float64))
        thr = ious.mean() + ious.std(ddof=1)
        for a, iou in zip(cands, ious):
            cx, cy = centers[a]
            inside = min(cx - gt[0], cy - gt[1], gt[2] - cx, gt[3] - cy) > 0.01
            if iou >= thr and inside and iou > best_iou[a]:
                best_iou[a], assigned[a] = iou, g
    return assigned


def test_iou_offset_is_the_pixel_inclusive_convention():
    # a 16-px gt inside a 24-px anchor: 256 / 576 plainly, (17 * 17) / (25 * 25) with +1 on every side length
    gt, anchor = torch.tensor([0.0, 0.0, 16.0, 16.0]), torch.tensor([-4.0, -4.0, 20.0, 20.0])
    assert paired_box_iou(anchor, gt).item() == pytest.approx(256 / 576)
    assert paired_box_iou(anchor, gt, offset=1.0).item() == pytest.approx(289 / 625)
    # disjoint boxes one pixel apart touch under the inclusive convention, as in the released kernel:
    # width = max(right - left + 1, 0)
    a, b = torch.tensor([0.0, 0.0, 10.0, 10.0]), torch.tensor([11.0, 0.0, 21.0, 10.0])
    assert paired_box_iou(a, b, offset=1.0).item() == 0.0
    c = torch.tensor([10.0, 0.0, 20.0, 10.0])
    assert paired_box_iou(a, c, offset=1.0).item() == pytest.approx(11 / (121 + 121 - 11))


def test_iou_offset_changes_the_candidates_ious_and_threshold():
    gt = torch.tensor([[8.0, 0.0, 22.0, 10.0]])
    plain = ATSSAssigner(topk=2)
    inclusive = ATSSAssigner(topk=2, iou_offset=1.0)
    cands0, ious0, thr0 = plain.candidates_and_threshold(ROW_ANCHORS, ROW_LEVELS, gt[None])
    cands1, ious1, thr1 = inclusive.candidates_and_threshold(ROW_ANCHORS, ROW_LEVELS, gt[None])
    assert torch.equal(cands0, cands1)  # distances do not depend on the convention
    # anchor 1 [10, 0, 20, 10] with the gt: inter 11 x 11, areas 121 and 15 x 11
    assert ious1[0, 0, 0].item() == pytest.approx(121 / (121 + 165 - 121))
    expected = [paired_box_iou(ROW_ANCHORS[i], gt[0], 1.0).item() for i in cands1[0, 0].tolist()]
    assert torch.allclose(ious1[0, 0], torch.tensor(expected), atol=1e-6)
    assert not torch.allclose(thr0, thr1)
    mean = sum(expected) / 4
    std = (sum((v - mean) ** 2 for v in expected) / 3) ** 0.5
    assert thr1.item() == pytest.approx(mean + std, abs=1e-6)
