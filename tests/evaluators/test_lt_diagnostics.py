"""recall_by_group: localisation, class recall and top-1 per frequency group on hand-made cases."""
import pytest

from yolox.evaluators.lt_diagnostics import rare_hits_by_image, recall_by_group


def test_located_recalled_and_top1_per_group():
    gt = {
        "images": [{"id": 1}, {"id": 2}],
        "categories": [{"id": 7, "frequency": "r"}, {"id": 8, "frequency": "f"}],
        "annotations": [
            {"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10]},   # located, recalled, not top-1
            {"image_id": 1, "category_id": 8, "bbox": [50, 50, 10, 10]},  # located, recalled, top-1
            {"image_id": 2, "category_id": 7, "bbox": [0, 0, 10, 10]},   # located by a wrong class only
            {"image_id": 2, "category_id": 8, "bbox": [80, 80, 10, 10]},  # missed (IoU 1/7 < 0.5)
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 8, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 7, "bbox": [1, 0, 10, 10], "score": 0.2},
        {"image_id": 1, "category_id": 8, "bbox": [50, 50, 10, 10], "score": 0.8},
        {"image_id": 2, "category_id": 8, "bbox": [0, 0, 10, 10], "score": 0.5},
        {"image_id": 2, "category_id": 8, "bbox": [85, 85, 10, 10], "score": 0.5},
    ]
    out = recall_by_group(gt, dets)
    assert out["r"] == {"instances": 2, "located": 1.0, "recalled": 0.5, "top1": 0.0}
    assert out["f"] == {"instances": 2, "located": 0.5, "recalled": 0.5, "top1": 0.5}
    assert out["all"]["instances"] == 4 and out["all"]["located"] == pytest.approx(0.75)
    assert "c" not in out
    # A stricter overlap drops the shifted rare detection (IoU 9/11 stays; 0.9 threshold removes it).
    strict = recall_by_group(gt, dets, iou_thresh=0.9)
    assert strict["r"]["recalled"] == 0.0 and strict["r"]["located"] == 1.0


def test_an_image_without_detections_counts_as_missed():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "frequency": "c"}],
          "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]}
    assert recall_by_group(gt, [])["c"] == {"instances": 1, "located": 0.0, "recalled": 0.0, "top1": 0.0}


def test_rare_hits_count_own_class_detections_above_the_score_threshold():
    gt = {
        "images": [{"id": 1}, {"id": 2}, {"id": 3}],
        "categories": [{"id": 7, "frequency": "r"}, {"id": 8, "frequency": "f"}],
        "annotations": [
            {"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10]},   # hit
            {"image_id": 1, "category_id": 7, "bbox": [50, 50, 10, 10]},  # only a low-score detection
            {"image_id": 2, "category_id": 7, "bbox": [0, 0, 10, 10]},   # only a wrong-class detection
            {"image_id": 3, "category_id": 8, "bbox": [0, 0, 10, 10]},   # not rare: image 3 left out
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10], "score": 0.5},
        {"image_id": 1, "category_id": 7, "bbox": [50, 50, 10, 10], "score": 0.1},
        {"image_id": 2, "category_id": 8, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 3, "category_id": 8, "bbox": [0, 0, 10, 10], "score": 0.9},
    ]
    assert rare_hits_by_image(gt, dets, score_thresh=0.15) == {1: (2, 1), 2: (1, 0)}
    assert rare_hits_by_image(gt, dets, score_thresh=0.05) == {1: (2, 2), 2: (1, 0)}


def test_a_checkpoint_of_another_experiment_is_refused(tmp_path):
    """The diagnostics load weights for inference: a head of another class count must fail, not give recall 0."""
    import torch

    from yolox.evaluators.lt_diagnostics import detect_validation_set
    from yolox.exp import LTProxyExp
    from yolox.utils import CheckpointError

    other = LTProxyExp("fl")
    other.num_classes = 7
    torch.save({"model": other.get_model().state_dict()}, tmp_path / "other.pth")
    exp = LTProxyExp("fl")
    exp.data_dir = str(tmp_path / "never_read")  # the weights are checked before any data is touched
    with pytest.raises(CheckpointError, match="does not fit"):
        detect_validation_set(exp, tmp_path / "other.pth")
