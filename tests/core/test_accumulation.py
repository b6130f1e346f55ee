"""Gradient accumulation (``accumulate_steps``): N micro-batches per optimizer step train as one batch of them all.

With BatchNorm on its running statistics (so that batch composition does not matter), the trainer's real step
(``Trainer.run_step``) on 4 micro-batches of 4 images gives the gradients, the EFL statistics and the weights
after the optimizer step of one batch of 16, for upstream YOLOX (SimOTA, L1 on) and YOLOX* with EFL (ATSS, both
statistic layouts); 2 gloo processes x 2 micro-batches of 4 give those of 2 processes x 8, and for the terms whose
normaliser reduces over ranks, those of one process x 16. Then: the learning rate, the EMA, the loss scaler
and the statistics' commit act once per optimizer step; the normaliser pass leaves BatchNorm's statistics
alone; an epoch counts optimizer steps; a run resumed after a mid-epoch checkpoint equals the straight one.
"""
import argparse
import contextlib
import copy
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cli_helpers import cli_in_process, load_tool, make_dataset, write_exp  # noqa: E402

from yolox.core import Trainer  # noqa: E402
from yolox.core.hooks import EMAHook, GradientStatsHook  # noqa: E402
from yolox.core.trainer import micro_batch_size  # noqa: E402
from yolox.exp.yolox_base import Exp  # noqa: E402
from yolox.utils import YOLOXError, load_checkpoint_file, seed_everything  # noqa: E402

SIZE = 64
TOTAL = 16  # images of an optimizer step
STEPS = 2  # the second step's EFL weighting comes from the statistics the first committed
KINDS = {
    "yolox": dict(),  # SimOTA, sigmoid BCE, objectness; the L1 loss switched on below
    "efl_released": dict(cls_loss="efl", assigner="atss", anchor_scales=(3, 4), efl_stats_layout="released"),
    "efl_per_class": dict(cls_loss="efl", assigner="atss", anchor_scales=(3, 4), efl_stats_layout="per_class"),
}
EFL_BUFFERS = ("pos_grad", "neg_grad", "pos_neg")


def tiny_exp(out, kind, **options):
    exp = Exp()
    exp.num_classes, exp.depth, exp.width = 5, 0.33, 0.25
    exp.input_size = exp.test_size = (SIZE, SIZE)
    exp.multiscale_range = 0
    exp.warmup_epochs = 0  # a real learning rate from the first step
    exp.output_dir = str(out)
    exp.seed = None
    for key, value in {**KINDS[kind], **options}.items():
        setattr(exp, key, value)
    return exp


def images_and_labels():
    """The 16 images of a step ([16, 3, 64, 64], 0-255) and their targets ([16, 20, 5], class cx cy w h)."""
    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(TOTAL, 3, SIZE, SIZE, generator=gen) * 255
    labels = torch.zeros(TOTAL, 20, 5)
    for b in range(TOTAL):
        n = 1 + b % 4
        cxcy = torch.rand(n, 2, generator=gen) * 36 + 14
        wh = torch.rand(n, 2, generator=gen) * 22 + 8
        cls = torch.randint(0, 5, (n, 1), generator=gen).float()
        labels[b, :n] = torch.cat([cls, cxcy, wh], 1)
    return imgs, labels


def micro_batches(imgs, labels, size, steps=STEPS):
    """The loader's items: consecutive micro-batches of ``size`` images, the same images every step."""
    one_step = [(imgs[i:i + size], labels[i:i + size], None, None) for i in range(0, len(imgs), size)]
    return iter(one_step * steps)


