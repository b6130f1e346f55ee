"""Experiment files: lookup, overrides, optimiser groups, the Table 1 configurations."""
from pathlib import Path

import pytest
import torch

from yolox.exp import Exp, ExpConfigError, get_exp

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {  # EFL supplement, Table 1: AP, APr, APc, APf on LVIS v1 val
    ("s", "sigmoid"): (15.2, 2.9, 11.6, 24.7), ("s", "fl"): (18.5, 3.6, 15.7, 28.2), ("s", "efl"): (23.3, 18.1, 21.2, 28.0),
    ("s", "qfl"): (22.5, 11.0, 20.6, 29.7), ("s", "eqfl"): (24.2, 16.3, 22.7, 29.4),
    ("m", "sigmoid"): (20.9, 5.3, 17.6, 31.5), ("m", "fl"): (25.0, 7.1, 23.5, 34.4), ("m", "efl"): (30.0, 23.8, 28.2, 34.7),
    ("m", "qfl"): (28.9, 16.8, 27.2, 36.1), ("m", "eqfl"): (31.0, 24.0, 29.1, 36.2),
}
TABLE1 = list(TARGETS)


def test_get_exp_by_name_and_file():
    by_name = get_exp(exp_name="yolox-s")
    by_file = get_exp(str(ROOT / "exps/default/yolox_s.py"))
    assert (by_name.depth, by_name.width) == (by_file.depth, by_file.width) == (0.33, 0.50)
    assert by_file.exp_name == "yolox_s"
    with pytest.raises(ExpConfigError, match="unknown experiment name"):
        get_exp(exp_name="yolox-huge")
    with pytest.raises(ExpConfigError, match="not found"):
        get_exp("exps/does_not_exist.py")


def test_merge_parses_and_type_checks():
    exp = Exp()
    exp.merge(["max_epoch", "3", "input_size", "(320,320)", "basic_lr_per_img", "1", "ema", "False",
               "data_dir", "/tmp/x", "repeat_thresh", "0.001"])
    assert exp.max_epoch == 3 and exp.input_size == (320, 320) and exp.basic_lr_per_img == 1.0
    assert exp.ema is False and exp.data_dir == "/tmp/x" and exp.repeat_thresh == 0.001
    with pytest.raises(ExpConfigError, match="unknown experiment attribute 'max_epochs'"):
        exp.merge(["max_epochs", "3"])
    with pytest.raises(ExpConfigError, match="expects int"):
        exp.merge(["max_epoch", "'ten'"])
    with pytest.raises(ExpConfigError, match="pairs"):
        exp.merge(["max_epoch"])


def test_optimizer_groups_and_cls_bias_weight_decay():
    exp = get_exp(exp_name="yolox-nano")
    exp.num_classes = 5
    exp.cls_bias_weight_decay = 1e-4
    model = exp.get_model()
    opt = exp.get_optimizer(64)
    groups = opt.param_groups
    assert [g["weight_decay"] for g in groups] == [0, exp.weight_decay, 0, 1e-4]
    assert all(g["nesterov"] for g in groups)
    cls_bias = {id(c.bias) for c in model.head.cls_preds}
    assert {id(p) for p in groups[3]["params"]} == cls_bias
    n_params = sum(1 for _ in model.parameters())
    assert sum(len(g["params"]) for g in groups) == n_params
    bn_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in groups[0]["params"]} == bn_weights


