"""Untrusted checkpoints: pickles that would run code are refused; published YOLOX layouts load; a checkpoint
of another architecture or class count is partially loaded (``-c``) or refused (``--resume``), naming the
tensors that do not match."""
import argparse
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from yolox.core import Trainer
from yolox.exp import get_exp
from yolox.utils import CheckpointError, load_checkpoint_file, load_ckpt

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "reference"


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_torch_checkpoint_is_refused_and_runs_nothing(tmp_path, zip_format):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.ones(1)}, "payload": RunsCode(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert message.startswith(f"refusing to load {path}") and "\n" not in message
    assert not marker.exists()
    # the same file without weights_only would have run the payload: the test above can fail
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {path}"):
        load_checkpoint_file(path)


def _official_layout(size):
    """A checkpoint laid out like the published YOLOX weights: {"start_epoch", "model", "optimizer"}."""
    model = OrderedDict()
    for line in (REFERENCE / f"yolox_{size}.tsv").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        shape = tuple(int(x) for x in shape.strip("()").split(",") if x.strip())
        model[key] = torch.zeros(shape, dtype=getattr(torch, dtype.split(".")[1])) + 0.5
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                 "param_groups": [{"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                                   "dampening": 0, "params": [0]}]}
    return {"start_epoch": 300, "model": model, "optimizer": optimizer}


@pytest.mark.parametrize("zip_format", [True, False])
def test_published_yolox_layout_loads_completely(tmp_path, zip_format):
    path = tmp_path / "yolox_nano.pth"
    torch.save(_official_layout("nano"), path, _use_new_zipfile_serialization=zip_format)
    ckpt = load_checkpoint_file(path)
    model = get_exp(exp_name="yolox-nano").get_model()
    assert load_ckpt(model, ckpt["model"]) == []
    assert float(model.state_dict()["head.cls_preds.0.weight"].mean()) == pytest.approx(0.5)


def test_other_class_count_is_partially_loaded_naming_the_skipped_tensors(tmp_path, capfd):
    exp = get_exp(exp_name="yolox-nano")
    exp.num_classes = 7
    model = exp.get_model()
    skipped = load_ckpt(model, _official_layout("nano")["model"])
    assert sorted(s.split(" ")[0] for s in skipped) == sorted(
        f"head.cls_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias"))
    assert all("(checkpoint (80" in s and "vs model (7" in s for s in skipped)
    # everything else was loaded
    assert float(model.state_dict()["head.reg_preds.0.weight"].mean()) == pytest.approx(0.5)


def test_resume_from_another_architecture_is_refused_listing_the_mismatch(tmp_path):
    exp = get_exp(exp_name="yolox-nano")
    exp.num_classes, exp.output_dir = 7, str(tmp_path / "out")
    path = tmp_path / "yolox_nano.pth"
    torch.save(_official_layout("nano"), path)
    args = argparse.Namespace(experiment_name="run", batch_size=2, fp16=False, cache=None, resume=True,
                              ckpt=str(path), start_epoch=None, logger="none", device="cpu")
    trainer = Trainer(exp, args)
    model = exp.get_model()
    trainer.optimizer = exp.get_optimizer(2)
    with pytest.raises(CheckpointError) as info:
        trainer.resume_train(model)
    message = str(info.value)
    assert "another architecture or class count" in message and "6 mismatched tensors" in message
    assert "head.cls_preds.0.weight (checkpoint (80, 64, 1, 1) vs model (7, 64, 1, 1))" in message
    assert "\n" not in message


@pytest.mark.parametrize("content, kind", [(torch.ones(3), "Tensor"), ([torch.ones(3)], "list"), (7, "int")])
def test_a_file_that_is_not_a_checkpoint_dict_is_refused(tmp_path, content, kind):
    path = tmp_path / "weights.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    assert str(info.value).startswith(f"{path} is not a checkpoint: it holds a {kind}, not a dict of weights")


@pytest.mark.parametrize("content, message", [
    (torch.ones(3), "is not a checkpoint: it holds a Tensor"),
    ({"model": [torch.ones(3)]}, "holds no model weights"),
    ({"model": {"w": "not a tensor"}}, "holds no model weights: 1 of its 1 entries are not tensors"),
])
def test_fine_tuning_from_a_file_without_weights_is_a_clear_error(tmp_path, content, message):
    exp = get_exp(exp_name="yolox-nano")
    exp.output_dir = str(tmp_path / "out")
    path = tmp_path / "weights.pth"
    torch.save(content, path)
    args = argparse.Namespace(experiment_name="run", batch_size=2, fp16=False, cache=None, resume=False,
                              ckpt=str(path), start_epoch=None, logger="none", device="cpu")
    with pytest.raises(CheckpointError, match=message):
        Trainer(exp, args).resume_train(exp.get_model())


def test_inference_loads_need_every_tensor_unless_partial_loading_is_asked_for(tmp_path):
    from yolox.utils.checkpoint import load_model_weights

    path = tmp_path / "yolox_nano.pth"
    torch.save(_official_layout("nano"), path)
    assert load_model_weights(get_exp(exp_name="yolox-nano").get_model(), path) == []

    exp = get_exp(exp_name="yolox-nano")
    exp.num_classes = 7
    model = exp.get_model()
    before = model.state_dict()["head.reg_preds.0.weight"].clone()
    with pytest.raises(CheckpointError) as info:
        load_model_weights(model, path)
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} does not fit the model (6 of its tensors do not load: "
                              "head.cls_preds.0.weight (checkpoint (80, 64, 1, 1) vs model (7, 64, 1, 1))")
    assert "--allow-partial-ckpt" in message and "\n" not in message
    assert torch.equal(model.state_dict()["head.reg_preds.0.weight"], before)  # nothing was loaded

    skipped = load_model_weights(model, path, allow_partial=True)
    assert len(skipped) == 6
    assert float(model.state_dict()["head.reg_preds.0.weight"].mean()) == pytest.approx(0.5)
