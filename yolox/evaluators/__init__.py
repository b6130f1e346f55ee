"""COCO and LVIS box evaluation: metric functions and the evaluators the trainer and tools/eval.py use."""
from .coco_evaluator import COCO_METRIC_KEYS, COCOEvaluator, coco_bbox_eval
from .detection_gather import detections_to_coco, gather_detections, run_detector
from .fixed_ap import (FIXED_AP_TOPK, POOLED_AP_KEYS, TopKPerClass, fixed_and_pooled_ap_eval, fixed_ap_eval,
                       fixed_ap_eval_per_category, pooled_ap_eval, topk_per_class)
from .lvis_evaluator import (LVIS_ENGINES, LVIS_METRIC_KEYS, LVISEvaluator, frequency_from_image_count, lvis_bbox_eval,
                             lvis_eval_per_category, write_per_category_csv)
from .voc_eval import voc_ap, voc_class_ap, voc_eval
from .voc_evaluator import VOCEvaluator, voc_metrics

__all__ = [
    "POOLED_AP_KEYS",
    "fixed_and_pooled_ap_eval",
    "pooled_ap_eval",
    "COCO_METRIC_KEYS",
    "COCOEvaluator",
    "coco_bbox_eval",
    "LVIS_ENGINES",
    "LVIS_METRIC_KEYS",
    "LVISEvaluator",
    "lvis_bbox_eval",
    "lvis_eval_per_category",
    "write_per_category_csv",
    "frequency_from_image_count",
    "run_detector",
    "gather_detections",
    "detections_to_coco",
    "FIXED_AP_TOPK",
    "TopKPerClass",
    "fixed_ap_eval",
    "fixed_ap_eval_per_category",
    "topk_per_class",
    "VOCEvaluator",
    "voc_ap",
    "voc_class_ap",
    "voc_eval",
    "voc_metrics",
]
