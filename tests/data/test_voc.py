"""VOCDetection on VOC folders written by the test: XML boxes (1-based) -> 0-based labels, difficult objects
left out of training, two years, MosaicDetection and the DataLoader over it, and one-line errors."""
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolox.data import (VOC_CLASSES, AnnotationTransform, DataLoader, DatasetError, InfiniteSampler, MosaicDetection,
                        TrainTransform, ValTransform, VOCDetection, YoloBatchSampler)

CLS = {name: i for i, name in enumerate(VOC_CLASSES)}

# name -> ((height, width), [(class, xmin, ymin, xmax, ymax, difficult)]) in VOC's 1-based pixels
IMAGES_2007 = {
    "000001": ((60, 80), [("dog", 11, 6, 40, 35, 0), ("person", 41, 21, 70, 60, 0), ("cat", 1, 1, 20, 20, 1)]),
    "000002": ((50, 50), [("cat", 5, 5, 30, 45, 0)]),
    "000003": ((40, 64), []),  # a negative
    "000004": ((64, 48), [("dog", 2, 3, 47, 64, 0), ("dog", 10, 10, 20, 20, 1)]),
}
IMAGES_2012 = {
    "2012_000001": ((48, 72), [("bird", 8, 8, 30, 40, 0)]),
    "2012_000002": ((72, 48), [("person", 1, 1, 48, 72, 0), ("bird", 5, 5, 25, 25, 0)]),
}


