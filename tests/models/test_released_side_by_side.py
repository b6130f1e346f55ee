"""Our YOLOX-S / YOLOX-M and YOLOX* losses against numbers the released EFL code (ModelTC/EOD) produced.

The reference numbers in ``reference/released_side_by_side.json`` were produced by a side-by-side harness that
imports the released code on a CPU (outside this repository; docs/recipe.md describes it): the released
``yolox_s`` / ``yolox_m`` backbone, ``YoloxPAFPN`` neck and ``YoloXHead`` (2 points per location), built from
``configs/det/efl/efl_yolox_{small,medium}.yaml`` with LVIS's 1203 classes, with the weights of the model built
here mapped in (``load_state_dict(strict=True)``), and its ``retina_post_iou`` post-process (ATSS top 18 with
the IoU target, GIoU + L1, sigmoid BCE IoU branch) with EFL, QFL and EQFL on our raw predictions. No released
code runs here; these tests rebuild our side from the same seeded inputs and compare.

Mapping (the harness's): keys ``bn`` -> ``bn1``, the Focus stem's space-to-depth blocks (ours TL, BL, TR, BR;
theirs TL, TR, BL, BR), the SPP's ``conv1/conv2`` -> ``conv_block1/2``, and the class channels of a location,
ours anchor-major (``a * C + c``), theirs class-major (``c * na + a``). The box and IoU channels agree.
The released anchors are centred at ``(x, y) * stride``, ours at ``(x + 0.5, y + 0.5) * stride``
(docs/recipe.md); the loss references were taken with our centres moved to theirs.
"""
import functools
import inspect
import json
import math
import zlib
from pathlib import Path

import pytest
import torch

from yolox.exp import get_exp
from yolox.models import YOLOXHead
from yolox.models.assigners import ATSSAssigner

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).resolve().parent / "reference" / "released_side_by_side.json"
INPUT = 128
BATCH = 2
WEIGHT_SEED = 20261204
IMAGE_SEED = 7
# (class, cx, cy, w, h) in input pixels; float centres so that no two locations tie in ATSS's distances.
GT = [
    [[5, 40.3, 36.7, 30.2, 44.9], [1000, 90.6, 80.2, 50.5, 40.1], [17, 20.9, 100.4, 14.3, 16.8]],
    [[77, 64.2, 60.9, 100.7, 90.3], [1202, 30.4, 30.1, 20.6, 24.2]],
]
# A second batch whose ATSS assignment changes with the CUDA kernel's +1 on widths and heights (ours: 21 -> 22
# positives in image 0, 25 -> 26 in image 1 with the released centres; found by a seeded search).
GT_IOU_OFFSET = [
    [[3, 113.8, 104.1, 18.2, 21.8], [400, 61.7, 30.6, 4.8, 14.5], [1100, 94.4, 79.5, 34.9, 19.1]],
    [[9, 47.1, 112.9, 30.2, 19.5], [600, 58.2, 62.3, 31.7, 30.5], [1201, 16.8, 31.8, 36.2, 37.5]],
]
RTOL = 1e-4


def load_reference():
    with open(REFERENCE) as f:
        return json.load(f)


def build_model(size="s", cls_loss="efl", shortcut=True):
    """Our model from ``exps/yolox_{size}_{cls_loss}_lvis.py`` (1203 classes, YOLOX*), neck ``shortcut``, with the
    deterministic weights of :func:`fill_weights`, in eval mode."""
    exp = get_exp(str(REPO / "exps" / f"yolox_{size}_{cls_loss}_lvis.py"))
    exp.neck_shortcut = shortcut
    torch.manual_seed(0)
    model = exp.get_model()
    model.load_state_dict(_filled_state(size, cls_loss))
    return model.eval()


