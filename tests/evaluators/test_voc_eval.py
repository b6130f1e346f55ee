"""VOC AP against hand-computed cases (11-point and area AP, difficult objects, IoU thresholds), the
file-based ``voc_eval`` and its cache, and ``VOCEvaluator`` end to end with a stub model of known mAP."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from yolox.data import VOC_CLASSES, ValTransform, VOCDetection
from yolox.evaluators import VOCEvaluator, voc_ap, voc_class_ap, voc_eval
from yolox.utils import postprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_voc import write_voc, xml_text  # noqa: E402  (the VOC folder writer of the dataset tests)

CLS = {name: i for i, name in enumerate(VOC_CLASSES)}

# One class, three images. Ground truth (VOC pixels, inclusive): A has a box and a difficult box, B and C one
# box each, so 3 positives. Detections by decreasing score:
#   d1 0.9 A on its box          -> TP          tp 1 fp 0: rec 1/3 prec 1
#   d2 0.8 B far from its box    -> FP          tp 1 fp 1: rec 1/3 prec 1/2
#   d3 0.7 A on the difficult    -> ignored     tp 1 fp 1: rec 1/3 prec 1/2
#   d4 0.6 A on d1's box again   -> FP (dup.)   tp 1 fp 2: rec 1/3 prec 1/3
#   d5 0.5 C on its box          -> TP          tp 2 fp 2: rec 2/3 prec 1/2
#   d6 0.4 B on its box          -> TP          tp 3 fp 2: rec 1   prec 3/5
# Area AP: precision envelope 1 up to recall 1/3, then 3/5: 1/3 * 1 + 2/3 * 3/5 = 11/15.
# 11-point AP: recall >= 0, 0.1, 0.2, 0.3 -> max precision 1; >= 0.4 ... 1.0 (7 points) -> 3/5: (4 + 7 * 0.6) / 11.
GT = {
    "A": (np.array([[11, 11, 40, 40], [61, 61, 90, 90]], float), np.array([False, True])),
    "B": (np.array([[11, 11, 40, 40]], float), np.array([False])),
    "C": (np.array([[21, 21, 50, 60]], float), np.array([False])),
}
DETS = [("A", 0.9, [11, 11, 40, 40]), ("B", 0.8, [61, 61, 90, 90]), ("A", 0.7, [61, 61, 90, 90]),
        ("A", 0.6, [12, 11, 40, 40]), ("C", 0.5, [21, 21, 50, 60]), ("B", 0.4, [11, 12, 40, 41])]
AREA_AP = 11 / 15
AP_07 = (4 + 7 * 0.6) / 11


def run(dets=DETS, gt=GT, thresholds=(0.5,), use_07_metric=False):
    order = np.random.default_rng(0).permutation(len(dets))  # the input order must not matter
    dets = [dets[i] for i in order]
    return voc_class_ap([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets], gt, thresholds,
                        use_07_metric)


def test_hand_computed_precision_recall_and_ap():
    (rec, prec, ap), = run()
    np.testing.assert_allclose(rec, [1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(prec, [1, 1 / 2, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    assert ap == pytest.approx(AREA_AP)
    (_, _, ap07), = run(use_07_metric=True)
    assert ap07 == pytest.approx(AP_07)
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(AP_07)
    assert voc_ap([0.5, 1.0], [1.0, 0.5]) == pytest.approx(0.75)


def test_difficult_objects_neither_count_nor_penalise():
    # As positives they would lower recall (4 objects), and d3 would be a TP instead of ignored.
    not_difficult = dict(GT, A=(GT["A"][0], np.array([False, False])))
    (rec, prec, ap), = run(gt=not_difficult)
    np.testing.assert_allclose(rec, [1 / 4, 1 / 4, 2 / 4, 2 / 4, 3 / 4, 1])
    assert ap != pytest.approx(AREA_AP)
    # A detection of a difficult object only: no TP, no FP; a class with difficult objects only has no AP.
    (rec, prec, ap), = run(dets=[DETS[2], DETS[0]])
    np.testing.assert_allclose(rec, [1 / 3, 1 / 3])
    np.testing.assert_allclose(prec, [1, 1])
    (_, _, ap), = run(dets=[DETS[2]], gt={"A": (GT["A"][0][1:], np.array([True]))})
    assert np.isnan(ap)
    (rec, _, ap), = run(dets=[], gt=GT)
    assert ap == 0.0 and len(rec) == 0


def test_iou_thresholds():
    # 30 x 30 box and a 30 x 21.6 detection inside it: IoU 0.72 (inclusive pixels)
    gt = {"A": (np.array([[11, 11, 40, 40]], float), np.array([False]))}
    results = run(dets=[("A", 0.9, [11, 11, 40, 31.6])], gt=gt, thresholds=(0.5, 0.7, 0.72, 0.75, 0.95))
    assert [ap for _, _, ap in results] == [1.0, 1.0, 0.0, 0.0, 0.0]  # a match needs IoU > t


def sequential_protocol(image_ids, scores, boxes, gt, t):
    """The devkit's loop, one detection at a time: (tp, fp) flags in decreasing score order."""
    used = {k: np.zeros(len(v[0]), bool) for k, v in gt.items()}
    tp, fp = [], []
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        g_boxes, difficult = gt[image_ids[d]]
        b = boxes[d]
        best, j = -np.inf, -1
        if len(g_boxes):
            iw = np.maximum(np.minimum(g_boxes[:, 2], b[2]) - np.maximum(g_boxes[:, 0], b[0]) + 1, 0)
            ih = np.maximum(np.minimum(g_boxes[:, 3], b[3]) - np.maximum(g_boxes[:, 1], b[1]) + 1, 0)
            inter = iw * ih
            union = ((b[2] - b[0] + 1) * (b[3] - b[1] + 1)
                     + (g_boxes[:, 2] - g_boxes[:, 0] + 1) * (g_boxes[:, 3] - g_boxes[:, 1] + 1) - inter)
            iou = inter / union
            best, j = iou.max(), iou.argmax()
        if best > t:
            if difficult[j]:
                tp.append(0), fp.append(0)
            elif not used[image_ids[d]][j]:
                used[image_ids[d]][j] = True
                tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)
        else:
            tp.append(0), fp.append(1)
    return np.cumsum(tp), np.cumsum(fp)


