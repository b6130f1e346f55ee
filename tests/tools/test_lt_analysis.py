"""tools/lt_analysis.py: the imbalance figures equal hand computations; both commands run on tiny data."""
import math

import pytest
import torch

from cli_helpers import ROOT, load_tool, run_tool


def test_lvis_estimate_is_image_count_times_repeat_factor_over_all_anchors():
    tool = load_tool("lt_analysis")
    cats = [{"id": 1, "image_count": 5}, {"id": 2, "image_count": 995}]
    out = tool.lvis_positive_fractions(cats, anchors_per_image=100, positives_per_box=8.0, num_images=10000,
                                       num_boxes=3000, repeat_thresh=0.001)
    boxes_per_pair = 3000 / 1000
    assert out[1] == pytest.approx(5 * math.sqrt(0.001 / 0.0005) * boxes_per_pair * 8.0 / (10000 * 100))
    assert out[2] == pytest.approx(995 * 1.0 * boxes_per_pair * 8.0 / (10000 * 100))  # no repeat above t


def test_positive_fractions_count_assigned_anchors_weighted_by_repeat_factor():
    from yolox.exp import Exp
    from yolox.models.assigners import ATSSAssigner

    tool = load_tool("lt_analysis")
    exp = Exp()
    exp.depth, exp.width, exp.num_classes, exp.anchor_scales, exp.assigner = 0.33, 0.25, 2, (3, 4), "atss"
    anchors, per_level = tool.head_anchors(exp.get_model().head, 64)
    assert anchors.shape[0] == (8 * 8 + 4 * 4 + 2 * 2) * 2 and per_level == [128, 32, 8]
    train = {"images": [{"id": 1, "width": 128, "height": 128}, {"id": 2, "width": 64, "height": 64}],
             "categories": [{"id": 1}, {"id": 2}],
             "annotations": [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40]},
                             {"image_id": 2, "category_id": 2, "bbox": [30, 20, 20, 24]}]}
    assigner = ATSSAssigner(topk=9)
    # Class 2 is in half the images: with t = 1, r = sqrt(1 / 0.5) for both images (each holds one class
    # seen in half of the images).
    fractions, per_box = tool.positive_anchor_fractions(train, anchors, per_level, assigner, 64, 1.0)
    valid = torch.ones(1, 1, dtype=torch.bool)
    n1 = int((assigner.assign_batch(anchors, per_level, torch.tensor([[[5.0, 5.0, 25.0, 25.0]]]), valid) == 0).sum())
    n2 = int((assigner.assign_batch(anchors, per_level, torch.tensor([[[30.0, 20.0, 50.0, 44.0]]]), valid) == 0).sum())
    assert n1 > 0 and n2 > 0
    r = math.sqrt(2.0)
    total = 2 * r * anchors.shape[0]
    assert fractions[1] == pytest.approx(r * n1 / total)
    assert fractions[2] == pytest.approx(r * n2 / total)
    assert per_box == pytest.approx((n1 + n2) / 2)


def test_both_commands_run_on_a_tiny_dataset(tiny_lvis, tmp_path):
    exp = "exps/example/lt_proxy/yolox_nano_fl.py"
    overrides = ["num_classes", "4", "input_size", "(96,96)", "test_size", "(96,96)"]
    out = run_tool("tools/lt_analysis.py", "imbalance", "-f", exp, "--data-dir", tiny_lvis["root"], *overrides).stdout
    assert "| rare" in out and "LVIS v1 (estimate)" in out and "anchors per 96 px image" in out
    # a freshly initialised model is enough to exercise the recall path end to end
    from yolox.exp import get_exp

    e = get_exp(str(ROOT / exp), None)
    e.merge(overrides)
    ckpt = tmp_path / "init.pth"
    torch.save({"model": e.get_model().state_dict()}, ckpt)
    out = run_tool("tools/lt_analysis.py", "recall", "-f", exp, "-c", ckpt, "--data-dir", tiny_lvis["root"],
                   *overrides).stdout
    assert "top-1 class correct" in out and "| all" in out


def test_epoch_lengths_of_both_units_by_hand():
    tool = load_tool("lt_analysis")
    train = {"images": [{"id": i} for i in range(1, 11)],
             "annotations": [{"image_id": 1, "category_id": 7}, {"image_id": 1, "category_id": 7},
                             {"image_id": 2, "category_id": 8}] +
                            [{"image_id": i, "category_id": 9} for i in range(3, 11)]}
    cats = tool.image_category_lists(train)
    assert cats[:3] == [[7], [8], [9]]
    # t = 0.4: classes 7 and 8 are in 1 of 10 images -> r = sqrt(0.4 / 0.1) = 2; class 9 (8 of 10) -> 1
    lengths = tool.epoch_lengths(cats, 0.4, "ceil", world_size=2, batch_size=4)
    assert lengths["images"] == 10 and lengths["stream"] == 12
    # repeated: 12 indices / 2 ranks = 6 per rank, in batches of 2 -> 3; dataset: ceil(10 / 2) = 5 -> 3
    assert lengths["iterations"] == {"repeated": 3, "dataset": 3}
    lengths = tool.epoch_lengths(cats, 0.4, "ceil", world_size=1, batch_size=4)
    assert lengths["iterations"] == {"repeated": 3, "dataset": 3}  # ceil(12 / 4), ceil(10 / 4)
    lengths = tool.epoch_lengths(cats, 0.4, "ceil", world_size=1, batch_size=2)
    assert lengths["iterations"] == {"repeated": 6, "dataset": 5}


def test_epoch_command_prints_both_units(tiny_lvis):
    out = run_tool("tools/lt_analysis.py", "epoch", "-f", "exps/yolox_s_efl_lvis.py", "--data-dir",
                   tiny_lvis["root"], "-d", "1", "-b", "2", "num_classes", "4", "repeat_thresh", "0.5").stdout
    assert "| repeated" in out and "| dataset (released)" in out and "rfs_epoch_unit 'dataset'" in out