@pytest.mark.parametrize("size,loss", TABLE1 + [("m", "eqlv2")])
def test_table1_experiment_files(size, loss):
    path = ROOT / f"exps/yolox_{size}_{loss}_lvis.py"
    exp = get_exp(str(path))
    doc = path.read_text()
    assert f"python tools/train.py -f exps/yolox_{size}_{loss}_lvis.py -d 8 -b 128 --fp16" in doc
    assert exp.num_classes == 1203 and exp.repeat_thresh == 0.001 and exp.max_epoch == 300
    assert exp.dataset_format == "lvis" and exp.ema
    assert (exp.depth, exp.width) == ((0.33, 0.50) if size == "s" else (0.67, 0.75))
    if loss == "sigmoid":
        assert exp.anchor_scales is None and exp.assigner == "simota" and exp.cls_loss == "sigmoid"
    else:
        assert exp.anchor_scales == (3, 4) and exp.assigner == "atss" and exp.atss_topk == 18
        assert exp.cls_loss == loss
        assert exp.basic_lr_per_img == 0.0003125 and exp.weight_decay == 5e-4 and exp.momentum == 0.9
        assert exp.warmup_epochs == 5 and exp.min_lr_ratio == 0.05 and exp.no_aug_epochs == 15
        assert exp.ema_decay == 0.9998 and exp.cls_bias_weight_decay == 1e-4
    if (size, loss) in TARGETS:
        ap, apr, apc, apf = TARGETS[(size, loss)]
        assert f"AP {ap}, APr {apr}, APc {apc}, APf {apf}" in doc
    head = exp.get_model().head
    assert head.cls_preds[0].out_channels == head.num_anchors * 1203
    assert type(head.cls_loss).__name__ == {
        "sigmoid": "SigmoidBCELoss", "fl": "FocalLoss", "efl": "EqualizedFocalLoss", "qfl": "QualityFocalLoss",
        "eqfl": "EqualizedQualityFocalLoss", "eqlv2": "EQLv2FocalLoss"}[loss]


SCHEDULE = ("max_epoch", "warmup_epochs", "no_aug_epochs", "basic_lr_per_img", "min_lr_ratio", "momentum",
            "weight_decay", "ema_decay", "input_size", "test_size", "multiscale_range", "repeat_thresh", "num_classes",
            "depth", "width", "mosaic_prob", "mosaic_scale", "enable_mixup", "seed")


def test_lt_proxy_variants_differ_only_in_supervisor_and_loss():
    """The long-tail benchmark compares losses: schedule, data and model size must be identical."""
    exps = {loss: get_exp(str(ROOT / f"exps/example/lt_proxy/yolox_nano_{loss}.py"))
            for loss in ("sigmoid", "fl", "efl", "qfl", "eqfl")}
    for key in SCHEDULE:
        values = {loss: getattr(exp, key) for loss, exp in exps.items()}
        assert len(set(map(repr, values.values()))) == 1, (key, values)
    assert exps["sigmoid"].anchor_scales is None and exps["sigmoid"].cls_loss == "sigmoid"
    for loss in ("fl", "efl", "qfl", "eqfl"):
        assert exps[loss].anchor_scales == (3, 4) and exps[loss].assigner == "atss" and exps[loss].cls_loss == loss
    assert exps["efl"].max_epoch == 16 and exps["efl"].input_size == (160, 160) and exps["efl"].repeat_thresh == 0.01
    for loss in ("efl", "eqfl"):  # the kappa-calibrated variants change the statistics' scale and nothing else
        calibrated = get_exp(str(ROOT / f"exps/example/lt_proxy/yolox_nano_{loss}_k1000.py"))
        assert all(repr(getattr(calibrated, key)) == repr(getattr(exps[loss], key)) for key in SCHEDULE)
        assert calibrated.cls_loss == loss and calibrated.cls_loss_kwargs == {"neg_grad_scale": 1000.0}
        assert calibrated.get_cls_loss().neg_grad_scale == 1000.0 and exps[loss].get_cls_loss().neg_grad_scale == 1.0


def test_lt_proxy_background_variants_change_only_the_background_weight():
    for loss in ("fl", "efl", "qfl", "eqfl"):
        base = get_exp(str(ROOT / f"exps/example/lt_proxy/yolox_nano_{loss}.py"))
        dense = get_exp(str(ROOT / f"exps/example/lt_proxy/yolox_nano_{loss}_bg150.py"))
        assert base.background_weight == 1.0 and dense.background_weight == 150.0
        for key in (*SCHEDULE, "cls_loss", "cls_loss_kwargs", "anchor_scales", "assigner", "atss_topk"):
            assert repr(getattr(dense, key)) == repr(getattr(base, key)), (loss, key)
        assert dense.get_model().head.background_weight == 150.0
