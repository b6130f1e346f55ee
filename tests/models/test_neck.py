"""The neck's shortcut: upstream YOLOX's plain bottlenecks against the released EFL code's residual ones."""
import torch

from yolox.models import YOLOPAFPN

NECK_CSP_LAYERS = ("C3_p4", "C3_p3", "C3_n3", "C3_n4")


def _necks():
    torch.manual_seed(0)
    plain = YOLOPAFPN(0.33, 0.25, shortcut=False).eval()
    residual = YOLOPAFPN(0.33, 0.25, shortcut=True).eval()
    residual.load_state_dict(plain.state_dict(), strict=True)  # the same keys, the same weights
    return plain, residual


def _csp_by_hand(layer, x, residual):
    """CSPLayer written out: conv3(cat(bottlenecks(conv1(x)), conv2(x))), a bottleneck y = conv2(conv1(z)) (+ z)."""
    z = layer.conv1(x)
    for block in layer.m:
        y = block.conv2(block.conv1(z))
        z = y + z if residual else y
    return layer.conv3(torch.cat([z, layer.conv2(x)], dim=1))


def test_residual_neck_differs_on_the_same_weights():
    plain, residual = _necks()
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        outs_plain, outs_residual = plain(images), residual(images)
    for a, b in zip(outs_plain, outs_residual):
        assert a.shape == b.shape
        # activations shrink level by level under a random init: compare with each level's own scale
        assert (a - b).abs().max() > 0.5 * a.abs().max()
    # the backbone is untouched: its dark5 stage keeps its own (no-shortcut) bottlenecks in both
    assert all(not block.use_add for block in residual.backbone.dark5[-1].m)


def test_neck_layers_equal_a_hand_written_bottleneck():
    plain, residual = _necks()
    for name in NECK_CSP_LAYERS:
        for neck, is_residual in ((plain, False), (residual, True)):
            layer = getattr(neck, name)
            assert all(block.use_add == is_residual for block in layer.m)
            x = torch.randn(1, layer.conv1.conv.in_channels, 8, 8)
            with torch.no_grad():
                assert torch.allclose(layer(x), _csp_by_hand(layer, x, is_residual), atol=1e-6)