def make_trainer(out, kind, accumulate, batch_size=TOTAL, frozen_bn=True, **options):
    """A trainer with ``kind``'s tiny model, ready for ``run_step`` (the statistics and EMA hooks only), as the
    throughput options' tests build it; BatchNorm on its running statistics when ``frozen_bn``."""
    exp = tiny_exp(out, kind, accumulate_steps=accumulate, **options)
    args = SimpleNamespace(fp16=False, bf16=False, device="cpu", experiment_name="run", batch_size=batch_size,
                           cache=None, logger="none", resume=False, ckpt=None, start_epoch=None)
    trainer = Trainer(exp, args)
    torch.manual_seed(0)
    model = exp.get_model()
    if kind == "yolox":
        model.head.use_l1 = True  # the final epochs' L1 term, so that its normaliser is exercised too
    trainer.optimizer = exp.get_optimizer(batch_size)
    trainer.max_iter = 100
    trainer.epoch = trainer.iter = trainer.start_epoch = trainer.start_iter_in_epoch = 0
    trainer.lr_scheduler = exp.get_lr_scheduler(exp.basic_lr_per_img * batch_size, trainer.max_iter)
    trainer.frequency_groups = None
    trainer.attach_model(model)
    trainer.hooks = [hook for hook in trainer.hooks if isinstance(hook, (GradientStatsHook, EMAHook))]
    trainer.call_hooks("before_train")
    model.train()
    if frozen_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    return trainer


def train(trainer, items, steps=STEPS):
    """Run ``steps`` optimizer steps: per step the gradients and logged values; at the end the weights, their
    change over the steps, the EMA weights and the EFL statistics."""
    trainer.train_iter = items
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    initial = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    grads, losses = [], []
    for it in range(steps):
        trainer.iter = it
        trainer.run_step()
        assert trainer.step_check.step_ok
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
        losses.append(dict(trainer.step_check.values))
    loss_module = model.head.cls_loss
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"grads": grads, "losses": losses,
            "stats": {k: getattr(loss_module, k).clone() for k in EFL_BUFFERS if hasattr(loss_module, k)},
            "weights": weights, "update": {k: weights[k] - v for k, v in initial.items()},
            "ema": {k: v.detach().clone() for k, v in trainer.ema_model.ema.state_dict().items()}}


def max_relative_difference(a, b):
    """max over the tensors of max |a - b| / max |b| (floating-point tensors; others must be equal)."""
    worst = 0.0
    assert a.keys() == b.keys()
    for key in b:
        if not b[key].is_floating_point():
            assert torch.equal(a[key], b[key]), key
            continue
        scale = float(b[key].abs().max()) if b[key].numel() else 0.0
        diff = float((a[key] - b[key]).abs().max()) if b[key].numel() else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def l2_relative_differences(a, b):
    """(||a - b|| / ||b|| over all the tensors as one vector, the largest such ratio of a single tensor)."""
    assert a.keys() == b.keys()
    diff = {k: float((a[k] - b[k]).double().norm()) for k in b}
    norm = {k: float(b[k].double().norm()) for k in b}
    whole = sum(d * d for d in diff.values()) ** 0.5 / sum(n * n for n in norm.values()) ** 0.5
    return whole, max(diff[k] / norm[k] if norm[k] > 0 else diff[k] for k in b)


MEASURED = {}  # the largest relative differences seen, printed at the end (pytest -s)


