"""Multi-label top-300 post-processing at 1203 classes: time per image and equality with a plain reference.

Input: YOLOX*-S-shaped eval outputs at 640x640, ``[B, 16800, 5 + 1203]`` (2 anchors per location at strides
8/16/32), decoded cxcywh boxes, IoU probability, class probabilities. Three score regimes:

    trained   ~25 objects per image; anchors near an object score its class high (overlapping boxes for
              the NMS), every other (anchor, class) pair scores low: most pairs fall below conf 0.001
    diffuse   class logits ~ N(-6, 1.5) everywhere: ~ 10^5..10^6 pairs above conf, top-3000 decides
    worst     every pair scores above conf (20 M candidates): the bound of the dense part

``yolox.utils.multilabel_postprocess`` is compared with ``reference_postprocess`` below: the dense
[N, C] score matrix, all pairs >= conf, sorted, first ``pre_nms_topk``, NMS class by class, best 300.
Detections must be identical (same rows, same values, sorted by score; rows of exactly equal score may
come in another order: NMS does not define the order of ties).

    python benchmarks/bench_postprocess.py [--repeats 5] [--batch 4] [--threads 2]
"""
import argparse

import torch
import torchvision
from tabulate import tabulate

from common import machine_info, timed_median, verdict  # also puts the repository on sys.path
from yolox.utils import multilabel_postprocess

NUM_CLASSES = 1203
STRIDES = (8, 16, 32)
ANCHOR_SCALES = (3, 4)


def anchor_centers_and_sides(size, device):
    centers, sides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
        c = (torch.stack([xs, ys], -1).reshape(-1, 1, 2).float() + 0.5) * stride
        centers.append(c.expand(-1, len(ANCHOR_SCALES), 2).reshape(-1, 2))
        sides.append((torch.tensor(ANCHOR_SCALES, device=device).float() * stride).repeat(n * n))
    return torch.cat(centers), torch.cat(sides)