def test_vectorised_matching_equals_the_sequential_protocol():
    rng = np.random.default_rng(0)
    for trial in range(30):
        gt, image_ids, scores, boxes = {}, [], [], []
        for k in range(rng.integers(1, 5)):
            n = int(rng.integers(0, 5))
            xy = rng.uniform(0, 60, (n, 2))
            g = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], 1).round()
            gt[k] = (g, rng.random(n) < 0.25)
            for _ in range(rng.integers(0, 8)):
                if n and rng.random() < 0.7:  # near an object: jittered copies, duplicates
                    b = g[rng.integers(n)] + rng.normal(0, 3, 4)
                else:
                    b = np.concatenate([xy0 := rng.uniform(0, 60, 2), xy0 + rng.uniform(5, 40, 2)])
                image_ids.append(k), boxes.append(b), scores.append(float(rng.choice([0.3, 0.5, rng.random()])))
        boxes = np.asarray(boxes).reshape(-1, 4)
        npos = sum(int((~d).sum()) for _, d in gt.values())
        for t, (rec, prec, ap) in zip((0.5, 0.75), voc_class_ap(image_ids, scores, boxes, gt, (0.5, 0.75))):
            tp, fp = sequential_protocol(image_ids, scores, boxes, gt, t)
            np.testing.assert_allclose(prec, tp / np.maximum(tp + fp, np.finfo(float).eps), err_msg=f"trial {trial}")
            if npos:
                np.testing.assert_allclose(rec, tp / npos, err_msg=f"trial {trial}")
                assert ap == pytest.approx(voc_ap(tp / npos, tp / np.maximum(tp + fp, 1e-300)))


def write_case(root):
    """The hand-computed case as files: annotations, the image set and a detections file."""
    ann = Path(root) / "Annotations"
    ann.mkdir(parents=True)
    for name, (boxes, difficult) in GT.items():
        objects = [("dog", *map(int, b), int(d)) for b, d in zip(boxes, difficult)] + [("cat", 1, 1, 5, 5, 0)]
        (ann / f"{name}.xml").write_text(xml_text(name, (100, 100), objects))
    imageset = Path(root) / "test.txt"
    imageset.write_text("A\nB\nC\n")
    (Path(root) / "det_dog.txt").write_text("".join(f"{n} {s} {' '.join(map(str, b))}\n" for n, s, b in DETS))
    (Path(root) / "det_cat.txt").write_text("")
    return str(Path(root) / "det_{:s}.txt"), str(ann / "{:s}.xml"), imageset


