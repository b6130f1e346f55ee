from .darknet import CSPDarknet
from .fuse import fuse_model, half_for_inference
from .network_blocks import BaseConv, CSPLayer, DWConv, Focus, SPPBottleneck
from .yolo_head import YOLOXHead
from .yolo_pafpn import YOLOPAFPN
from .yolox import YOLOX

__all__ = ["fuse_model", "half_for_inference", "CSPDarknet", "BaseConv", "CSPLayer", "DWConv", "Focus", "SPPBottleneck", "YOLOXHead", "YOLOPAFPN", "YOLOX"]
