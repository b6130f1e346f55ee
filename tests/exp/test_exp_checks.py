"""Experiment names, settings that contradict each other, override types, and the printed configuration."""
from pathlib import Path

import pytest

from yolox.exp import Exp, ExpConfigError, LTProxyExp, LVISExp, get_exp
from yolox.exp.compatible_settings import check_compatible_settings
from yolox.models.losses.builder import UnknownLossError
from yolox.utils import YOLOXError

ROOT = Path(__file__).resolve().parents[2]
EXP_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "exps").rglob("*.py"))


@pytest.mark.parametrize("path", EXP_FILES)
def test_every_exp_file_of_the_repository_validates(path):
    exp = get_exp(str(ROOT / path))
    assert check_compatible_settings(exp) is exp
    exp.merge([])  # merging validates too


@pytest.mark.parametrize("base", ["Exp", "LVISExp", "LTProxyExp"])
def test_an_exp_file_without_a_name_is_named_after_the_file(tmp_path, base):
    for stem in ("first_run", "second_run"):
        (tmp_path / f"{stem}.py").write_text(
            f"from yolox.exp import {base}\n\n\nclass Exp({base}):\n    def __init__(self):\n"
            f"        super().__init__()\n        self.depth = 0.33\n")
    first, second = get_exp(str(tmp_path / "first_run.py")), get_exp(str(tmp_path / "second_run.py"))
    assert (first.exp_name, second.exp_name) == ("first_run", "second_run")


def test_a_name_set_by_the_exp_file_is_kept(tmp_path):
    (tmp_path / "named.py").write_text(
        "from yolox.exp import Exp as Base\n\n\nclass Exp(Base):\n    def __init__(self):\n"
        "        super().__init__()\n        self.exp_name = 'my_run'\n")
    assert get_exp(str(tmp_path / "named.py")).exp_name == "my_run"


def test_an_exception_in_the_exp_constructor_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("from yolox.exp import Exp as Base\n\n\nclass Exp(Base):\n    def __init__(self):\n"
                    "        super().__init__()\n        self.width = self.wdth * 2\n")
    with pytest.raises(ExpConfigError) as info:
        get_exp(str(path))
    message = str(info.value)
    assert message.startswith(f"Exp() of experiment file {path} failed (line 7): AttributeError")
    assert "wdth" in message and "\n" not in message


# (overrides, fragments of the message): each names the conflicting settings and what to set instead
CONFLICTS = {
    "atss without anchors": (["assigner", "atss"],
                             ["assigner 'atss' needs anchors", "set anchor_scales (3, 4)", "or assigner simota"]),
    "anchors with simota": (["anchor_scales", "(3,4)"],
                            ["anchor_scales (3, 4)", "needs assigner 'atss'", "set assigner atss"]),
    "efl on the YOLOX head": (["cls_loss", "efl"],
                              ["cls_loss 'efl' learns from the negatives", "foreground locations only",
                               "anchor_scales (3, 4) and assigner atss", "or cls_loss sigmoid"]),
    "fl on the YOLOX head": (["cls_loss", "fl"], ["cls_loss 'fl' learns from the negatives"]),
    "qfl on the YOLOX head": (["cls_loss", "qfl"], ["cls_loss 'qfl' learns from the negatives"]),
    "eqfl on the YOLOX head": (["cls_loss", "eqfl"], ["cls_loss 'eqfl' learns from the negatives"]),
    "eqlv2 on the YOLOX head": (["cls_loss", "eqlv2"], ["cls_loss 'eqlv2' learns from the negatives"]),
    "unknown stats layout": (["efl_stats_layout", "per_anchor"],
                             ["unknown efl_stats_layout 'per_anchor' (per_class or released)"]),
    "unknown assigner": (["assigner", "ota"], ["unknown assigner 'ota' (simota or atss)"]),
    "bad loss kwargs": (["anchor_scales", "(3,4)", "assigner", "atss", "cls_loss", "efl", "cls_loss_kwargs",
                         "{'gamma': 2}"], ["cls_loss 'efl' does not accept cls_loss_kwargs {'gamma': 2}"]),
    "background weight on YOLOX": (["background_weight", "10.0"], ["background_weight 10.0 needs YOLOX*"]),
    "zero anchor scale": (["anchor_scales", "(0, 4)", "assigner", "atss"], ["anchor_scales must be None"]),
    "zero accumulation": (["accumulate_steps", "0"], ["accumulate_steps must be a positive integer"]),
}


