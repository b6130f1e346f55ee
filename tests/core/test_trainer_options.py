"""The trainer's throughput options give the default path's training on the CPU: channels-last memory
format, torch.compile (and its eager fallback), the fused SGD kernel; bfloat16 autocast trains without loss
scaling and stays close to float32."""
import itertools
from types import SimpleNamespace

import pytest
import torch

from yolox.core import Trainer
from yolox.core.hooks import EMAHook, GradientStatsHook
from yolox.exp.yolox_base import Exp
from yolox.models.compile import is_compiled

STEPS = 3
SIZE = 96


def tiny_exp(tmp_path, **options):
    """YOLOX* (ATSS, two anchors, IoU branch) with EFL on 7 classes, YOLOX-nano's widths."""
    exp = Exp()
    exp.num_classes, exp.depth, exp.width = 7, 0.33, 0.25
    exp.cls_loss, exp.assigner, exp.anchor_scales = "efl", "atss", (3, 4)
    exp.input_size = exp.test_size = (SIZE, SIZE)
    exp.multiscale_range = 0
    exp.warmup_epochs = 0  # a real learning rate from the first step, so that the steps move the weights
    exp.output_dir = str(tmp_path)
    exp.seed = None
    for key, value in options.items():
        setattr(exp, key, value)
    return exp


def batches(num_classes):
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(STEPS):
        imgs = torch.rand(2, 3, SIZE, SIZE, generator=gen) * 255
        labels = torch.zeros(2, 50, 5)
        for b in range(2):
            n = 2 + i + b
            cxcy = torch.rand(n, 2, generator=gen) * 60 + 18
            wh = torch.rand(n, 2, generator=gen) * 30 + 8
            cls = torch.randint(0, num_classes, (n, 1), generator=gen).float()
            labels[b, :n] = torch.cat([cls, cxcy, wh], 1)
        out.append((imgs, labels))
    return out


def train_steps(tmp_path, bf16=False, steps=STEPS, **options):
    """(per-step logged losses, final training weights, EFL statistics, EMA weights, trainer) after ``steps``
    steps from the same initial weights on the same batches."""
    exp = tiny_exp(tmp_path, **options)
    args = SimpleNamespace(fp16=False, bf16=bf16, device="cpu", experiment_name="run", batch_size=2, cache=None,
                           logger="none", resume=False, ckpt=None, start_epoch=None)
    trainer = Trainer(exp, args)
    torch.manual_seed(0)
    model = exp.get_model()
    trainer.optimizer = exp.get_optimizer(2)
    trainer.max_iter = 100
    trainer.epoch = trainer.iter = trainer.start_epoch = trainer.start_iter_in_epoch = 0
    trainer.lr_scheduler = exp.get_lr_scheduler(exp.basic_lr_per_img * 2, trainer.max_iter)
    trainer.frequency_groups = None
    trainer.attach_model(model)
    # the hooks a step needs (statistics, EMA); no progress lines, checkpoints or evaluations
    trainer.hooks = [hook for hook in trainer.hooks if isinstance(hook, (GradientStatsHook, EMAHook))]
    trainer.call_hooks("before_train")
    trainer.train_iter = itertools.cycle([(img, tgt, None, None) for img, tgt in batches(exp.num_classes)])
    model.train()
    losses = []
    for it in range(steps):
        trainer.iter = it
        trainer.run_step()
        losses.append({k: v for k, v in trainer.step_check.values.items() if k.endswith("loss")})
    efl = model.head.cls_loss
    stats = {"pos_grad": efl.pos_grad.clone(), "neg_grad": efl.neg_grad.clone()}
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema = {k: v.detach().clone() for k, v in trainer.ema_model.ema.state_dict().items()}
    return losses, weights, stats, ema, trainer


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return train_steps(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def reference_one_step(tmp_path_factory):
    return train_steps(tmp_path_factory.mktemp("reference_one_step"), steps=1)


def assert_same_training(result, reference, loss_tol=1e-5, stats_tol=1e-5, weight_tol=1e-6):
    """Every step's logged losses within ``loss_tol`` of the step's total loss (relative), the EFL
    statistics and the final training and EMA weights within the given relative (and absolute) tolerances."""
    losses, weights, stats, ema, _ = result
    ref_losses, ref_weights, ref_stats, ref_ema, _ = reference
    assert len(losses) == len(ref_losses) and set(losses[0]) == set(ref_losses[0])
    for step, ref_step in zip(losses, ref_losses):
        for key in ref_step:
            assert abs(step[key] - ref_step[key]) <= loss_tol * abs(ref_step["total_loss"]), key
    for key in ("pos_grad", "neg_grad"):
        assert ref_stats[key].abs().sum() > 0  # the statistics were collected at all
        torch.testing.assert_close(stats[key], ref_stats[key], rtol=stats_tol, atol=stats_tol * 1e-2)
    assert weights.keys() == ref_weights.keys()
    for key in ref_weights:
        torch.testing.assert_close(weights[key], ref_weights[key], rtol=weight_tol, atol=weight_tol, msg=key)
    for key in ref_ema:
        torch.testing.assert_close(ema[key], ref_ema[key], rtol=weight_tol, atol=weight_tol, msg=key)


def test_reference_steps_move_the_weights(reference):
    losses, weights, _, _, trainer = reference
    torch.manual_seed(0)
    initial = tiny_exp(trainer.exp.output_dir).get_model().state_dict()
    moved = [k for k in weights if weights[k].is_floating_point() and not torch.equal(weights[k], initial[k])]
    assert len(moved) > 100
    assert all(torch.isfinite(torch.tensor(list(step.values()))).all() for step in losses)


def test_channels_last_trains_as_the_default(tmp_path, reference_one_step):
    result = train_steps(tmp_path, steps=1, channels_last=True)
    trainer = result[4]
    conv = trainer.model.backbone.backbone.stem.conv.conv
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # NHWC convolution kernels add in another order: the losses of the fixed batch agree to 1e-5, the
    # gradients (so the statistics and the updated weights) to float32 summation-order noise. Over several
    # steps such differences grow as any two float32 runs' do, so one step is compared.
    assert_same_training(result, reference_one_step, loss_tol=1e-5, stats_tol=1e-4, weight_tol=1e-4)


def test_channels_last_checkpoint_loads_into_a_default_model(tmp_path):
    _, weights, _, _, trainer = train_steps(tmp_path, channels_last=True)
    model = tiny_exp(tmp_path).get_model().eval()
    model.load_state_dict(weights)
    trained = trainer.model.eval()
    x = torch.rand(1, 3, SIZE, SIZE) * 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x.contiguous(memory_format=torch.channels_last)),
                                   rtol=1e-5, atol=1e-5)