def synthetic_outputs(regime, batch, size=640, num_objects=25, seed=0, device="cpu"):
    """``[B, N, 5 + C]`` eval outputs in the given score regime (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    centers, sides = anchor_centers_and_sides(size, "cpu")
    n = centers.shape[0]
    out = torch.empty(batch, n, 5 + NUM_CLASSES)
    for b in range(batch):
        wh = sides[:, None] * torch.exp(torch.randn(n, 2, generator=gen) * 0.3)
        xy = centers + torch.randn(n, 2, generator=gen) * sides[:, None] * 0.2
        iou = torch.rand(n, generator=gen) * 0.9 + 0.05
        if regime == "worst":
            cls = 0.01 + torch.rand(n, NUM_CLASSES, generator=gen) * 0.2
            iou = 0.2 + torch.rand(n, generator=gen) * 0.8
        else:
            mean = -9.0 if regime == "trained" else -6.0
            cls = torch.sigmoid(mean + 1.5 * torch.randn(n, NUM_CLASSES, generator=gen))
        if regime == "trained":
            obj_wh = 16 + torch.rand(num_objects, 2, generator=gen) * 300
            obj_xy = obj_wh / 2 + torch.rand(num_objects, 2, generator=gen) * (size - obj_wh)
            obj_cls = torch.randint(0, NUM_CLASSES, (num_objects,), generator=gen)
            for k in range(num_objects):
                near = ((centers - obj_xy[k]).abs() < obj_wh[k] / 2).all(1) & (sides < obj_wh[k].max() * 2)
                idx = near.nonzero().squeeze(1)
                m = idx.numel()
                xy[idx] = obj_xy[k] + torch.randn(m, 2, generator=gen) * obj_wh[k] * 0.05
                wh[idx] = obj_wh[k] * torch.exp(torch.randn(m, 2, generator=gen) * 0.1)
                cls[idx, obj_cls[k]] = torch.sigmoid(1.0 + 2.0 * torch.randn(m, generator=gen))
                # a confusable second class, as trained long-tail detectors produce
                cls[idx, (obj_cls[k] + 1) % NUM_CLASSES] = torch.sigmoid(-1.0 + 2.0 * torch.randn(m, generator=gen))
        out[b, :, :2], out[b, :, 2:4], out[b, :, 4], out[b, :, 5:] = xy, wh, iou, cls
    return out.to(device)


def reference_postprocess(prediction, num_classes, conf_thre=0.001, nms_thre=0.65, max_det=300, pre_nms_topk=3000):
    """The obvious implementation of the same protocol (no prefilter, per-class NMS loop)."""
    results = []
    for pred in prediction:
        xy, wh = pred[:, :2], pred[:, 2:4]
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
        scores = pred[:, 5 : 5 + num_classes] * pred[:, 4:5]  # [N, C]
        flat = scores.flatten()
        idx = (flat >= conf_thre).nonzero().squeeze(1)
        if idx.numel() == 0:
            results.append(None)
            continue
        cand, order = flat[idx].sort(descending=True, stable=True)
        idx = idx[order][:pre_nms_topk]
        cand = cand[:pre_nms_topk]
        anchor, cls = idx // num_classes, idx % num_classes
        kept = []
        for c in cls.unique():
            sel = (cls == c).nonzero().squeeze(1)
            kept.append(sel[torchvision.ops.nms(boxes[anchor[sel]], cand[sel], nms_thre)])
        kept = torch.cat(kept)
        kept = kept[cand[kept].sort(descending=True, stable=True).indices][:max_det]
        a, c = anchor[kept], cls[kept]
        results.append(torch.cat([boxes[a], pred[a, 4:5], pred[a, 5 + c][:, None], c[:, None].to(pred.dtype)], 1))
    return results


def canonical(dets):
    """Rows sorted by (score desc, class, x1, y1, x2, y2): equal detections compare equal whatever the order
    that NMS gave to exactly tied scores."""
    score = dets[:, 4] * dets[:, 5]
    order = torch.arange(dets.shape[0])
    for key in (dets[:, 3], dets[:, 2], dets[:, 1], dets[:, 0], dets[:, 6], -score):  # least significant first
        order = order[key[order].sort(stable=True).indices]
    return dets[order], score


def compare(ours, ref):
    """(identical, detections per image, note) for two lists of [K, 7] tensors or None.

    Identical: the same rows with the same values; the order must be by non-increasing score and may differ
    from the reference only among detections of exactly equal score."""
    counts, ties = [], False
    for a, b in zip(ours, ref):
        if a is None or b is None:
            if (a is None) != (b is None):
                return False, counts, "one side empty"
            counts.append(0)
            continue
        counts.append(a.shape[0])
        if a.shape != b.shape:
            return False, counts, f"{a.shape[0]} vs {b.shape[0]} detections"
        score_a = a[:, 4] * a[:, 5]
        if (score_a[1:] > score_a[:-1]).any():
            return False, counts, "not sorted by score"
        ca, _ = canonical(a)
        cb, _ = canonical(b)
        if not torch.equal(ca, cb):
            return False, counts, f"different detections (max |diff| {float((ca - cb).abs().max()):.3g})"
        ties |= not torch.equal(a, b)
    return True, counts, "order differs only among equal scores" if ties else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="images per call (time is reported per image)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--regimes", default="trained,diffuse,worst")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows, all_identical = [], True
    for regime in args.regimes.split(","):
        pred = synthetic_outputs(regime, args.batch, args.size, device=device)
        conf = 0.001
        num_cand = int(((pred[..., 5:] * pred[..., 4:5]) >= conf).sum()) // args.batch
        ours = multilabel_postprocess(pred, NUM_CLASSES, conf_thre=conf, nms_thre=0.65, max_det=300)
        ref = reference_postprocess(pred, NUM_CLASSES, conf_thre=conf, nms_thre=0.65, max_det=300)
        identical, counts, note = compare(ours, ref)
        all_identical &= identical
        t_ours = timed_median(lambda: multilabel_postprocess(pred, NUM_CLASSES, 0.001, 0.65, 300), args.repeats, device)
        t_ref = timed_median(lambda: reference_postprocess(pred, NUM_CLASSES, 0.001, 0.65, 300), args.repeats, device)
        rows.append([regime, f"{pred.shape[1]} x {NUM_CLASSES}", num_cand, sum(counts) / max(len(counts), 1),
                     f"{t_ours / args.batch * 1e3:.1f}", f"{t_ref / args.batch * 1e3:.1f}", f"{t_ours / t_ref:.2f}",
                     verdict(identical) + (f" ({note})" if note else "")])
    print(f"# multi-label post-processing, {args.size}x{args.size}, batch {args.batch}, conf 0.001, NMS 0.65, "
          f"top-3000 pre-NMS, max 300 | {machine_info(device)}")
    print(tabulate(rows, headers=["regime", "anchors x classes", "pairs >= conf / img", "dets / img",
                                  "ours ms/img", "reference ms/img", "ours / ref", "identical to reference"],
                   tablefmt="github"))
    print(f"\ntarget: detections identical to the reference in every regime: {verdict(all_identical)}")


if __name__ == "__main__":
    main()
