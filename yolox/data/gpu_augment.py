"""JPEG decoding and the mosaic tile warp in torch, so that they can run on the GPU.

The geometry is that of the CPU pipeline (``MosaicDetection._draw_tile`` / ``_warp_into``): each tile is drawn
straight onto the output through one matrix, bilinear, limited to the output region it covers, and blended
along its border with what the output already holds, as ``cv2.warpAffine(..., INTER_LINEAR,
BORDER_TRANSPARENT)`` into the output does. Onto an output filled with ``PAD_VALUE`` and over the whole output
that is ``cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT, borderValue=PAD_VALUE)`` (``warp_affine``).

Coordinates: pixel centres at integers, as OpenCV's ``warpAffine`` (pixel (x, y) covers [x - 0.5, x + 0.5]);
matrices map tile pixels to output pixels. Sampling is an explicit gather of the 4 neighbours, so no
``grid_sample`` normalisation (and its half-pixel convention) is involved. Results are float32, not rounded:
OpenCV's uint8 output comes from fixed-point weights on coordinates rounded to 1/32 pixel, so rounding ours
differs from it by a grey level here and there (tests/data/test_gpu_augment.py measures it).

Images are BGR, as everywhere in the CPU pipeline (OpenCV).
"""

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from .data_augment import PAD_VALUE

__all__ = ["decode_jpegs", "draw_tile", "warp_affine", "draw_mosaics"]


def decode_jpegs(data_list, device="cpu"):
    """Decode JPEG files, on ``device`` (nvjpeg, batched, for a CUDA device; libjpeg on the CPU).

    Args:
        data_list: list of 1-D uint8 CPU tensors, each a whole JPEG file (``torchvision.io.read_file``).
        device: where the decoded images go (and, for CUDA, where they are decoded).
    Returns:
        list of [3, H, W] uint8 tensors on ``device``, channels in BGR order (as ``cv2.imdecode``); grey JPEGs
        are expanded to 3 channels. EXIF orientation is not applied (torchvision applies it on the CPU only).
    """
    images = decode_jpeg(list(data_list), mode=ImageReadMode.RGB, device=device)
    return [img.flip(0) for img in images]  # RGB -> BGR