def test_voc_eval_files_and_cache(tmp_path):
    detpath, annopath, imageset = write_case(tmp_path / "voc")
    cachedir = tmp_path / "cache"
    rec, prec, ap = voc_eval(detpath, annopath, imageset, "dog", cachedir, ovthresh=0.5, use_07_metric=False)
    assert ap == pytest.approx(AREA_AP) and rec[-1] == pytest.approx(1.0)
    assert voc_eval(detpath, annopath, imageset, "dog", cachedir, use_07_metric=True)[2] == pytest.approx(AP_07)
    assert (cachedir / "annots_test.pkl").is_file()
    assert voc_eval(detpath, annopath, imageset, "cat", cachedir)[2] == 0.0  # objects, no detection
    # a changed image list is parsed again, not read from the stale cache
    imageset.write_text("A\nC\n")
    (tmp_path / "voc" / "det_dog.txt").write_text("A 0.9 11 11 40 40\nC 0.5 21 21 50 60\n")
    assert voc_eval(detpath, annopath, imageset, "dog", cachedir)[2] == pytest.approx(1.0)
    (tmp_path / "voc" / "det_dog.txt").write_text("B 0.9 11 11 40 40\n")
    with pytest.raises(ValueError, match="image 'B' is not in"):
        voc_eval(detpath, annopath, imageset, "dog", None)


# ------------------------------------------------------------------ VOCEvaluator end to end
IMG_SIZE = (64, 64)
# image -> ((h, w), objects); image k is flat grey 20 + 40 k (the stub model reads k from pixel [0, 0])
EVAL_IMAGES = {
    "000010": ((100, 200), [("dog", 11, 11, 40, 40, 0), ("person", 101, 21, 160, 90, 0), ("cat", 150, 5, 190, 30, 1)]),
    "000011": ((128, 64), [("dog", 11, 11, 40, 40, 0), ("cat", 5, 60, 60, 120, 0)]),
    "000012": ((64, 64), [("person", 5, 5, 30, 60, 0)]),
}
# per image: (class, box in VOC pixels, score); dogs: exact in 000010, IoU 0.72 in 000011; cats exact and one on
# the difficult cat (ignored); persons all misplaced (IoU 0)
PREDICTIONS = {
    0: [("dog", [11, 11, 40, 40], 0.9), ("person", [1, 1, 60, 70], 0.8), ("cat", [150, 5, 190, 30], 0.7)],
    1: [("dog", [11, 11, 40, 31.6], 0.8), ("cat", [5, 60, 60, 120], 0.9)],
    2: [("person", [35, 5, 60, 60], 0.9)],
}
# IoU 0.5..0.70: dog 1, cat 1, person 0. IoU 0.75..0.95: dog TP then FP, rec 1/2 prec 1 then 1/2: 11-point AP
# (points 0 ... 0.5: 1) 6/11. mAP50 = 2/3; mAP50:95 = (5 * 2/3 + 5 * (6/11 + 1) / 3) / 10 = 13/22.
EXPECTED_AP50 = 2 / 3
EXPECTED_AP75 = (6 / 11 + 1) / 3
EXPECTED_AP = 13 / 22


