"""Run a detector over an evaluation loader and gather its detections from every rank.

Shared by the COCO and LVIS evaluators. Detections travel between ranks as one small float64 array per
image (``[K, 6]``: category_id, x, y, w, h, score), which pickles far faster than millions of dicts.
"""
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from yolox.utils import get_rank, get_world_size, is_main_process, xyxy2xywh

__all__ = [
    "as_int_list",
    "run_detector",
    "kept_detections",
    "gather_detections",
    "detections_to_coco",
    "resolve_gt_json",
    "broadcast_from_main",
]


def as_int_list(values):
    """A tensor, array or list of numbers -> list[int]."""
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    return [int(v) for v in values]


def letterboxed_sizes(heights, widths, img_size):
    """(h, w) of each original image inside the top-left letterboxed network input of ``img_size``, pixels."""
    sizes = []
    for h, w in zip(heights, widths):
        scale = min(img_size[0] / float(h), img_size[1] / float(w))
        sizes.append((h * scale, w * scale))
    return sizes


def outputs_to_rows(outputs, heights, widths, img_size, class_ids):
    """Convert post-processed outputs of one batch to per-image detection arrays.

    Args:
        outputs: list of ``[K, 7]`` tensors (x1, y1, x2, y2, obj, cls_conf, cls_index) or None, in
            network-input pixels.
        heights, widths: original image sizes (lists of int).
        img_size: (H_in, W_in) network input size; images were letterboxed at the top-left corner.
        class_ids: category id per contiguous class index (array-like of int).

    Returns:
        list of float64 arrays ``[K, 6]`` (category_id, x, y, w, h, score), boxes in original-image pixels.
    """
    class_ids = np.asarray(class_ids, dtype=np.int64)
    rows = []
    for out, h, w in zip(outputs, heights, widths):
        if out is None or out.shape[0] == 0:
            rows.append(np.zeros((0, 6), dtype=np.float64))
            continue
        out = out.detach().float().cpu()
        scale = min(img_size[0] / float(h), img_size[1] / float(w))
        boxes = xyxy2xywh(out[:, :4] / scale).double().numpy()
        scores = (out[:, 4] * out[:, 5]).double().numpy()
        cats = class_ids[out[:, 6].long().numpy()].astype(np.float64)
        rows.append(np.concatenate([cats[:, None], boxes, scores[:, None]], axis=1))
    return rows


@torch.no_grad()
def run_detector(model, dataloader, postprocess_fn, num_classes, confthre, nmsthre, img_size, class_ids,
                 half=False):
    """Run ``model`` over this rank's share of ``dataloader``.

    The loader yields ``(imgs [B, 3, H, W], _, (heights, widths), ids)``; the model in eval mode returns
    ``[B, N, 5 + C]`` decoded predictions, which ``postprocess_fn(outputs, num_classes, confthre, nmsthre,
    input_hw=..., image_hw=...)`` turns into per-image ``[K, 7]`` tensors.

    Returns:
        (per_image, stats): ``per_image`` maps image id -> ``[K, 6]`` float64 array (category_id, x, y, w, h,
        score) in original-image pixels, in the order the images were seen; ``stats`` holds ``images``,
        ``forward_s`` and ``nms_s`` (seconds on this rank).
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = torch.float16 if half else (param.dtype if param is not None else torch.float32)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    per_image = {}
    forward_s = nms_s = 0.0
    for imgs, _, info_imgs, ids in tqdm(dataloader, disable=not is_main_process(), desc="eval"):
        imgs = imgs.to(device=device, dtype=dtype)
        sync()
        t0 = time.perf_counter()
        outputs = model(imgs)
        sync()
        t1 = time.perf_counter()
        heights, widths = as_int_list(info_imgs[0]), as_int_list(info_imgs[1])
        # Post-process in float32: NMS kernels and score products are unreliable in half precision.
        outputs = postprocess_fn(outputs.float(), num_classes, confthre, nmsthre, input_hw=tuple(imgs.shape[-2:]),
                                 image_hw=letterboxed_sizes(heights, widths, img_size))
        sync()
        t2 = time.perf_counter()
        forward_s += t1 - t0
        nms_s += t2 - t1
        rows = outputs_to_rows(outputs, heights, widths, img_size, class_ids)
        for img_id, img_rows in zip(as_int_list(ids), rows):
            # A sampler may hand the same image twice (padding); the first copy wins.
            per_image.setdefault(img_id, img_rows)
    return per_image, {"images": len(per_image), "forward_s": forward_s, "nms_s": nms_s}


def gather_detections(per_image, stats=None, distributed=None):
    """Gather every rank's ``run_detector`` output on rank 0.

    Uses ``torch.distributed.gather_object`` (gloo and NCCL; with NCCL the current CUDA device must be set,
    as the trainer does). Image ids are deduplicated (a ``DistributedSampler`` pads its last round with
    images of another rank): the copy of the lowest rank wins.

    Returns:
        On rank 0 ``(merged, stats)``: ``merged`` maps image id -> ``[K, 6]`` array, sorted by image id, and
        ``stats`` sums ``forward_s``/``nms_s`` over ranks and counts the unique images. ``(None, None)`` on
        other ranks.
    """
    stats = dict(stats or {})
    if distributed is None:
        distributed = get_world_size() > 1
    if distributed and get_world_size() > 1:
        gathered = [None] * get_world_size() if get_rank() == 0 else None
        dist.gather_object((per_image, stats), gathered, dst=0)
        if get_rank() != 0:
            return None, None
    else:
        gathered = [(per_image, stats)]

    merged = {}
    for rank_images, _ in gathered:
        for img_id, rows in rank_images.items():
            merged.setdefault(img_id, rows)
    merged = {img_id: merged[img_id] for img_id in sorted(merged)}
    total = {
        "images": len(merged),
        "forward_s": sum(s.get("forward_s", 0.0) for _, s in gathered),
        "nms_s": sum(s.get("nms_s", 0.0) for _, s in gathered),
    }
    return merged, total


def detections_to_coco(per_image):
    """``{image_id: [K, 6] array}`` -> COCO-style results ``[{image_id, category_id, bbox, score}]``."""
    results = []
    for img_id, rows in per_image.items():
        for cat, x, y, w, h, score in rows.tolist():
            results.append({"image_id": int(img_id), "category_id": int(cat), "bbox": [x, y, w, h],
                            "score": score})
    return results


def resolve_gt_json(dataset):
    """Path of the ground-truth json of ``dataset`` (``dataset.json_file``, absolute or relative to the
    working directory, else ``<dataset.data_dir>/annotations/<json_file>`` as upstream lays COCO out)."""
    json_file = str(dataset.json_file)
    if os.path.isfile(json_file):
        return json_file
    data_dir = getattr(dataset, "data_dir", None)
    if data_dir is not None:
        candidate = os.path.join(data_dir, "annotations", json_file)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"ground-truth json not found: {json_file}")


def broadcast_from_main(obj, distributed=None):
    """Rank 0's ``obj`` on every rank (identity in a single process)."""
    if distributed is None:
        distributed = get_world_size() > 1
    if not distributed or get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def kept_detections(merged, image_ids):
    """``{image id: [K, 6] float array}`` (category_id, x, y, w, h, score) of ``image_ids`` in the gathered
    detections ``merged`` (an image without detections: [0, 6]); None when ``image_ids`` is empty."""
    if not image_ids:
        return None
    empty = np.zeros((0, 6))
    return {img_id: np.asarray(merged.get(img_id, empty)) for img_id in image_ids}
