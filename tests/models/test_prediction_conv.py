"""PredictionConv: the head's 1x1 prediction layer, a matrix product over channels-last rows on the CPU, must be
the convolution it replaces in values, gradients, parameters and hooks."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolox.models.network_blocks import PredictionConv


def head_layout(out, anchors, channels):
    """``[B, anchors * channels, H, W]`` -> ``[B, H * W * anchors, channels]`` as YOLOXHead._flatten."""
    b, _, h, w = out.shape
    return out.view(b, anchors, channels, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, channels)


def levels(seed, batch=3, hidden=16, sizes=(8, 4, 2), dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, hidden, s, s, generator=gen, dtype=dtype).requires_grad_(True) for s in sizes]


def run(layers, feats, anchors, channels, grad_seed=5):
    """The head's use: per level, the layer and the anchor layout, the levels concatenated; backward of a fixed
    random gradient (each level's gradient is then a non-contiguous slice of the concatenated one)."""
    out = torch.cat([head_layout(layer(x), anchors, channels) for layer, x in zip(layers, feats)], 1)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed))
    out.backward(grad)
    return out.detach(), [x.grad for x in feats], [l.weight.grad for l in layers], [l.bias.grad for l in layers]


@pytest.mark.parametrize("anchors", [1, 2])
def test_equals_the_convolution_in_values_and_gradients(anchors):
    channels, hidden = 7, 16
    torch.manual_seed(0)
    fast = [PredictionConv(hidden, anchors * channels) for _ in range(3)]
    reference = [nn.Conv2d(hidden, anchors * channels, 1, 1, 0) for _ in range(3)]
    for f, r in zip(fast, reference):
        r.load_state_dict(f.state_dict())
    got = run(fast, levels(1, hidden=hidden), anchors, channels)
    want = run(reference, levels(1, hidden=hidden), anchors, channels)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    for g, w in zip(got[1:], want[1:]):
        for a, b in zip(g, w):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cpu_output_is_a_channels_last_view_and_the_head_layout_needs_no_copy():
    layer = PredictionConv(16, 2 * 5)
    x = torch.randn(2, 16, 6, 4)
    out = layer(x)
    assert out.shape == (2, 10, 6, 4)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    flat = head_layout(out, 2, 5)
    assert flat.data_ptr() == out.data_ptr()  # a view of the product's output
    torch.testing.assert_close(out, F.conv2d(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


def test_input_gradient_comes_in_the_inputs_layout():
    """The layers below run their backward on the layout nn.Conv2d would hand them (NCHW-contiguous for an NCHW
    input): a channels-last gradient would change their kernels and, slightly, their sums."""
    layer = PredictionConv(8, 6)
    for channels_last in (False, True):
        x = torch.randn(2, 8, 5, 3)
        x = (x.to(memory_format=torch.channels_last) if channels_last else x).requires_grad_(True)
        captured = []
        x.register_hook(captured.append)
        layer(x).sum().backward()
        assert captured[0].is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_channels_last_input_and_no_bias_and_frozen_parameters():
    layer = PredictionConv(8, 6)
    layer.bias = None
    layer.weight.requires_grad_(False)
    x = torch.randn(2, 8, 5, 5).to(memory_format=torch.channels_last).requires_grad_(True)
    out = layer(x)
    out.backward(torch.ones_like(out))
    want_x = torch.ones(2, 8, 5, 5) * layer.weight.sum(0).view(1, 8, 1, 1)
    torch.testing.assert_close(x.grad, want_x, rtol=1e-5, atol=1e-5)
    assert layer.weight.grad is None
    torch.testing.assert_close(out, F.conv2d(x, layer.weight), rtol=1e-5, atol=1e-5)


def test_is_a_conv2d_with_its_state_dict_keys_and_hooks():
    layer = PredictionConv(4, 6)
    assert isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.padding == (0, 0)
    assert set(layer.state_dict()) == {"weight", "bias"} and layer.weight.shape == (6, 4, 1, 1)
    seen = []
    layer.register_forward_hook(lambda m, i, o: seen.append(o))
    out = layer(torch.randn(1, 4, 3, 3))
    assert len(seen) == 1 and seen[0] is out


def test_same_initialisation_as_the_convolution_it_replaces():
    torch.manual_seed(3)
    a = PredictionConv(8, 10)
    torch.manual_seed(3)
    b = nn.Conv2d(8, 10, 1, 1, 0)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_plain_convolution_where_the_product_does_not_apply():
    """float64, CPU autocast and tracing take nn.Conv2d's own path (NCHW-contiguous output, a conv in the
    traced graph), so export and mixed precision see the layer they expect."""
    layer = PredictionConv(4, 6)
    x = torch.randn(1, 4, 3, 3)
    assert layer.double()(x.double()).is_contiguous()
    layer.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and out.is_contiguous()
    traced = torch.jit.trace(layer, x)
    assert "aten::_convolution" in str(traced.inlined_graph) or "aten::conv2d" in str(traced.inlined_graph)
    assert "aten::addmm" not in str(traced.inlined_graph)
