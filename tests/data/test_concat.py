"""ConcatDataset / MixConcatDataset: index mapping, label maps, MosaicDetection over a COCO + VOC concatenation,
and the (mosaic_flag, index) pairs of YoloBatchSampler passed on to the holding dataset."""
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from yolox.data import (VOC_CLASSES, COCODataset, ConcatDataset, DataLoader, InfiniteSampler, MixConcatDataset,
                        MosaicDetection, RepeatFactorSampler, TrainTransform, VOCDetection, YoloBatchSampler,
                        label_map_by_name, repeat_factors_from_categories)

from test_voc import write_voc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cli_helpers import make_dataset  # noqa: E402

SIZE = (64, 64)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A generated COCO-format set (8 images, 4 classes) and a VOC folder (4 images)."""
    root = tmp_path_factory.mktemp("concat")
    coco = make_dataset(root / "coco", "coco")
    write_voc(root / "VOCdevkit")
    coco_ds = COCODataset(coco["root"], json_file="instances_train.json", name="train2017", img_size=SIZE)
    voc_ds = VOCDetection(root / "VOCdevkit", image_sets=[("2007", "trainval")], img_size=SIZE)
    return coco_ds, voc_ds


def test_index_mapping(parts):
    coco, voc = parts
    both = ConcatDataset([coco, voc])
    assert len(both) == 12 and both.cumulative_sizes == [8, 12] and both.input_dim == SIZE
    assert both.locate(0) == (0, 0) and both.locate(7) == (0, 7) and both.locate(8) == (1, 0)
    assert both.locate(-1) == (1, 3) and both.locate(-12) == (0, 0)
    for bad in (12, -13):
        with pytest.raises(IndexError):
            both.locate(bad)
    for index in range(12):
        k, local = both.locate(index)
        part = (coco, voc)[k]
        np.testing.assert_array_equal(both.load_anno(index), part.load_anno(local))
        img, labels, hw, img_id = both.pull_item(index)
        ref = part.pull_item(local)
        np.testing.assert_array_equal(img, ref[0])
        np.testing.assert_array_equal(labels, ref[1])
        assert (hw, img_id) == (ref[2], ref[3])
        scaled = both.pull_scaled_item(index, 0.5)
        np.testing.assert_array_equal(scaled[1], ref[1])
    assert both.img_cat_ids() == coco.img_cat_ids() + voc.img_cat_ids()
    assert both.num_classes == 20 and both.class_names is None  # the names differ: no common list


def test_label_maps(parts):
    coco, voc = parts
    # the VOC classes keep their indices, the 4 generated classes come after them; the VOC cats are dropped
    voc_map = list(range(20))
    voc_map[VOC_CLASSES.index("cat")] = -1
    both = ConcatDataset([coco, voc], label_maps=[[20, 21, 22, 23], voc_map],
                         class_names=list(VOC_CLASSES) + coco.class_names)
    assert both.num_classes == 24 and both.class_names[20:] == coco.class_names
    for index in range(8):
        original = coco.load_anno(index)
        mapped = both.load_anno(index)
        np.testing.assert_array_equal(mapped[:, :4], original[:, :4])
        np.testing.assert_array_equal(mapped[:, 4], original[:, 4] + 20)
    assert len(both.load_anno(8 + 1)) == 0  # 000002 holds a cat only
    np.testing.assert_array_equal(both.pull_item(8)[1][:, 4], [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")])
    cats = both.img_cat_ids()
    assert cats[:8] == [[c + 20 for c in image] for image in coco.img_cat_ids()] and cats[9] == []
    factors = repeat_factors_from_categories(cats, 0.5)
    sampler = RepeatFactorSampler(factors, seed=0)
    assert len(factors) == 12 and next(iter(sampler)) < 12
    assert label_map_by_name(["dog", "airplane", "cat"], VOC_CLASSES) == [11, -1, 7]
    with pytest.raises(ValueError, match="label_maps\\[0\\] has 2 entries but dataset 0 has 4 classes"):
        ConcatDataset([coco, voc], label_maps=[[0, 1], None])


class PullOnly:
    """The minimum MosaicDetection needs: len, pull_item, load_anno (no pull_scaled_item, no input_dim)."""

    def __init__(self, n=3):
        self.n = n

    def __len__(self):
        return self.n

    def load_anno(self, index):
        return np.array([[4.0, 4.0, 30.0, 30.0, index % 2]])

    def pull_item(self, index):
        return np.full((48, 64, 3), 50 * index, np.uint8), self.load_anno(index) * 1.0, (48, 64), 100 + index


def test_mosaic_over_a_concatenation(parts):
    coco, voc = parts
    both = ConcatDataset([coco, voc, PullOnly()], label_maps=[[20, 21, 22, 23], None, None])
    assert both.pull_scaled_item(12, None)[4:] == ((48, 64), (1.0, 1.0))  # pull_item's image, pitch 1
    mosaic = MosaicDetection(both, img_size=SIZE, preproc=TrainTransform(max_labels=40), mosaic_scale=(0.8, 1.2))
    random.seed(0)
    np.random.seed(0)
    classes = set()
    for index in range(len(both)):
        for flag in (True, False):
            img, labels, _, _ = mosaic[(flag, index)]
            assert img.shape == (3, *SIZE)
            classes |= set(labels[labels[:, 3] > 0, 0].astype(int).tolist())
    assert classes & {20, 21, 22, 23} and classes & set(range(20)) and max(classes) < 24
    sampler = YoloBatchSampler(InfiniteSampler(len(mosaic), seed=0), batch_size=4)
    imgs, targets, _, _ = next(iter(DataLoader(mosaic, batch_sampler=sampler, num_workers=0)))
    assert imgs.shape == (4, 3, *SIZE) and targets.shape == (4, 40, 5)


class Recorder(torch.utils.data.Dataset):
    def __init__(self, n, tag):
        self.n, self.tag, self.calls = n, tag, []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        self.calls.append(index)
        return self.tag


def test_mix_concat_passes_the_flag_and_local_index():
    first, second = Recorder(3, "a"), Recorder(2, "b")
    mix = MixConcatDataset([first, second], input_dimension=SIZE)
    assert [mix[(True, i)] for i in range(5)] == ["a", "a", "a", "b", "b"]
    assert mix[4] == "b" and mix[(False, -1)] == "b"
    assert first.calls == [(True, 0), (True, 1), (True, 2)]
    assert second.calls == [(True, 0), (True, 1), 1, (False, 1)]


def test_mix_concat_of_mosaic_datasets(parts):
    coco, voc = parts
    children = [MosaicDetection(d, img_size=SIZE, preproc=TrainTransform(max_labels=40), mosaic_scale=(0.8, 1.2))
                for d in (coco, voc)]
    mix = MixConcatDataset(children)
    assert mix.input_dim == SIZE and len(mix) == 12
    sampler = YoloBatchSampler(InfiniteSampler(len(mix), seed=0), batch_size=6, mosaic=False)
    imgs, targets, img_info, _ = next(iter(DataLoader(mix, batch_sampler=sampler, num_workers=0)))
    assert imgs.shape == (6, 3, *SIZE) and targets.shape == (6, 40, 5)
    img, labels, hw, img_id = mix[(False, 9)]  # VOC image 1 without mosaic: its own size as img_info
    assert not children[1].enable_mosaic and hw == (50, 50) and img_id == 1
    img, labels, hw, img_id = mix[(True, 9)]  # a mosaic: the output size
    assert children[1].enable_mosaic and hw == SIZE
