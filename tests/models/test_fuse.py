"""Inference-time rewrites: BatchNorm folding and float16 inference keep the model's outputs."""
import copy

import torch

from yolox.exp import Exp
from yolox.models import BaseConv, fuse_model, half_for_inference

STEM_STD = 1500.0  # stem running variance ~1500^2 = 2.25e6, the order measured on a briefly trained model


def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 255


def stem_heavy_model():
    """A small YOLOX with the BatchNorm statistics that training records (every layer calibrated on the test
    images, so activations are O(1) as in a trained model) and a stem that sees 0-255 pixels through a large
    conv: its running variance (~2e6) is beyond float16's range (65504), its outputs are inside it."""
    torch.manual_seed(0)
    exp = Exp()
    exp.depth, exp.width, exp.num_classes = 0.33, 0.25, 3
    model = exp.get_model()
    stem = model.backbone.backbone.stem.conv
    with torch.no_grad():
        stem.conv.weight.mul_(STEM_STD / 255)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # running statistics = this batch's statistics
        model.train()
        model(images(), torch.zeros(2, 1, 5))  # no objects: only the BatchNorm statistics matter here
    model.eval()
    # Raw outputs (box deltas, probabilities): a random head's decoded sizes exp(delta) are meaningless. The
    # decoding itself runs in float32 under --fp16 too (YOLOXHead.forward).
    model.head.decode_in_inference = False
    seen = []
    hook = stem.conv.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        model(images())
    hook.remove()
    assert float(stem.bn.running_var.max()) > 65504 > float(seen[0].abs().max())
    return model


def relative_error(outputs, reference):
    return max(float((o.float() - r).abs().max() / r.abs().max()) for o, r in zip(outputs, reference))


def test_fused_model_computes_the_same_outputs():
    model = stem_heavy_model()
    fused = fuse_model(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        reference, out = model(images()), fused(images())
    assert relative_error([out[..., :4]], [reference[..., :4]]) < 1e-3
    assert (out[..., 4:] - reference[..., 4:]).abs().max() < 2e-3


def test_batchnorm_with_a_variance_beyond_float16_stays_exact():
    torch.manual_seed(0)
    layer = BaseConv(12, 16, 3, 1).eval()
    with torch.no_grad():
        layer.bn.running_mean.uniform_(-3000, 3000)
        layer.bn.running_var.uniform_(1e5, 3e6)
        x = torch.randn(2, 12, 16, 16) * 300
        reference = layer(x)
        out = half_for_inference(copy.deepcopy(layer))(x.half())
        naive = copy.deepcopy(layer).half()(x.half())
    assert out.dtype == torch.float16
    assert layer.bn.running_var.max() > 65504
    torch.testing.assert_close(out.float(), reference, rtol=1e-2, atol=1e-2)
    assert naive.float().abs().max() < 1e-3 < reference.abs().max()  # inf variance: all outputs zero


def test_half_for_inference_keeps_a_model_with_such_a_stem_working():
    """The whole model: float16 rounding through ~60 layers of a random network costs a few per cent (the
    bound below); casting the BatchNorm statistics too destroys the output."""
    model = stem_heavy_model()
    half = half_for_inference(copy.deepcopy(model))
    naive = copy.deepcopy(model).half()
    with torch.no_grad():
        reference, reference_features = model(images()), model.backbone(images())
        out, features = half(images().half()), half.backbone(images().half())
        naive_out, naive_features = naive(images().half()), naive.backbone(images().half())
        fused_out = half_for_inference(fuse_model(copy.deepcopy(model)))(images().half())
    assert out.dtype == torch.float16
    assert all(t.dtype == torch.float32 for m in half.modules() if isinstance(m, torch.nn.BatchNorm2d)
               for t in list(m.parameters()) + list(m.buffers()) if t.is_floating_point())
    assert relative_error(features, reference_features) < 0.1
    assert relative_error([out[..., :4], fused_out[..., :4]], [reference[..., :4]] * 2) < 0.1
    assert relative_error(naive_features, reference_features) > 0.5
    assert (naive_out[..., 4:].float() - reference[..., 4:]).abs().max() > 0.5
