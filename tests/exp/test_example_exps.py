"""The example experiments (VOC, custom COCO-format data, custom nano): upstream's settings, and their datasets,
loaders and evaluators built on generated data."""
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from yolox.data import VOC_CLASSES, COCODataset, MosaicDetection, VOCDetection
from yolox.evaluators import COCOEvaluator, VOCEvaluator
from yolox.exp import get_exp

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS / "data"))
sys.path.insert(0, str(TESTS / "tools"))
from cli_helpers import make_dataset  # noqa: E402
from test_voc import IMAGES_2007, IMAGES_2012, write_voc  # noqa: E402

VOC_EXP = ROOT / "exps/example/yolox_voc/yolox_voc_s.py"
CUSTOM_S = ROOT / "exps/example/custom/yolox_s.py"
CUSTOM_NANO = ROOT / "exps/example/custom/nano.py"


def small(exp, size=(64, 64)):
    """Settings that keep the test on the CPU in seconds."""
    exp.input_size = exp.test_size = size
    exp.data_num_workers = 0
    exp.multiscale_range = 0
    exp.mosaic_scale = (0.8, 1.2)
    return exp


def test_upstream_settings():
    voc = get_exp(str(VOC_EXP))
    assert voc.exp_name == "yolox_voc_s" and voc.num_classes == 20
    assert (voc.depth, voc.width, voc.warmup_epochs) == (0.33, 0.50, 1)
    assert (voc.mosaic_prob, voc.mixup_prob, voc.hsv_prob, voc.flip_prob) == (1.0, 1.0, 1.0, 0.5)
    assert voc.train_sets == [("2007", "trainval"), ("2012", "trainval")] and voc.val_sets == [("2007", "test")]
    assert voc.get_data_dir().endswith("VOCdevkit") and voc.get_class_names() == list(VOC_CLASSES)

    custom = get_exp(str(CUSTOM_S))
    assert custom.exp_name == "yolox_s" and (custom.depth, custom.width) == (0.33, 0.50)
    assert custom.data_dir == "datasets/coco128" and custom.num_classes == 71
    assert (custom.train_ann, custom.val_ann) == ("instances_train2017.json", "instances_val2017.json")
    assert (custom.max_epoch, custom.data_num_workers, custom.eval_interval) == (300, 4, 1)

    nano = get_exp(str(CUSTOM_NANO))
    assert nano.exp_name == "nano" and (nano.depth, nano.width, nano.depthwise) == (0.33, 0.25, True)
    assert nano.input_size == nano.test_size == (416, 416) and nano.mosaic_scale == (0.5, 1.5)
    assert nano.random_size == (10, 20) and nano.enable_mixup is False
    assert nano.data_dir == "datasets/coco128" and nano.num_classes == 71


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("exps") / "VOCdevkit"
    write_voc(root)
    write_voc(root, IMAGES_2012, year="2012", first_index=len(IMAGES_2007))
    return root


def test_voc_exp_builds_its_data_and_evaluator(voc_root):
    exp = small(get_exp(str(VOC_EXP)))
    exp.merge(["data_dir", str(voc_root), "depth", "0.33", "width", "0.25"])
    dataset = exp.get_dataset()
    assert isinstance(dataset, VOCDetection) and len(dataset) == 6 and dataset.num_classes == exp.num_classes
    random.seed(0)
    torch.manual_seed(0)
    loader = exp.get_data_loader(batch_size=2, is_distributed=False)
    assert isinstance(loader.dataset, MosaicDetection)
    imgs, targets, _, _ = next(iter(loader))
    assert imgs.shape == (2, 3, 64, 64) and targets.shape[0] == 2

    evaluator = exp.get_evaluator(batch_size=2, is_distributed=False)
    assert isinstance(evaluator, VOCEvaluator) and evaluator.num_images == 4
    eval_set = evaluator.dataloader.dataset
    assert eval_set.image_set == [("2007", "test")] and eval_set.use_07_metric
    model = exp.get_model()
    ap50_95, ap50, summary = exp.eval(model, evaluator, False)
    assert 0.0 <= ap50_95 <= ap50 <= 1.0 and "map_5095:" in summary and "AP for dog" in summary
    assert set(evaluator.last_metrics) >= {"AP", "AP50", "AP75", "per_class_AP50"}


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("custom") / "mine", "coco")


@pytest.mark.parametrize("exp_file", [CUSTOM_S, CUSTOM_NANO], ids=["yolox_s", "nano"])
def test_custom_exps_build_on_a_coco_format_folder(exp_file, coco_data):
    exp = small(get_exp(str(exp_file)))
    exp.merge(["data_dir", coco_data["root"], "train_ann", "instances_train.json", "val_ann", "instances_val.json",
               "num_classes", str(coco_data["num_classes"])])
    dataset = exp.get_dataset()
    assert isinstance(dataset, COCODataset) and len(dataset) == 8 and dataset.num_classes == 4
    loader = exp.get_data_loader(batch_size=2, is_distributed=False)
    imgs, _, _, _ = next(iter(loader))
    assert imgs.shape == (2, 3, 64, 64)
    evaluator = exp.get_evaluator(batch_size=2, is_distributed=False)
    assert isinstance(evaluator, COCOEvaluator) and len(evaluator.dataloader.dataset) == 4
    assert exp.get_class_names() == dataset.class_names  # demo names: the json's categories
    model = exp.get_model()
    depthwise = any(type(m).__name__ == "DWConv" for m in model.modules())
    assert depthwise == (exp_file == CUSTOM_NANO)


def test_nano_multiscale_uses_random_size():
    exp = get_exp(str(CUSTOM_NANO))
    random.seed(0)
    sizes = {exp.random_resize(None, 0, 0, False) for _ in range(200)}
    assert sizes <= {(32 * k, 32 * k) for k in range(10, 21)} and len(sizes) > 5
    assert min(sizes)[0] == 320 and max(sizes)[0] == 640
    exp.multiscale_mode = "image"
    assert exp.train_sizes() == tuple(range(320, 641, 32))
    exp.merge(["random_size", "(12, 14)"])
    assert exp.train_sizes() == (384, 416, 448)
    np.testing.assert_equal(exp.get_train_transform().size_choices, (384, 416, 448))