class FlatImagePredictor(nn.Module):
    """Returns ``[B, N, 5 + 20]`` eval-mode outputs (cx, cy, w, h in input pixels, obj, class probabilities):
    image k (from its flat grey value) gets the rows of ``table[k]``."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", table)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, imgs):
        index = ((imgs[:, 0, 0, 0] - 20) / 40).round().long()
        return self.table[index] * self.gain


def prediction_table():
    sizes = [hw for hw, _ in EVAL_IMAGES.values()]
    table = torch.zeros(len(sizes), 4, 5 + len(VOC_CLASSES))
    for k, rows in PREDICTIONS.items():
        r = min(IMG_SIZE[0] / sizes[k][0], IMG_SIZE[1] / sizes[k][1])
        for j, (name, (x1, y1, x2, y2), score) in enumerate(rows):
            x1, y1, x2, y2 = [(v - 1) * r for v in (x1, y1, x2, y2)]  # VOC pixels -> 0-based input pixels
            table[k, j, :4] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
            table[k, j, 4] = 1.0
            table[k, j, 5 + CLS[name]] = score
    return table


def test_voc_evaluator_known_map(tmp_path):
    root = write_voc(tmp_path / "VOCdevkit", EVAL_IMAGES, sets={"test": list(EVAL_IMAGES)})
    dataset = VOCDetection(root, image_sets=[("2007", "test")], img_size=IMG_SIZE, preproc=ValTransform())
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=torch.utils.data.SequentialSampler(dataset))
    evaluator = VOCEvaluator(loader, IMG_SIZE, confthre=0.01, nmsthre=0.65, num_classes=20,
                             postprocess_fn=postprocess, output_dir=str(tmp_path / "results"))
    model = FlatImagePredictor(prediction_table())
    model.train()
    ap50_95, ap50, summary = evaluator.evaluate(model)
    assert model.training  # the mode is restored
    assert ap50 == pytest.approx(EXPECTED_AP50, abs=1e-6) and ap50_95 == pytest.approx(EXPECTED_AP, abs=1e-6)
    metrics = evaluator.last_metrics
    assert metrics["AP75"] == pytest.approx(EXPECTED_AP75, abs=1e-6) and metrics["metric"] == "VOC07 11-point"
    assert metrics["per_class_AP50"]["dog"] == pytest.approx(1.0) and metrics["per_class_AP50"]["person"] == 0.0
    assert np.isnan(metrics["per_class_AP50"]["bird"])  # no ground truth: left out of the mean
    assert "AP for dog = 1.0000" in summary and "AP for person = 0.0000" in summary
    assert "Mean AP = 0.6667" in summary and "map_5095: 0.5909" in summary and "map_50: 0.6667" in summary
    assert "AP nan: 17 classes have no (non-difficult) object" in summary

    # the results files hold the same detections: voc_eval on them agrees with the evaluator, class by class
    detpath = str(tmp_path / "results" / "comp4_det_test_{:s}.txt")
    annopath = str(root / "VOC2007" / "Annotations" / "{:s}.xml")
    imageset = root / "VOC2007" / "ImageSets" / "Main" / "test.txt"
    for name in ("dog", "cat", "person"):
        for t in (0.5, 0.75):
            _, _, ap = voc_eval(detpath, annopath, imageset, name, None, ovthresh=t, use_07_metric=True)
            expected = metrics["ap_table"][[0.5, 0.75].index(t) * 5][CLS[name]]
            assert ap == pytest.approx(expected, abs=2e-3)  # the files round boxes to 0.1 px

    # the area metric when asked
    evaluator.use_07_metric = False
    evaluator.output_dir = None
    evaluator.evaluate(model)
    assert evaluator.last_metrics["metric"] == "area"
    assert evaluator.last_metrics["AP75"] == pytest.approx((0.5 + 1) / 3, abs=1e-6)


def test_dataset_evaluate_detections_upstream_interface(tmp_path):
    root = write_voc(tmp_path / "VOCdevkit", EVAL_IMAGES, sets={"test": list(EVAL_IMAGES)})
    dataset = VOCDetection(root, image_sets=[("2007", "test")])
    all_boxes = [[np.zeros((0, 5)) for _ in EVAL_IMAGES] for _ in VOC_CLASSES]
    for k, rows in PREDICTIONS.items():
        for name, box, score in rows:
            dets = np.array([[v - 1 for v in box] + [score]])
            all_boxes[CLS[name]][k] = np.concatenate([all_boxes[CLS[name]][k], dets])
    ap50_95, ap50 = dataset.evaluate_detections(all_boxes, str(tmp_path / "out"))
    assert ap50 == pytest.approx(EXPECTED_AP50) and ap50_95 == pytest.approx(EXPECTED_AP)
    assert (tmp_path / "out" / "comp4_det_test_dog.txt").read_text().splitlines()[0].startswith("000010 0.900 11.0")