def test_compiled_model_trains_as_eager(tmp_path, reference):
    # aot_eager: Dynamo's graph capture and AOT autograd's traced backward, without a C++ compiler
    result = train_steps(tmp_path, compile_model=True, compile_backend="aot_eager")
    trainer = result[4]
    assert trainer.compiled and is_compiled(trainer.model)
    assert not is_compiled(trainer.ema_model.ema)  # the EMA copy runs its own weights eagerly
    assert_same_training(result, reference)


def test_compiler_failure_falls_back_to_eager(tmp_path, reference, capfd):
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no compiler here")

    result = train_steps(tmp_path, compile_model=True, compile_backend=broken_backend)
    trainer = result[4]
    assert not trainer.compiled and not is_compiled(trainer.model)
    log = capfd.readouterr().err
    assert log.count("torch.compile failed (RuntimeError: no compiler here); training eagerly") == 1
    assert_same_training(result, reference)


def test_fused_sgd_trains_as_the_default(tmp_path, reference):
    result = train_steps(tmp_path, fused_optimizer=True)
    assert result[4].optimizer.defaults["fused"] is True
    assert_same_training(result, reference)


def test_bfloat16_autocast_trains_without_loss_scaling(tmp_path, reference):
    losses, weights, stats, _, trainer = train_steps(tmp_path, bf16=True)
    assert trainer.amp_training and trainer.autocast_dtype is torch.bfloat16
    assert not trainer.loss_scaling and not trainer.scaler.is_enabled()
    assert trainer.nonfinite_streak == 0 and trainer.ema_model.updates == STEPS  # no step skipped
    ref_losses, ref_weights, ref_stats, _, _ = reference
    for step, ref_step in zip(losses, ref_losses):
        # bfloat16 keeps 8 significant bits: the losses agree to a few percent, not to float32's precision
        assert step["total_loss"] == pytest.approx(ref_step["total_loss"], rel=5e-2)
    for key in ("pos_grad", "neg_grad"):  # statistics in float32 units, every step committed
        assert stats[key].dtype == torch.float32
        torch.testing.assert_close(stats[key], ref_stats[key], rtol=0.1, atol=1e-3)
    assert all(w.dtype == ref_weights[k].dtype for k, w in weights.items())  # the master weights stay float32
