"""Decoding an image no larger than it will be drawn: ``read_image(reduction=)`` and ``pull_scaled_item``."""
import json

import cv2
import numpy as np
import pytest

from yolox.data import COCODataset, DatasetError, read_image


def ramp(h, w):
    """A smooth image: reduced decodes and resizes of it agree to a few grey levels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 200 // w, y * 200 // h, (x + y) * 100 // (h + w) + 50], -1).astype(np.uint8)


def write_jpegs(root, sizes=((90, 150), (200, 260), (61, 37))):
    """JPEGs (quality 95) with 2 boxes each; returns a dataset letterboxing them to 128 x 160."""
    (root / "imgs").mkdir()
    images, annotations = [], []
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(root / "imgs" / f"{i}.jpg"), ramp(h, w), [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": 10 + i, "file_name": f"{i}.jpg", "height": h, "width": w})
        for k in range(2):
            annotations.append({"id": len(annotations) + 1, "image_id": 10 + i, "category_id": 1,
                                "bbox": [2 + k * w // 3, 3, w // 4, h // 3]})
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                               "categories": [{"id": 1, "name": "a"}]}))
    return COCODataset(root, root / "ann.json", name="imgs", img_size=(128, 160))


def test_read_image_reduction_decodes_jpeg_smaller_and_png_whole(tmp_path):
    img = ramp(101, 150)
    cv2.imwrite(str(tmp_path / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(tmp_path / "a.png"), img)
    for reduction, shape in [(1, (101, 150)), (2, (51, 75)), (4, (26, 38)), (8, (13, 19))]:
        reduced = read_image(tmp_path / "a.jpg", reduction=reduction)
        assert reduced.shape == shape + (3,)  # sides rounded up
        # pixel i averages the stored pixels [i * reduction, (i + 1) * reduction)
        area = cv2.resize(img[:shape[0] * reduction - reduction, :shape[1] * reduction - reduction],
                          (shape[1] - 1, shape[0] - 1), interpolation=cv2.INTER_AREA)
        assert np.abs(reduced[:-1, :-1].astype(int) - area).mean() < 2.5
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", reduction=4), img)
    with pytest.raises(ValueError, match="reduction"):
        read_image(tmp_path / "a.jpg", reduction=3)


def test_truncated_jpeg_is_still_refused_with_a_reduction(tmp_path):
    data = cv2.imencode(".jpg", ramp(64, 64))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg", reduction=2)


def test_pull_scaled_item_matches_pull_item(tmp_path):
    ds = write_jpegs(tmp_path)
    for index in range(len(ds)):
        img, labels, info, img_id = ds.pull_item(index)
        for scale in (None, 2.0, 1.0, 0.4, 0.2, 0.05):
            scaled, scaled_labels, scaled_info, scaled_id, letterbox_hw, pitch = ds.pull_scaled_item(index, scale)
            np.testing.assert_array_equal(scaled_labels, labels)
            assert (scaled_info, scaled_id) == (info, img_id) and letterbox_hw == img.shape[:2]
            if scale is None:
                assert scaled is None and pitch is None
                continue
            height, width = info
            reduction = round(pitch[1] * width / letterbox_hw[1])
            assert reduction in (1, 2, 4, 8)
            assert pitch == pytest.approx((reduction * letterbox_hw[0] / height, reduction * letterbox_hw[1] / width))
            assert scaled.shape[:2] == (-(-height // reduction), -(-width // reduction))
            # never fewer than one decoded pixel per output pixel (scale output pixels per letterboxed pixel)
            assert max(pitch) * scale <= 1 or reduction == 1
            # placed on the letterboxed image's grid by ``pitch``, it shows the same picture
            to_letterbox = np.array([[pitch[1], 0, 0.5 * pitch[1] - 0.5], [0, pitch[0], 0.5 * pitch[0] - 0.5]])
            back = cv2.warpAffine(scaled, to_letterbox, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
            assert np.abs(back.astype(int) - img).mean() < 2, (index, scale)
    # the image of 200 x 260 is letterboxed by 0.615; drawn at 0.2 it is decoded at 1/8 (0.615 * 0.2 * 8 <= 1)
    assert ds.pull_scaled_item(1, 0.2)[0].shape == (25, 33, 3)
    assert ds.pull_scaled_item(1, 0.3)[0].shape == (50, 65, 3)
    assert ds.pull_scaled_item(1, 1.0)[0].shape == (200, 260, 3)


def test_pull_scaled_item_returns_cached_images_as_they_are(tmp_path):
    ds = write_jpegs(tmp_path)
    cached = COCODataset(tmp_path, tmp_path / "ann.json", name="imgs", img_size=(128, 160), cache=True)
    for index in range(len(ds)):
        img, _, _, _, letterbox_hw, pitch = cached.pull_scaled_item(index, 0.05)
        assert img is cached.imgs[index] and pitch == (1.0, 1.0) and letterbox_hw == img.shape[:2]


def test_pull_scaled_item_skips_unreadable_images(tmp_path, warnings_log):
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "good.jpg"), ramp(40, 60))
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"not an image")
    images = [{"id": 1, "file_name": "bad.jpg", "height": 50, "width": 50},
              {"id": 2, "file_name": "good.jpg", "height": 40, "width": 60}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                   "categories": [{"id": 1, "name": "a"}]}))
    ds = COCODataset(tmp_path, tmp_path / "ann.json", name="imgs", img_size=(64, 64), skip_bad_images=True)
    img, labels, info, img_id, letterbox_hw, _ = ds.pull_scaled_item(0, 1.0)
    assert img_id == 2 and info == (40, 60) and letterbox_hw == (42, 64) and len(labels) == 0
    assert img.shape == (40, 60, 3) and len([m for m in warnings_log if "bad.jpg" in m]) == 1
    # labels only: the bad image is now known and skipped without reading anything
    assert ds.pull_scaled_item(0, None)[3] == 2
    strict = COCODataset(tmp_path, tmp_path / "ann.json", name="imgs", img_size=(64, 64))
    with pytest.raises(DatasetError, match="bad.jpg"):
        strict.pull_scaled_item(0, 0.3)


def test_reduced_decode_of_an_exif_rotated_jpeg(tmp_path):
    from PIL import Image

    stored = np.zeros((40, 80, 3), dtype=np.uint8)
    stored[:, :40] = (0, 0, 255)  # left half red (BGR)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    (tmp_path / "img").mkdir()
    Image.fromarray(stored[..., ::-1]).save(tmp_path / "img" / "r.jpg", quality=100, exif=exif)
    for (h, w), rotated in [((40, 80), False), ((80, 40), True)]:
        (tmp_path / "ann.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "r.jpg", "height": h, "width": w}],
            "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
        ds = COCODataset(tmp_path, tmp_path / "ann.json", name="img", img_size=(80, 80))
        img, _, _, _, _, pitch = ds.pull_scaled_item(0, 0.25)
        assert img.shape == (h // 4, w // 4, 3) and pitch == (4.0, 4.0)
        red = img[..., 2] > 128
        if rotated:  # the red left half is now the top half
            assert red[:9].all() and not red[11:].any()
        else:
            assert red[:, :9].all() and not red[:, 11:].any()