def assert_same(result, reference, tag, tol=1e-5):
    """Gradients of every step: relative L2 difference <= ``tol`` as a whole and ``10 * tol`` per tensor (one
    tensor's sum, e.g. a classification bias's over every anchor, cancels so much that float32 summation order
    alone moves it by ~6e-6: the same 16 images in another order do); the weights' change over the steps:
    relative L2 difference <= ``tol``; the weights, the EMA weights and the EFL statistics: max |difference| /
    max |value| <= ``tol`` per tensor."""
    grads = [l2_relative_differences(g, r) for g, r in zip(result["grads"], reference["grads"])]
    worst = {"grads": max(g[0] for g in grads), "grads_per_tensor": max(g[1] for g in grads)}
    worst["update"] = l2_relative_differences(result["update"], reference["update"])[0]
    worst["weights"] = max_relative_difference(result["weights"], reference["weights"])
    worst["ema"] = max_relative_difference(result["ema"], reference["ema"])
    if reference["stats"]:
        assert float(reference["stats"]["pos_grad"].abs().sum()) > 0  # collected at all
        worst["stats"] = max_relative_difference(result["stats"], reference["stats"])
    MEASURED[tag] = worst
    print(f"\n{tag}: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    limits = {k: 10 * tol if k.endswith("per_tensor") else tol for k in worst}
    assert all(worst[k] <= limits[k] for k in worst), (tag, worst)


def assert_grads_moved(result):
    assert any(float(g.abs().max()) > 0 for g in result["grads"][0].values())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """(kind, accumulate, l1_loss_weight) -> one process's result on the 16 images, cached."""
    cache = {}
    data = images_and_labels()

    def get(kind, accumulate, l1_weight=1.0):
        key = (kind, accumulate, l1_weight)
        if key not in cache:
            torch.set_num_threads(1)
            trainer = make_trainer(tmp_path_factory.mktemp("single"), kind, accumulate, l1_loss_weight=l1_weight)
            cache[key] = train(trainer, micro_batches(*data, TOTAL // accumulate))
        return cache[key]

    return get


# ---------------------------------------------------------------------------------------------- one process
@pytest.mark.parametrize("kind", list(KINDS))
def test_four_micro_batches_equal_one_batch(single, kind):
    reference = single(kind, 1)
    assert_grads_moved(reference)
    assert_same(single(kind, 4), reference, f"{kind}: 1 process, 4 x 4 vs 16")


def test_the_comparison_can_fail(single, tmp_path, monkeypatch):
    """Micro-batches that each divide by their own normalisers (no replay) do not give the big batch's gradients."""
    import yolox.core.trainer as trainer_module
    from yolox.utils.dist import NormalizerReplay

    class OwnNormalisers(NormalizerReplay):
        def replay(self):  # each micro-batch's forward as a plain one
            return contextlib.nullcontext()

    monkeypatch.setattr(trainer_module, "NormalizerReplay", OwnNormalisers)
    result = train(make_trainer(tmp_path, "efl_released", 4), micro_batches(*images_and_labels(), 4))
    with pytest.raises(AssertionError):
        assert_same(result, single("efl_released", 1), "own normalisers per micro-batch (must differ)")


# ---------------------------------------------------------------------------------------------- two processes
def _ddp_worker(rank, world_size, init_file, out_dir, kind, configs):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        imgs, labels = images_and_labels()
        per_rank = TOTAL // world_size
        imgs, labels = imgs[rank * per_rank:(rank + 1) * per_rank], labels[rank * per_rank:(rank + 1) * per_rank]
        for accumulate, l1_weight in configs:
            trainer = make_trainer(Path(out_dir) / "runs", kind, accumulate, l1_loss_weight=l1_weight)
            result = train(trainer, micro_batches(imgs, labels, per_rank // accumulate))
            torch.save(result, Path(out_dir) / f"{accumulate}_{l1_weight}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["yolox", "efl_released"])
def test_two_processes_of_two_micro_batches(single, tmp_path, kind):
    # YOLOX* divides its L1 term by the elements of the rank's own positives: one process x 16 has another
    # normaliser for it, so that comparison runs without the L1 term (weight 0); all other terms reduce over ranks
    configs = [(2, 1.0), (1, 1.0)] + ([(2, 0.0)] if kind != "yolox" else [])
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), kind, configs), nprocs=2, join=True)
    runs = {(a, w, r): torch.load(tmp_path / f"{a}_{w}_rank{r}.pt", weights_only=False)
            for a, w in configs for r in range(2)}
    for a, w in configs:  # DDP: both ranks hold the same gradients and weights
        assert max_relative_difference(runs[a, w, 1]["weights"], runs[a, w, 0]["weights"]) == 0
    assert_same(runs[2, 1.0, 0], runs[1, 1.0, 0], f"{kind}: 2 processes, 2 x 4 vs 8")
    one_process = single(kind, 1, 1.0 if kind == "yolox" else 0.0)
    accumulated = runs[2, 1.0, 0] if kind == "yolox" else runs[2, 0.0, 0]
    assert_same(accumulated, one_process, f"{kind}: 2 processes x 2 x 4 vs 1 process x 16")


# ---------------------------------------------------------------------------------------------- once per step
def test_lr_ema_scaler_and_statistics_act_once_per_step(tmp_path, single):
    """3 steps of 2 micro-batches under float16-style loss scaling (a CPU GradScaler): 6 backwards, but the
    scaler unscales, steps and updates 3 times, the statistics commit 3 times, the EMA updates 3 times and the
    learning rate is the schedule's at steps 1, 2, 3. The loss scale (2^10) changes nothing else."""
    trainer = make_trainer(tmp_path / "scaled", "efl_released", 2, warmup_epochs=1)  # warm-up: lr moves each step
    calls = {"unscale_": 0, "step": 0, "update": 0, "commit": 0, "ema": 0, "backward": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    for name in ("unscale_", "step", "update"):
        setattr(scaler, name, counting(name, getattr(scaler, name)))
    trainer.guard.scaler, trainer.guard.loss_scaling = scaler, True
    loss_module = trainer.model.head.cls_loss
    loss_module.commit_grad_stats = counting("commit", loss_module.commit_grad_stats)
    trainer.ema_model.update = counting("ema", trainer.ema_model.update)
    trainer.guard.backward = counting("backward", trainer.guard.backward)
    lrs = []
    trainer.train_iter = micro_batches(*images_and_labels(), 8, steps=3)
    for it in range(3):
        trainer.iter = it
        trainer.run_step()
        assert trainer.step_check.loss_scale == 2.0 ** 10
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    assert calls == {"unscale_": 3, "step": 3, "update": 3, "commit": 3, "ema": 3, "backward": 6}
    assert trainer.ema_model.updates == 3
    expected = [trainer.lr_scheduler.update_lr(s) for s in (1, 2, 3)]
    assert lrs == pytest.approx(expected, rel=1e-12) and len(set(lrs)) == 3

    # the same steps without loss scaling: the same training (a power-of-two scale is exact)
    scaled = make_trainer(tmp_path / "scaled2", "efl_released", 2, warmup_epochs=1)
    scaled.guard.scaler, scaled.guard.loss_scaling = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10), True
    plain = make_trainer(tmp_path / "plain", "efl_released", 2, warmup_epochs=1)
    assert_same(train(scaled, micro_batches(*images_and_labels(), 8)),
                train(plain, micro_batches(*images_and_labels(), 8)), "loss scale 2^10 vs none", tol=1e-6)


def test_normaliser_pass_leaves_batchnorm_statistics_alone(tmp_path):
    """BatchNorm in training mode: a step of 2 micro-batches moves the running statistics as 2 forwards do
    (the no-grad normaliser pass is undone): num_batches_tracked + 2, not + 4."""
    imgs, labels = images_and_labels()
    trainer = make_trainer(tmp_path, "efl_released", 2, frozen_bn=False)
    reference = copy.deepcopy(trainer.model)
    with torch.no_grad():
        for i in (0, 8):
            reference(imgs[i:i + 8], labels[i:i + 8])
    trainer.train_iter = micro_batches(imgs, labels, 8, steps=1)
    trainer.run_step()
    buffers = dict(trainer.model.named_buffers())
    checked = 0
    for name, value in reference.named_buffers():
        if "running_" in name or "num_batches_tracked" in name:
            assert torch.equal(buffers[name], value), name
            checked += 1
    assert checked > 50
    assert int(buffers["backbone.backbone.stem.conv.bn.num_batches_tracked"]) == 2


# ---------------------------------------------------------------------------------------------- sizes and CLI
def test_micro_batch_size():
    assert micro_batch_size(128, 1, 8) == 16
    assert micro_batch_size(128, 2, 8) == 8
    assert micro_batch_size(128, 16, 1) == 8
    assert micro_batch_size(5, 2, 1) == 2  # without accumulation: upstream's b // processes
    with pytest.raises(YOLOXError, match="-b 100 is not a multiple of 2 process"):
        micro_batch_size(100, 2, 8)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("accumulation_data"), "coco")


def test_accumulate_flag_and_override(tiny_data, tmp_path):
    exp_file = write_exp(tmp_path / "exp.py", tiny_data, tmp_path / "out")
    tool = load_tool("train")
    parse = tool.make_parser().parse_args
    assert tool.build_exp(parse(["-f", exp_file])).accumulate_steps == 1
    assert tool.build_exp(parse(["-f", exp_file, "--accumulate", "4"])).accumulate_steps == 4
    assert tool.build_exp(parse(["-f", exp_file, "accumulate_steps", "2"])).accumulate_steps == 2
    run = cli_in_process("train", ["-f", exp_file, "-b", "12", "-d", "1", "--accumulate", "8", "--device", "cpu"])
    assert run.code == 2 and not run.launched
    assert run.errors == ["-b 12 is not a multiple of 1 process(es) x 8 accumulated micro-batches: choose -b, -d or "
                          "--accumulate so that it is"]
    run = cli_in_process("train", ["-f", exp_file, "-b", "8", "-d", "1", "--accumulate", "4", "--device", "cpu"])
    assert run.code == 0 and run.launched


# ---------------------------------------------------------------------------------------------- epochs and resume
EXTRA = (
    "self.cls_loss = 'efl'\n"
    "        self.assigner, self.anchor_scales = 'atss', (3, 4)\n"
    "        self.efl_stats_layout = 'released'\n"
    "        self.multiscale_range = 1\n"
    "        self.eval_interval = 100\n"
    "        self.accumulate_steps = 2\n"
    "        self.ckpt_interval_iters = 1\n"
)


class Interrupted(Exception):
    pass


def _train_run(exp_file, out, resume=False, stop_after_saves=None):
    """tools/train.py's training in this process (-b 4: micro-batches of 2, 2 per step); with
    ``stop_after_saves``, raise after that many ``latest`` checkpoints. Returns the trainer."""
    from yolox.exp import get_exp

    exp = get_exp(exp_file)
    exp.output_dir = str(out)
    seed_everything(exp.seed)
    args = argparse.Namespace(experiment_name="run", batch_size=4, fp16=False, cache=None, resume=resume, ckpt=None,
                              start_epoch=None, logger="none", device="cpu", devices=1, num_machines=1,
                              machine_rank=0, opts=[])
    trainer = Trainer(exp, args)
    if stop_after_saves is not None:
        saves, original = [], trainer.checkpointer.save

        def save_then_maybe_stop(name, *a, **k):
            original(name, *a, **k)
            if name == "latest":
                saves.append(name)
                if len(saves) == stop_after_saves:
                    raise Interrupted

        trainer.checkpointer.save = save_then_maybe_stop
        with pytest.raises(Interrupted):
            trainer.train()
    else:
        trainer.train()
    return trainer


def test_epoch_counts_steps_and_resume_after_a_step_is_exact(tiny_data, tmp_path):
    torch.set_num_threads(1)
    exp_file = write_exp(tmp_path / "exp.py", tiny_data, tmp_path / "unused", extra=EXTRA)
    straight = _train_run(exp_file, tmp_path / "straight")
    # 8 images, micro-batches of 2: 4 a pass, 2 optimizer steps an epoch
    assert (len(straight.train_loader), straight.max_iter, straight.per_rank_batch) == (4, 2, 2)
    # the last restart: after the mid-epoch checkpoint of step 3 (0-based), 3 steps x 2 micro-batches x 2 images
    assert straight.train_loader.batch_sampler.sampler.start == 3 * 2 * 2
    _train_run(exp_file, tmp_path / "interrupted", stop_after_saves=1)  # after step 1 of epoch 1
    half = load_checkpoint_file(tmp_path / "interrupted" / "run" / "latest_ckpt.pth")
    assert (half["start_epoch"], half["start_iter"], half["ema_updates"]) == (0, 1, 1)
    shutil.copytree(tmp_path / "interrupted" / "run", tmp_path / "resumed" / "run")
    _train_run(exp_file, tmp_path / "resumed", resume=True)
    a = load_checkpoint_file(tmp_path / "straight" / "run" / "latest_ckpt.pth")
    b = load_checkpoint_file(tmp_path / "resumed" / "run" / "latest_ckpt.pth")
    assert (a["start_epoch"], a["start_iter"], a["ema_updates"]) == (b["start_epoch"], b["start_iter"], 4) == (2, 0, 4)
    assert float(a["train_model"]["head.cls_loss.pos_grad"].abs().sum()) > 0
    for which in ("train_model", "model"):
        for key, value in a[which].items():
            if value.is_floating_point():
                torch.testing.assert_close(b[which][key], value, rtol=0, atol=1e-6, msg=f"{which}.{key}")
            else:
                assert torch.equal(b[which][key], value), f"{which}.{key}"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(sb["momentum_buffer"], sa["momentum_buffer"], rtol=0, atol=1e-6)
    assert a["optimizer"]["param_groups"][0]["lr"] == pytest.approx(b["optimizer"]["param_groups"][0]["lr"], abs=1e-12)
    assert a["input_size"] == b["input_size"]
