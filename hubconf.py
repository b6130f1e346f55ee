"""torch.hub entry points, as upstream YOLOX's:

    model = torch.hub.load("<checkout>", "yolox_s", source="local", pretrained=False, num_classes=20)
    model = torch.hub.load("<checkout>", "yolox_custom", source="local", exp_path="exps/yolox_s_efl_lvis.py",
                           ckpt_path="best_ckpt.pth")

Each returns the experiment's model (train mode, as ``exp.get_model()`` gives it; call ``.eval()`` for
inference) on ``device`` (default: the first GPU when there is one, else the CPU). ``pretrained=True`` loads
upstream's published COCO weights (80 classes) from upstream's release page, through torch.hub's cache.
"""
import os

dependencies = ["torch", "torchvision", "loguru"]

_HERE = os.path.dirname(os.path.abspath(__file__))

# upstream YOLOX's released COCO weights of the default experiments (exps/default)
_WEIGHTS = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/{}.pth"


def _device(device):
    import torch

    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _load_weights(model, source):
    """Load a checkpoint (a path, or a URL fetched into torch.hub's cache) into ``model``; every tensor must fit."""
    import torch

    from yolox.utils.checkpoint import checkpoint_weights, load_model_weights

    if "://" in str(source):
        ckpt = torch.hub.load_state_dict_from_url(str(source), map_location="cpu", check_hash=False)
        model.load_state_dict(checkpoint_weights(ckpt, source), strict=True)
    else:
        load_model_weights(model, source)
    return model


def _create(exp_name, pretrained=True, num_classes=80, device=None):
    from yolox.exp import get_exp

    exp = get_exp(os.path.join(_HERE, "exps", "default", f"{exp_name}.py"))
    exp.num_classes = num_classes
    model = exp.get_model()
    if pretrained:
        if num_classes != 80:
            raise ValueError(f"{exp_name}: the pretrained weights are COCO's, 80 classes; for num_classes="
                             f"{num_classes} pass pretrained=False (or load your own checkpoint with yolox_custom)")
        _load_weights(model, _WEIGHTS.format(exp_name))
    return model.to(_device(device))


def yolox_nano(pretrained=True, num_classes=80, device=None):
    """YOLOX-Nano (depthwise, 416x416)."""
    return _create("yolox_nano", pretrained, num_classes, device)


def yolox_tiny(pretrained=True, num_classes=80, device=None):
    """YOLOX-Tiny (416x416)."""
    return _create("yolox_tiny", pretrained, num_classes, device)


def yolox_s(pretrained=True, num_classes=80, device=None):
    """YOLOX-S (640x640)."""
    return _create("yolox_s", pretrained, num_classes, device)


def yolox_m(pretrained=True, num_classes=80, device=None):
    """YOLOX-M (640x640)."""
    return _create("yolox_m", pretrained, num_classes, device)


def yolox_l(pretrained=True, num_classes=80, device=None):
    """YOLOX-L (640x640)."""
    return _create("yolox_l", pretrained, num_classes, device)


def yolox_x(pretrained=True, num_classes=80, device=None):
    """YOLOX-X (640x640)."""
    return _create("yolox_x", pretrained, num_classes, device)


def yolox_custom(ckpt_path=None, exp_path=None, device=None):
    """The model of the experiment file ``exp_path`` (e.g. exps/yolox_s_efl_lvis.py, relative to the checkout
    or absolute), with the checkpoint ``ckpt_path`` (a file or URL) when given."""
    from yolox.exp import get_exp

    if exp_path is None:
        raise ValueError("yolox_custom needs exp_path, an experiment file")
    if not os.path.isabs(exp_path) and not os.path.isfile(exp_path):
        exp_path = os.path.join(_HERE, exp_path)
    model = get_exp(exp_path).get_model()
    if ckpt_path is not None:
        _load_weights(model, ckpt_path)
    return model.to(_device(device))