def xml_text(name, hw, objects, size=True, depth=3):
    parts = [f"<annotation><folder>VOC</folder><filename>{name}.jpg</filename>"]
    if size:
        parts.append(f"<size><width>{hw[1]}</width><height>{hw[0]}</height><depth>{depth}</depth></size>")
    for cls, x1, y1, x2, y2, difficult in objects:
        parts.append(f"<object><name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                     f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "".join(parts)


def image_pixels(index, hw):
    """A flat image whose value encodes ``index`` (survives JPEG: 40 grey levels apart)."""
    return np.full((hw[0], hw[1], 3), 20 + 40 * index, dtype=np.uint8)


def write_voc(root, images=None, year="2007", sets=None, ext=".jpg", first_index=0):
    """Write ``<root>/VOC<year>/{Annotations,JPEGImages,ImageSets/Main}``. ``sets``: {set name: [image names]},
    default {"trainval": all, "test": all}. Image k (in ``images`` order) is flat grey
    ``image_pixels(first_index + k)``. Returns root."""
    images = IMAGES_2007 if images is None else images
    base = Path(root) / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for k, (name, (hw, objects)) in enumerate(images.items()):
        (base / "Annotations" / f"{name}.xml").write_text(xml_text(name, hw, objects))
        cv2.imwrite(str(base / "JPEGImages" / f"{name}{ext}"), image_pixels(first_index + k, hw))
    sets = sets if sets is not None else {"trainval": list(images), "test": list(images)}
    for set_name, names in sets.items():
        (base / "ImageSets" / "Main" / f"{set_name}.txt").write_text("".join(f"{n}\n" for n in names))
    return Path(root)


def expected_labels(objects, keep_difficult=False):
    rows = [[x1 - 1, y1 - 1, x2 - 1, y2 - 1, CLS[c]] for c, x1, y1, x2, y2, d in objects if keep_difficult or not d]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


@pytest.fixture
def voc_root(tmp_path):
    write_voc(tmp_path / "VOCdevkit")
    write_voc(tmp_path / "VOCdevkit", IMAGES_2012, year="2012", first_index=len(IMAGES_2007))
    return tmp_path / "VOCdevkit"


def test_boxes_and_classes_from_xml(voc_root):
    ds = VOCDetection(voc_root, image_sets=[("2007", "trainval")], img_size=(32, 32), keep_difficult=False)
    assert len(ds) == 4 and ds.num_classes == 20 and ds.class_names == list(VOC_CLASSES)
    assert ds.ids == [0, 1, 2, 3] and ds.image_name(1) == "000002"
    assert ds.voc_ids[0] == (os.path.join(str(voc_root), "VOC2007"), "000001")
    for index, (hw, objects) in enumerate(IMAGES_2007.values()):
        np.testing.assert_array_equal(ds.load_anno(index), expected_labels(objects))  # 1-based -> 0-based
        assert ds.image_size(index) == hw
        img, labels, img_info, img_id = ds.pull_item(index)
        r = min(32 / hw[0], 32 / hw[1])
        assert img.shape == (int(hw[0] * r), int(hw[1] * r), 3) and img_info == hw and img_id == index
        np.testing.assert_allclose(labels[:, :4], expected_labels(objects)[:, :4] * r)
    # the difficult cat of 000001 and the difficult dog of 000004 are not training targets
    assert ds.img_cat_ids() == [[CLS["dog"], CLS["person"]], [CLS["cat"]], [], [CLS["dog"]]]
    counts = ds.class_image_counts
    assert counts[CLS["dog"]] == 2 and counts[CLS["cat"]] == 1 and counts.sum() == 4
    assert ds.use_07_metric


def test_keep_difficult_and_evaluation_ground_truth(voc_root):
    ds = VOCDetection(voc_root, image_sets=[("2007", "trainval")], img_size=(32, 32), keep_difficult=True)
    for index, (_, objects) in enumerate(IMAGES_2007.values()):
        np.testing.assert_array_equal(ds.load_anno(index), expected_labels(objects, keep_difficult=True))
    upstream_style = VOCDetection(voc_root, image_sets=[("2007", "trainval")],
                                  target_transform=AnnotationTransform(keep_difficult=True))
    np.testing.assert_array_equal(upstream_style.load_anno(0), ds.load_anno(0))
    # ground truth for evaluation: every object, as written, with its difficult flag
    gt = VOCDetection(voc_root, image_sets=[("2007", "test")]).ground_truth(CLS["dog"])
    assert sorted(gt) == [0, 1, 2, 3]
    np.testing.assert_array_equal(gt[0][0], [[11, 6, 40, 35]])
    np.testing.assert_array_equal(gt[3][0], [[2, 3, 47, 64], [10, 10, 20, 20]])
    assert gt[3][1].tolist() == [False, True] and len(gt[1][0]) == 0


def test_two_years(voc_root):
    ds = VOCDetection(voc_root, image_sets=[("2007", "trainval"), ("2012", "trainval")], img_size=(32, 32))
    assert len(ds) == 6 and not ds.use_07_metric  # the area AP once a 2012 set is in
    assert ds.image_path(4).endswith(os.path.join("VOC2012", "JPEGImages", "2012_000001.jpg"))
    np.testing.assert_array_equal(ds.load_anno(5), expected_labels(IMAGES_2012["2012_000002"][1]))
    img = ds.load_image(5)
    assert img.shape == (72, 48, 3) and abs(int(img[10, 10, 0]) - int(image_pixels(5, (1, 1))[0, 0, 0])) <= 2
    single = VOCDetection(voc_root, image_sets=("2012", "trainval"))  # one pair needs no list
    assert len(single) == 2


def test_item_through_transforms_and_cache(voc_root):
    ds = VOCDetection(voc_root, image_sets=[("2007", "test")], img_size=(32, 32), preproc=ValTransform())
    img, _, img_info, img_id = ds[1]
    assert img.shape == (3, 32, 32) and img_info == (50, 50) and img_id == 1
    cached = VOCDetection(voc_root, image_sets=[("2007", "test")], img_size=(32, 32), cache=True)
    disk = VOCDetection(voc_root, image_sets=[("2007", "test")], img_size=(32, 32), cache=True, cache_type="disk")
    assert disk.cache_dir.endswith("img_resized_cache_VOC0712_2007test")
    for index in range(len(ds)):
        np.testing.assert_array_equal(cached.pull_item(index)[0], ds.pull_item(index)[0])
        np.testing.assert_array_equal(disk.pull_item(index)[0], ds.pull_item(index)[0])
    # the reduced decode of the mosaic gives pull_item's labels
    img, labels, hw, img_id, letterbox_hw, pitch = ds.pull_scaled_item(0, 0.25)
    np.testing.assert_allclose(labels, ds.pull_item(0)[1])
    assert letterbox_hw == ds.letterbox_size(0) and img_id == 0


def test_mosaic_detection_and_loader(voc_root):
    ds = VOCDetection(voc_root, image_sets=[("2007", "trainval"), ("2012", "trainval")], img_size=(64, 64))
    transform = TrainTransform(max_labels=30, flip_prob=0.5, hsv_prob=1.0)
    mosaic = MosaicDetection(ds, img_size=(64, 64), preproc=transform, mosaic_scale=(0.8, 1.2))
    random.seed(0)
    np.random.seed(0)
    seen = set()
    for index in range(len(ds)):
        for flag in (True, False):
            img, labels, img_info, img_id = mosaic[(flag, index)]
            assert img.shape == (3, 64, 64)
            boxes = labels[labels[:, 3] > 0]
            assert np.all(boxes[:, 1:3] >= 0) and np.all(boxes[:, 1:3] <= 64)
            seen |= set(boxes[:, 0].astype(int).tolist())
    assert seen <= {CLS["dog"], CLS["person"], CLS["cat"], CLS["bird"]} and CLS["bird"] in seen
    sampler = YoloBatchSampler(InfiniteSampler(len(mosaic), seed=0), batch_size=4, mosaic=True)
    loader = DataLoader(mosaic, batch_sampler=sampler, num_workers=0)
    imgs, targets, _, _ = next(iter(loader))
    assert imgs.shape == (4, 3, 64, 64) and targets.shape == (4, 30, 5) and torch.isfinite(targets).all()


def test_custom_classes_png_and_missing_size(tmp_path):
    images = {"a": ((30, 40), [("Widget", 3, 4, 20, 25, 0)]), "b": ((32, 32), [("gadget", 1, 1, 32, 32, 0)])}
    root = write_voc(tmp_path / "mine", images, year="mydata", ext=".png", sets={"train": ["a", "b"]})
    xml = root / "VOCmydata" / "Annotations" / "b.xml"
    xml.write_text(xml_text("b", (32, 32), images["b"][1], size=False))
    ds = VOCDetection(root, image_sets=[("mydata", "train")], img_size=(32, 32), class_names=["gadget", "Widget"])
    assert ds.num_classes == 2 and not ds.use_07_metric
    np.testing.assert_array_equal(ds.load_anno(0), [[2, 3, 19, 24, 1]])
    assert ds.image_size(1) == (32, 32) and ds.image_path(0).endswith("a.png")
    assert ds.pull_item(1)[0].shape == (32, 32, 3)
    # a box reaching past the image is clipped to it
    np.testing.assert_array_equal(ds.load_anno(1), [[0, 0, 31, 31, 0]])


def test_errors_name_the_file(tmp_path, voc_root):
    with pytest.raises(DatasetError, match="VOC folder not found: .*nowhere"):
        VOCDetection(tmp_path / "nowhere", image_sets=[("2007", "test")])
    with pytest.raises(DatasetError, match=r"VOC folder not found: .*VOC2010 \(image set"):
        VOCDetection(voc_root, image_sets=[("2010", "test")])
    with pytest.raises(DatasetError, match=r"VOC image set file not found: .*ImageSets.Main.val\.txt"):
        VOCDetection(voc_root, image_sets=[("2007", "val")])

    ann = voc_root / "VOC2007" / "Annotations"
    good = (ann / "000002.xml").read_text()
    (ann / "000002.xml").write_text(good[:-20])
    with pytest.raises(DatasetError, match=r"000002\.xml: not valid XML"):
        VOCDetection(voc_root, image_sets=[("2007", "test")])
    (ann / "000002.xml").write_text(good.replace("<ymax>45</ymax>", ""))
    with pytest.raises(DatasetError, match=r"000002\.xml: object 0 \(cat\): missing <ymax>"):
        VOCDetection(voc_root, image_sets=[("2007", "test")])
    (ann / "000002.xml").write_text(good.replace("<xmin>5</xmin>", "<xmin>five</xmin>"))
    with pytest.raises(DatasetError, match=r"000002\.xml: object 0 \(cat\): <xmin> must be a number, got 'five'"):
        VOCDetection(voc_root, image_sets=[("2007", "test")])
    (ann / "000002.xml").write_text(good.replace("<name>cat</name>", "<name>kitten</name>"))
    with pytest.raises(DatasetError, match=r"000002\.xml: object 0: unknown class 'kitten'"):
        VOCDetection(voc_root, image_sets=[("2007", "test")])
    (ann / "000002.xml").unlink()
    with pytest.raises(DatasetError, match=r"annotation file not found: .*000002\.xml"):
        VOCDetection(voc_root, image_sets=[("2007", "test")])
    (ann / "000002.xml").write_text(good.replace("<width>50</width>", "<width>60</width>"))
    ds = VOCDetection(voc_root, image_sets=[("2007", "test")])
    with pytest.raises(DatasetError, match=r"000002\.jpg: it is 50x50 \(w x h\) but .*000002\.xml says 60x50"):
        ds.pull_item(1)
    (voc_root / "VOC2007" / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"cannot read image .*000002\.jpg: file not found"):
        ds.pull_item(1)
    skipping = VOCDetection(voc_root, image_sets=[("2007", "test")], skip_bad_images=True)
    assert skipping.pull_item(1)[3] == 2  # the next readable image