def _inverse_affine(matrix):
    """The 2x3 output -> tile map (float64 numpy) of ``matrix`` (2x3 or 3x3 affine, tile -> output)."""
    matrix = np.asarray(matrix.cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float64)
    full = np.vstack([matrix[:2], [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _flat_pixels(tile):
    """[h * w, 3] float32 rows of ``tile`` ([3, h, w], any real dtype) in row-major pixel order."""
    return tile.permute(1, 2, 0).reshape(-1, tile.shape[0]).float()


def _sample_inside(pixels, offset, height, width, sx, sy):
    """Bilinear sampling that counts only the neighbours inside the tile.

    Args:
        pixels: [N, C] float32, the tile's pixels in row-major order starting at row ``offset`` (several tiles
            may share one buffer).
        offset, height, width: int64 tensors (or ints) broadcastable to ``sx``: the tile's first row and size.
        sx, sy: float32 tensors of any shape S, the sampled tile coordinates (pixel centres at integers).
    Returns:
        (acc [*S, C], weight [*S]): the sum of weight * value over the neighbours inside the tile, and the sum
        of their weights (1 inside, 0 where all 4 neighbours are outside, in between along the border).
    """
    height, width = (torch.as_tensor(v, device=sx.device) for v in (height, width))
    x0, y0 = sx.floor(), sy.floor()
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.long(), y0.long()
    acc = pixels.new_zeros(sx.shape + (pixels.shape[1],))
    weight = torch.zeros_like(sx)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        y = y0 + dy
        y_inside = (y >= 0) & (y < height)
        row = torch.minimum(y.clamp(min=0), height - 1)
        for dx, wx in ((0, 1 - fx), (1, fx)):
            x = x0 + dx
            w = wx * wy * (y_inside & (x >= 0) & (x < width))
            column = torch.minimum(x.clamp(min=0), width - 1)
            acc += pixels[offset + row * width + column] * w.unsqueeze(-1)
            weight += w
    return acc, weight


def draw_tile(out, tile, matrix, region):
    """Draw ``tile`` warped by ``matrix`` onto ``out`` IN PLACE, inside ``region`` only (``_warp_into`` in torch).

    Args:
        out: [3, H, W] float32 output (values 0-255).
        tile: [3, h, w] tile image (uint8 or float), on ``out``'s device; a slice of a decoded image is fine.
        matrix: 2x3 or 3x3 affine (numpy or tensor), tile pixel -> output pixel, pixel centres at integers.
        region: (x1, y1, x2, y2) of ``out`` to draw in (as ``_output_region`` returns), or None for nothing.
    Output pixels whose 4 source neighbours are all outside ``tile`` keep their value; along the border the
    outside neighbours count with the pixel's current value (``cv2.BORDER_TRANSPARENT``).
    """
    if region is None or tile.shape[1] == 0 or tile.shape[2] == 0:
        return
    x1, y1, x2, y2 = region
    inverse = torch.as_tensor(_inverse_affine(matrix), dtype=torch.float32, device=out.device)
    y, x = torch.meshgrid(torch.arange(y1, y2, device=out.device, dtype=torch.float32),
                          torch.arange(x1, x2, device=out.device, dtype=torch.float32), indexing="ij")
    sx = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    sy = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    acc, weight = _sample_inside(_flat_pixels(tile), 0, tile.shape[1], tile.shape[2], sx, sy)
    target = out.permute(1, 2, 0)[y1:y2, x1:x2]  # a view: written through below
    target.copy_(target * (1 - weight).unsqueeze(-1) + acc)


def warp_affine(src, matrix, out_hw, fill=PAD_VALUE):
    """``cv2.warpAffine(src, matrix, (W, H), flags=INTER_LINEAR, borderMode=BORDER_CONSTANT, borderValue=fill)``.

    Args:
        src: [3, h, w] image (uint8 or float). matrix: 2x3 or 3x3, src pixel -> output pixel.
        out_hw: (H, W) of the output.
    Returns:
        [3, H, W] float32 on ``src``'s device.
    """
    out = torch.full((3, *out_hw), float(fill), dtype=torch.float32, device=src.device)
    draw_tile(out, src, matrix, (0, 0, out_hw[1], out_hw[0]))
    return out


def draw_mosaics(recipes, out_hw, fill=PAD_VALUE, device=None):
    """Draw a batch of mosaics: ``draw_tile`` of each image's tiles, in order, onto outputs filled with ``fill``.

    The k-th tiles of all images are drawn by one gather over the whole batch (the tiles share one pixel
    buffer), so a batch costs as many rounds as an image has tiles.

    Args:
        recipes: one list per output image of (tile [3, h, w], matrix tile -> output, region or None) tuples,
            as ``draw_tile`` takes them; tiles on ``device``.
        out_hw: (H, W) of every output.
        device: where the outputs go (default: the first tile's device, else the CPU).
    Returns:
        [B, 3, H, W] float32 (values 0-255, not rounded), in channels-last memory format.
    """
    height, width = out_hw
    if device is None:
        device = next((t.device for r in recipes for t, _, _ in r), torch.device("cpu"))
    out = torch.full((len(recipes), height, width, 3), float(fill), dtype=torch.float32, device=device)
    y, x = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                          torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    for k in range(max((len(r) for r in recipes), default=0)):
        drawn = [(b, r[k]) for b, r in enumerate(recipes)
                 if k < len(r) and r[k][2] is not None and r[k][0].shape[1] > 0 and r[k][0].shape[2] > 0]
        if not drawn:
            continue
        images = torch.tensor([b for b, _ in drawn], device=device)
        tiles = [tile for _, (tile, _, _) in drawn]
        # per drawn tile, shaped [T, 1, 1] to broadcast over the output grid
        sizes = torch.tensor([t.shape[1:] for t in tiles], device=device).view(-1, 2, 1, 1)
        counts = torch.tensor([0] + [t.shape[1] * t.shape[2] for t in tiles[:-1]], device=device)
        offsets = counts.cumsum(0).view(-1, 1, 1)
        regions = torch.tensor([region for _, (_, _, region) in drawn], device=device).view(-1, 4, 1, 1)
        inverse = torch.tensor(np.stack([_inverse_affine(m) for _, (_, m, _) in drawn]), dtype=torch.float32,
                               device=device).view(-1, 2, 3, 1, 1)
        sx = inverse[:, 0, 0] * x + inverse[:, 0, 1] * y + inverse[:, 0, 2]
        sy = inverse[:, 1, 0] * x + inverse[:, 1, 1] * y + inverse[:, 1, 2]
        acc, weight = _sample_inside(torch.cat([_flat_pixels(t) for t in tiles]), offsets,
                                     sizes[:, 0], sizes[:, 1], sx, sy)
        in_region = (x >= regions[:, 0]) & (x < regions[:, 2]) & (y >= regions[:, 1]) & (y < regions[:, 3])
        weight = weight * in_region
        out[images] = out[images] * (1 - weight).unsqueeze(-1) + acc * in_region.unsqueeze(-1)
    return out.permute(0, 3, 1, 2)
