"""freeze_module: frozen parameters and BatchNorm statistics stay put through model.train() and an SGD step
of a YOLOX-Nano, while the rest trains."""
import copy
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from yolox.utils import freeze_module

ROOT = Path(__file__).resolve().parents[2]


def nano(num_classes=3):
    from yolox.exp import get_exp

    exp = get_exp(str(ROOT / "exps" / "default" / "yolox_nano.py"))
    exp.num_classes = num_classes
    torch.manual_seed(0)
    return exp, exp.get_model()


def labels():
    out = torch.zeros(2, 4, 5)
    out[0, 0] = torch.tensor([1, 20, 24, 16, 20])
    out[0, 1] = torch.tensor([2, 44, 40, 30, 24])
    out[1, 0] = torch.tensor([0, 32, 32, 40, 40])
    return out


def state(model, prefix):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


def sgd_step(model, exp=None):
    """model.train() and one step of SGD (the experiment's optimizer, whose groups hold the frozen
    parameters too, when ``exp`` is given)."""
    model.train()
    if exp is not None:
        exp.model = model
        exp.warmup_epochs = 0
        opt = exp.get_optimizer(2)
    else:
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    loss = model(torch.rand(2, 3, 64, 64) * 255, labels())["total_loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()


def changed(before, after):
    return sorted(k for k in before if not torch.equal(before[k], after[k]))


@pytest.mark.parametrize("by_name", [False, True])
def test_frozen_backbone_stays_and_the_head_trains(by_name):
    exp, model = nano()
    if by_name:
        assert freeze_module(model, name="backbone") is model
    else:
        freeze_module(model.backbone)
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    frozen_before, head_before = state(model, "backbone."), state(model, "head.")

    sgd_step(model, exp)

    # still eval after model.train(): running statistics (and num_batches_tracked) untouched
    assert all(not m.training for m in bns) and model.training and model.head.training
    assert changed(frozen_before, state(model, "backbone.")) == []
    head_after = state(model, "head.")
    moved = changed(head_before, head_after)
    assert any(k.endswith("running_mean") for k in moved) and any(k.endswith("running_var") for k in moved)
    assert any(k.endswith("conv.weight") for k in moved) and any(k.endswith("bn.weight") for k in moved)
    assert model.head.cls_preds[0].weight.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())


def test_without_freezing_the_backbone_changes():
    """The control: the same step moves the backbone's weights and statistics."""
    exp, model = nano()
    before = state(model, "backbone.")
    sgd_step(model, exp)
    moved = changed(before, state(model, "backbone."))
    assert any(k.endswith("running_var") for k in moved) and any(k.endswith("conv.weight") for k in moved)


def test_a_nested_submodule_by_dotted_name():
    _, model = nano()
    freeze_module(model, name="backbone.backbone.stem")
    stem_before = state(model, "backbone.backbone.stem.")
    dark2_before = state(model, "backbone.backbone.dark2.")
    sgd_step(model)
    assert changed(stem_before, state(model, "backbone.backbone.stem.")) == []
    assert changed(dark2_before, state(model, "backbone.backbone.dark2."))


def test_frozen_model_keeps_its_checkpoint_keys_and_copies():
    exp, model = nano()
    keys = list(model.state_dict())
    freeze_module(model.backbone)
    assert list(model.state_dict()) == keys
    # a frozen model's weights load into a plain one and back
    _, plain = nano()
    plain.load_state_dict(model.state_dict())
    model.load_state_dict(plain.state_dict())
    # deep copies (ModelEMA) and pickles (torch.save of the module) stay frozen
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        clone.train()
        assert all(not m.training for m in clone.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    # fuse_model still folds the frozen BatchNorm layers; outputs agree
    from yolox.models import fuse_model

    model.eval()
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        reference = model(x)
        fused = fuse_model(copy.deepcopy(model))(x)
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-3)


def test_an_unknown_name_is_one_clear_error():
    _, model = nano()
    with pytest.raises(ValueError, match=r"has no submodule 'neck' \(its children: backbone, head\)"):
        freeze_module(model, name="neck")
