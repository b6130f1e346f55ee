"""Model inspection and inference-time rewrites."""
from copy import deepcopy

import torch

__all__ = ["get_model_info", "model_flops_params"]


def model_flops_params(model, tsize):
    """(GFLOPs, parameters in millions) of one ``tsize`` = (h, w) forward, counted by thop.

    thop counts multiply-accumulates; like upstream YOLOX we report 2 x MACs as FLOPs."""
    from thop import profile

    m = deepcopy(model).eval()
    p = next(model.parameters())
    img = torch.zeros((1, 3, tsize[0], tsize[1]), device=p.device, dtype=p.dtype)
    macs, params = profile(m, inputs=(img,), verbose=False)
    return macs * 2 / 1e9, params / 1e6


def get_model_info(model, tsize):
    gflops, params = model_flops_params(model, tsize)
    return f"Params: {params:.2f}M, Gflops: {gflops:.2f} at {tsize[0]}x{tsize[1]}"