@pytest.mark.parametrize("case", sorted(CONFLICTS))
def test_conflicting_settings_fail_at_merge_and_before_the_model_is_built(case):
    overrides, fragments = CONFLICTS[case]
    exp = Exp()
    with pytest.raises(ExpConfigError) as info:
        exp.merge(overrides)
    for fragment in fragments:
        assert fragment in str(info.value), (case, str(info.value))
    with pytest.raises(ExpConfigError):  # the Python API: get_model checks before building anything
        exp.get_model()
    assert getattr(exp, "model", None) is None


def test_each_loss_is_accepted_with_yolox_star_and_only_sigmoid_with_yolox():
    for loss in ("sigmoid", "fl", "qfl", "efl", "eqfl", "eqlv2"):
        exp = LVISExp()
        exp.use_yolox_star(loss)
        exp.merge(["efl_stats_layout", "released"])
        if loss != "sigmoid":
            with pytest.raises(ExpConfigError, match="learns from the negatives"):
                LVISExp().merge(["cls_loss", loss])
    LTProxyExp("efl").merge(["background_weight", "150.0"])


def test_an_unknown_loss_is_reported_by_the_loss_builder():
    with pytest.raises(UnknownLossError) as info:
        Exp().merge(["cls_loss", "softmax"])
    assert isinstance(info.value, YOLOXError)
    assert str(info.value) == ("unknown classification loss (cls_loss) 'softmax'; choose from sigmoid, fl, qfl, efl, "
                               "eqfl, eqlv2")


def test_overrides_of_attributes_that_may_be_none_keep_their_type():
    exp = LVISExp()
    exp.merge(["seed", "3", "repeat_thresh", "None", "data_dir", "/data/lvis"])
    assert exp.seed == 3 and exp.repeat_thresh is None and exp.data_dir == "/data/lvis"
    exp.merge(["repeat_thresh", "1", "seed", "None"])
    assert exp.repeat_thresh == 1.0 and isinstance(exp.repeat_thresh, float) and exp.seed is None
    for key, value, message in (("seed", "abc", "'seed' expects None or int, got 'abc'"),
                                ("seed", "1.5", "'seed' expects None or int, got '1.5'"),
                                ("seed", "True", "'seed' expects None or int"),
                                ("repeat_thresh", "often", "'repeat_thresh' expects None or float"),
                                ("anchor_scales", "3", "'anchor_scales' expects None or tuple"),
                                ("max_epoch", "None", "'max_epoch' cannot be None")):
        with pytest.raises(ExpConfigError, match=message):
            Exp().merge([key, value])


def _table(exp):
    rows = {}
    for line in repr(exp).splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def test_the_printed_configuration_shows_switched_off_settings_as_off():
    rows = _table(LTProxyExp("efl"))  # enable_mixup False
    assert rows["enable_mixup"] == "False"
    assert rows["mixup_prob"] == "off (enable_mixup False)"
    assert rows["mixup_scale"] == "off (enable_mixup False)"
    assert rows["simota_center_radius"] == "off (assigner 'atss')" and rows["atss_topk"] == "18"
    exp = Exp()
    exp.merge(["ema", "False"])
    rows = _table(exp)
    assert rows["mixup_prob"] == "1.0" and rows["ema_decay"] == "off (ema False)"
    assert rows["rfs_rounding"] == "off (repeat_thresh None)"
    assert rows["pre_nms_topk"] == "off (anchor_scales None)" and rows["atss_topk"] == "off (assigner 'simota')"
    assert rows["efl_stats_layout"] == "off (cls_loss 'sigmoid')"