@functools.lru_cache(maxsize=None)
def _filled_state(size, cls_loss):
    """The state dict of :func:`fill_weights` for the experiment (the neck's shortcut adds no keys); cached, since
    several tests build the same model."""
    exp = get_exp(str(REPO / "exps" / f"yolox_{size}_{cls_loss}_lvis.py"))
    model = exp.get_model()
    fill_weights(model)
    return {k: v.clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def fill_weights(model, seed=WEIGHT_SEED):
    """Every float tensor of the state dict from a generator seeded by its key (independent of the order in which
    modules are built and of keys added elsewhere). Convolutions ~ N(0, 1/fan_in), BN affine and running statistics around their
    identity, class biases around -4 (a low prior), box outputs small; EFL/EQFL statistics with a non-trivial
    pos_neg = clamp(pos_grad / neg_grad, 0, 1)."""
    state = model.state_dict()
    for name in sorted(state):
        t = state[name]
        if not t.is_floating_point():
            continue
        gen = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
        if name.endswith("running_var") or (".bn." in name and name.endswith("weight")):
            v = 0.5 + torch.rand(t.shape, generator=gen)
        elif name.endswith("running_mean") or (".bn." in name and name.endswith("bias")):
            v = 0.1 * torch.randn(t.shape, generator=gen)
        elif name.endswith("pos_grad"):
            v = 10.0 * torch.rand(t.shape, generator=gen)
        elif name.endswith("neg_grad"):
            v = 1.0 + 20.0 * torch.rand(t.shape, generator=gen)
        elif name.endswith("pos_neg"):
            continue  # derived below
        elif t.dim() == 4:
            fan_in = t.shape[1] * t.shape[2] * t.shape[3]
            v = torch.randn(t.shape, generator=gen) / math.sqrt(fan_in)
            if ".reg_preds." in name:
                v = v * 0.1
        elif ".cls_preds." in name:
            v = -4.0 + 0.5 * torch.randn(t.shape, generator=gen)
        else:
            v = 0.1 * torch.randn(t.shape, generator=gen)
        t.copy_(v)
    for name, t in state.items():
        if name.endswith("pos_neg"):
            prefix = name[: -len("pos_neg")]
            t.copy_(torch.clamp(state[prefix + "pos_grad"] / (state[prefix + "neg_grad"] + 1e-10), 0, 1))


def images(seed=IMAGE_SEED):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(BATCH, 3, INPUT, INPUT, generator=gen) * 255.0


def labels(gt=None):
    """Our training targets ``[B, 4, 5]`` (class, cx, cy, w, h), zero rows padding."""
    out = torch.zeros(BATCH, 4, 5)
    for b, rows in enumerate(GT if gt is None else gt):
        out[b, : len(rows)] = torch.tensor(rows)
    return out


def to_released_layout(cls_out, num_anchors):
    """``[B, na * C, H, W]`` anchor-major class channels (ours) -> class-major (``c * na + a``, the released)."""
    b, ch, h, w = cls_out.shape
    return cls_out.view(b, num_anchors, ch // num_anchors, h, w).transpose(1, 2).reshape(b, ch, h, w)


def level_outputs(model, x, labels_=None):
    """Raw per-level head outputs ``[(cls, box, iou)] * 3`` (class channels in the released layout), and the
    model's output (the loss dict in train mode)."""
    head = model.head
    captured = {}
    hooks = []
    for kind in ("cls_preds", "reg_preds", "obj_preds"):
        for k, conv in enumerate(getattr(head, kind)):
            hooks.append(conv.register_forward_hook(
                lambda m, i, o, key=(kind, k): captured.__setitem__(key, o)))
    try:
        out = model(x, labels_) if model.training else model(x)
    finally:
        for h in hooks:
            h.remove()
    na = head.num_anchors
    levels = [(to_released_layout(captured["cls_preds", k], na), captured["reg_preds", k], captured["obj_preds", k])
              for k in range(len(head.strides))]
    return levels, out


def element_indices(numel, count=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, numel, (count,), generator=gen).tolist()


def summarise(t):
    """Sum, sum of |x|, and 8 elements at fixed flat indices of a tensor (the reference's fingerprint)."""
    flat = t.detach().double().reshape(-1)
    idx = element_indices(flat.numel())
    return {"sum": flat.sum().item(), "abs_sum": flat.abs().sum().item(), "index": idx,
            "elements": flat[idx].tolist()}


def largest(t, count=8):
    """The ``count`` largest elements of a 1-d tensor and their indices (where a sparse statistic lives)."""
    values, index = t.detach().double().topk(count)
    return {"top_index": index.tolist(), "top_elements": values.tolist()}


def released_anchor_centres(grid, stride):
    """The released anchors' centres, ``(x, y) * stride`` (ours: ``(x + 0.5, y + 0.5) * stride``)."""
    return grid * stride[:, None]


def our_losses(size="s", cls_loss="efl", iou_offset=0.0, released_centres=True, gt=None):
    """Our YOLOX* loss terms on the seeded batch, the model in train mode (BN on batch statistics)."""
    model = build_model(size, cls_loss).train()
    model.head.assigner.iou_offset = float(iou_offset)  # set either way: the experiments' default may change
    original = YOLOXHead.__dict__["anchor_centers"]  # the staticmethod object itself
    if released_centres:
        YOLOXHead.anchor_centers = staticmethod(released_anchor_centres)
    try:
        levels, losses = level_outputs(model, images(), labels(gt))
    finally:
        YOLOXHead.anchor_centers = original
    return model, levels, losses


TERMS = ("cls_loss", "giou_loss", "l1_loss", "iou_branch_loss")


# ---------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.is_file():
        pytest.skip("no reference numbers")
    return load_reference()


def _assert_close(actual, expected, what):
    assert actual == pytest.approx(expected, rel=RTOL, abs=1e-6), what


@pytest.mark.parametrize("size", ["s", "m"])
def test_forward_equals_the_released_model(reference, size):
    """Backbone + neck (shortcut=True) + head in eval mode: each level's raw class, box and IoU outputs."""
    ref = reference["forward"][size]
    with torch.no_grad():
        levels, _ = level_outputs(build_model(size), images())
    for k, outs in enumerate(levels):
        for kind, t in zip(("cls", "box", "iou"), outs):
            r = ref["levels"][k][kind]
            assert list(t.shape) == r["shape"], (size, k, kind)
            s = summarise(t)
            mean_abs = r["abs_sum"] / t.numel()
            # A signed sum may cancel: its tolerance is relative to the sum of |x|.
            assert abs(s["sum"] - r["sum"]) <= RTOL * r["abs_sum"], (size, k, kind, "sum", s["sum"], r["sum"])
            _assert_close(s["abs_sum"], r["abs_sum"], (size, k, kind, "abs_sum"))
            assert s["index"] == r["index"]
            for got, want in zip(s["elements"], r["elements"]):
                assert abs(got - want) <= RTOL * (abs(want) + mean_abs), (size, k, kind, got, want)


def test_neck_without_shortcut_differs_from_the_released_model(reference):
    """Upstream YOLOX's neck (no residuals in the CSP bottlenecks) is not the released one."""
    ref = reference["forward"]["s"]
    with torch.no_grad():
        levels, _ = level_outputs(build_model("s", shortcut=False), images())
    diffs = [abs(summarise(t)["abs_sum"] - ref["levels"][k][kind]["abs_sum"]) / ref["levels"][k][kind]["abs_sum"]
             for k, outs in enumerate(levels) for kind, t in zip(("cls", "box", "iou"), outs)]
    assert max(diffs) > 1e-2


@pytest.mark.parametrize("cls_loss", ["efl", "qfl", "eqfl"])
def test_yolox_star_losses_equal_the_released_post_process(reference, cls_loss):
    """With the released anchor centres, every YOLOX* term equals ``retina_post_iou``'s (IoU offset 0, the
    config's ``aligned: true``) on the same raw predictions. EFL/EQFL: after one backward of the total loss,
    the statistics with ``efl_stats_layout = "released"`` equal the released ``collect_grad`` (hooked on the
    class convolutions' outputs)."""
    ref = reference["losses"][cls_loss]["offset0"]
    model, _, losses = our_losses("s", cls_loss)
    for term in TERMS:
        _assert_close(losses[term].item(), ref[term], (cls_loss, term))
    assert losses["num_fg"].item() * BATCH == ref["num_pos"]
    if "stats" not in ref:
        return
    stats = model.head.cls_loss
    assert stats.stats_layout == "released"
    before = {name: getattr(stats, name).clone() for name in ("pos_grad", "neg_grad")}
    losses["total_loss"].backward()
    stats.commit_grad_stats()
    got = {"pos_grad_step": stats.pos_grad - before["pos_grad"], "neg_grad_step": stats.neg_grad - before["neg_grad"],
           "pos_neg": stats.pos_neg}
    for name, t in got.items():
        s, r = summarise(t), ref["stats"][name]
        mean_abs = r["abs_sum"] / t.numel()
        _assert_close(s["sum"], r["sum"], (cls_loss, name))
        for g, want in zip(s["elements"] + t[r["top_index"]].tolist(), r["elements"] + r["top_elements"]):
            assert abs(g - want) <= RTOL * (abs(want) + mean_abs), (cls_loss, name, g, want)


@pytest.mark.parametrize("offset", [0, 1])
def test_yolox_star_losses_with_the_cuda_iou_convention(reference, offset):
    """ATSS's IoUs with 0 (the config's CPU path) or the CUDA kernel's +1 on widths and heights (what the released
    code trained with), on a batch whose assignment the +1 changes."""
    if "iou_offset" not in inspect.signature(ATSSAssigner.__init__).parameters:
        pytest.skip("ATSSAssigner has no iou_offset")
    refs = reference["losses"]["efl"]["iou_offset_batch"]
    assert refs["offset0"]["num_pos"] != refs["offset1"]["num_pos"]
    ref = refs[f"offset{offset}"]
    _, _, losses = our_losses("s", "efl", iou_offset=float(offset), gt=GT_IOU_OFFSET)
    for term in TERMS:
        _assert_close(losses[term].item(), ref[term], (f"offset{offset}", term))
    assert losses["num_fg"].item() * BATCH == ref["num_pos"]
