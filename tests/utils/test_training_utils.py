"""LR schedule, EMA, checkpoints."""
import copy
import math
import os
import pickle

import pytest
import torch
import torch.nn as nn

from yolox.utils import CheckpointError, LRScheduler, ModelEMA, atomic_torch_save, load_checkpoint_file, load_ckpt


def test_yoloxwarmcos_schedule_values():
    s = LRScheduler("yoloxwarmcos", 0.1, iters_per_epoch=10, total_epochs=20, warmup_epochs=2, no_aug_epochs=4,
                    min_lr_ratio=0.05)
    assert s.update_lr(0) == 0.0
    assert s.update_lr(10) == pytest.approx(0.1 * 0.25)  # quadratic warm-up: (10/20)^2
    assert s.update_lr(20) == pytest.approx(0.1)
    mid = 20 + (160 - 20) / 2
    assert s.update_lr(mid) == pytest.approx(0.005 + 0.5 * 0.095 * (1 + math.cos(math.pi * 0.5)))
    assert s.update_lr(160) == pytest.approx(0.005)
    assert s.update_lr(199) == pytest.approx(0.005)


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.register_buffer("pos_grad", torch.zeros(2))


def test_ema_averages_params_and_bn_but_copies_other_buffers():
    model = TwoLayer()
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        model.conv.weight.fill_(1.0)
        model.bn.running_mean.fill_(2.0)
        model.pos_grad.fill_(7.0)
    old_w = ema.ema.conv.weight.clone()
    ema.update(model)
    d = 0.5 * (1 - math.exp(-1 / 2000))
    torch.testing.assert_close(ema.ema.conv.weight, old_w * d + (1 - d) * 1.0)
    torch.testing.assert_close(ema.ema.bn.running_mean, torch.full((2,), (1 - d) * 2.0))
    torch.testing.assert_close(ema.ema.pos_grad, torch.full((2,), 7.0))


def test_ema_multi_tensor_update_equals_the_per_tensor_formula():
    """The foreach update is bit for bit ``ema.mul_(d).add_(x, alpha=1 - d)`` per tensor, and copies the
    integer buffers (num_batches_tracked) and other records."""
    from yolox.exp.yolox_base import Exp

    exp = Exp()
    exp.depth, exp.width, exp.num_classes = 0.33, 0.25, 5
    torch.manual_seed(0)
    model = exp.get_model()
    ema = ModelEMA(model, decay=0.9998)
    reference = copy.deepcopy(ema.ema)
    for step in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            for name, buf in model.named_buffers():
                buf.add_(1 if not buf.is_floating_point() else torch.rand_like(buf))
        ema.update(model)
        d = ema.decay_at(step)
        sources = model.state_dict()
        with torch.no_grad():
            for name, value in reference.state_dict().items():
                if name in ema._averaged and value.dtype.is_floating_point:
                    value.mul_(d).add_(sources[name], alpha=1 - d)
                else:
                    value.copy_(sources[name])
    for name, value in reference.state_dict().items():
        assert torch.equal(ema.ema.state_dict()[name], value), name
    assert int(ema.ema.state_dict()["backbone.backbone.stem.conv.bn.num_batches_tracked"]) == 3


def test_atomic_save_and_safe_load(tmp_path):
    path = tmp_path / "ck.pth"
    atomic_torch_save({"model": {"w": torch.ones(2)}, "start_epoch": 3}, path)
    loaded = load_checkpoint_file(path)
    assert loaded["start_epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.ones(2))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp_")] == []


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint_file(path)
    assert not (tmp_path / "PWNED").exists() and not os.path.exists("PWNED")


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint_file(tmp_path / "nope.pth")


def test_partial_load_names_skipped_tensors(capfd):
    from loguru import logger
    import sys

    logger.remove()
    logger.add(sys.stderr, level="INFO")
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5))
    other = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).state_dict()
    skipped = load_ckpt(model, other)
    assert sorted(s.split(" ")[0] for s in skipped) == ["1.bias", "1.weight"]
    torch.testing.assert_close(model[0].weight, other["0.weight"])
    err = capfd.readouterr().err
    assert "skipped 2" in err and "1.weight" in err
