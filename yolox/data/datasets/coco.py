"""COCO-format detection dataset: a validated annotation json plus an image folder."""

import json
import math
import os
import threading
from multiprocessing.pool import ThreadPool
from pathlib import Path

import cv2
import numpy as np
from loguru import logger
from tqdm import tqdm

from ..dataloading import get_yolox_datadir
from ..errors import DatasetError
from .datasets_wrapper import Dataset

__all__ = ["COCODataset", "read_image", "load_json"]


# cv2.imdecode flags that make libjpeg decode at 1/2, 1/4, 1/8 of the size (DCT scaling)
_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


def read_image(path, exif_orientation=True, reduction=1):
    """Read an image file as HWC BGR uint8 (3 channels).

    Grayscale is expanded to 3 channels, alpha is dropped and 16-bit data is scaled to 8 bits
    (OpenCV's ``IMREAD_COLOR``); the bytes are read by Python so that non-ASCII paths work.
    ``exif_orientation``: apply a JPEG's EXIF orientation tag (OpenCV's default), or keep the stored
    pixel layout (``False``).
    ``reduction`` (1, 2, 4 or 8): a JPEG is decoded at 1/reduction of its size, each side rounded up, by
    libjpeg's DCT scaling (output pixel i averages the stored pixels [i * reduction, (i + 1) * reduction));
    other formats are always read whole.
    Raises ``DatasetError("cannot read image <path>: <reason>")`` for a missing, empty,
    truncated or undecodable file.
    """
    if reduction not in _REDUCED_COLOR:
        raise ValueError(f"reduction must be 1, 2, 4 or 8, got {reduction!r}")
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"cannot read image {path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"cannot read image {path}: is a directory") from None
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err.strerror or err}") from None
    except ValueError as err:  # e.g. a NUL character in the path
        raise DatasetError(f"cannot read image {path!r}: invalid path ({err})") from None
    if not data:
        raise DatasetError(f"cannot read image {path}: empty file")
    # OpenCV decodes a cut JPEG into a partly grey image without an error. A complete JPEG has an
    # end-of-image marker after its last start-of-scan marker (markers never occur inside the
    # entropy-coded data, and an EXIF thumbnail's markers come before the main image's scans).
    is_jpeg = data[:2] == b"\xff\xd8"
    # a file ending in the marker passes without searching it backwards (same verdict, the usual case)
    if is_jpeg and not (data.endswith(b"\xff\xd9") and b"\xff\xda" in data):
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise DatasetError(f"cannot read image {path}: truncated JPEG (no end-of-image marker)")
    try:
        # other formats would be decoded whole and then resized by OpenCV: no gain, another pixel grid
        flags = _REDUCED_COLOR[reduction] if is_jpeg else cv2.IMREAD_COLOR
        if not exif_orientation:
            flags |= cv2.IMREAD_IGNORE_ORIENTATION
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as err:  # e.g. a header announcing more pixels than OpenCV's limit (a decompression bomb)
        reason = " ".join(str(err).split())
        raise DatasetError(f"cannot read image {path}: OpenCV refused to decode it ({reason})") from None
    if img is None or img.size == 0:
        raise DatasetError(f"cannot read image {path}: not a decodable image (corrupt file or unsupported format)")
    return img


def load_json(path):
    """``json.load`` of ``path`` with a ``DatasetError`` naming the file when it is unreadable or not JSON."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err})") from None
    except OSError as err:
        raise DatasetError(f"cannot read annotation file {path}: {err.strerror or err}") from None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class COCODataset(Dataset):
    """A COCO-format dataset (any COCO json + image folder).

    Args:
        data_dir: dataset root; default ``<YOLOX_DATADIR>/COCO``.
        json_file: a path to the annotation json, or a file name under ``<data_dir>/annotations/``.
        name: image folder under ``data_dir``: images are ``<data_dir>/<name>/<file_name>``.
        img_size: (height, width) the images are resized for (letterbox ratio).
        preproc: a transform ``(img, target, input_dim) -> (img, target)`` applied by ``__getitem__``.
        cache: preload the resized images; ``cache_type`` "ram" (in memory) or "disk" (``.npy`` files
            under ``cache_dir``, default ``<data_dir>/img_resized_cache_<name>/``, reused by later runs).
        skip_bad_images: instead of raising ``DatasetError`` for an unreadable image, warn once per
            file and return the next readable image; annotations with an unknown category or image id
            are dropped with one summary warning.

    Items are ``(img, target, (h, w), img_id)``: ``target`` ndarray[K, 5] (x1, y1, x2, y2, cls) in
    resized-image pixels before ``preproc``; ``(h, w)`` is the original image size.
    Crowd annotations (``iscrowd=1``) are ignored and boxes are clipped to the image; boxes with no
    area left are dropped. Images without annotations are kept as negatives.
    """

    def __init__(
        self,
        data_dir=None,
        json_file="instances_train2017.json",
        name="train2017",
        img_size=(416, 416),
        preproc=None,
        cache=False,
        cache_type="ram",
        skip_bad_images=False,
        cache_dir=None,
    ):
        super().__init__(img_size)
        self.data_dir = os.fspath(data_dir) if data_dir is not None else os.path.join(get_yolox_datadir(), "COCO")
        self.name = name
        self.img_size = tuple(img_size[:2])
        self.preproc = preproc
        self.skip_bad_images = skip_bad_images
        self.json_file = self._resolve_json(json_file)

        data = load_json(self.json_file)
        self._parse(data)
        self._parse_extras(data)
        del data

        self.imgs = None  # RAM cache: one resized image (or None when unreadable) per index
        self.cache_dir = None  # disk cache folder
        self._bad_indices = set()  # unreadable images already warned about (per process)
        if cache:
            self.cache_images(cache_type, cache_dir)

    # ------------------------------------------------------------------ annotation parsing
    def _resolve_json(self, json_file):
        json_file = os.fspath(json_file)
        if os.path.isfile(json_file):
            return os.path.abspath(json_file)
        candidate = os.path.join(self.data_dir, "annotations", json_file)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
        raise DatasetError(f"annotation file not found: {json_file} (also tried {candidate})")

    def _fail(self, where, problem):
        raise DatasetError(f"{self.json_file}: {where}: {problem}")

    def _check_list(self, data, key, required=True):
        if key not in data:
            if required:
                self._fail("top level", f"missing key '{key}'")
            return None
        if not isinstance(data[key], list):
            self._fail(key, f"expected a list, got {type(data[key]).__name__}")
        return data[key]

    def _parse(self, data):
        """Validate ``data`` (the loaded json) and build the compact per-image tables."""
        if not isinstance(data, dict):
            self._fail("top level", "expected a JSON object with 'images', 'annotations' and 'categories'")
        images = self._check_list(data, "images")
        categories = self._check_list(data, "categories")
        annotations = self._check_list(data, "annotations", required=False)
        if annotations is None:
            logger.warning(f"{self.json_file} has no 'annotations': every image is a negative")
            annotations = []
        if not images:
            self._fail("images", "is empty")
        if not categories:
            self._fail("categories", "is empty")

        self._parse_categories(categories)
        self._parse_images(images)
        self._parse_annotations(annotations)

    def _parse_categories(self, categories):
        names = {}
        for k, cat in enumerate(categories):
            where = f"categories[{k}]"
            if not isinstance(cat, dict):
                self._fail(where, f"expected an object, got {type(cat).__name__}")
            for key in ("id", "name"):
                if key not in cat:
                    self._fail(where, f"missing key '{key}'")
            if not _is_int(cat["id"]):
                self._fail(where, f"'id' must be an integer, got {cat['id']!r}")
            if not isinstance(cat["name"], str):
                self._fail(f"{where} (id={cat['id']})", f"'name' must be a string, got {cat['name']!r}")
            if cat["id"] in names:
                self._fail(f"{where} (id={cat['id']})", "duplicate category id")
            names[cat["id"]] = cat["name"]
        self.class_ids = sorted(names)
        self.class_names = [names[c] for c in self.class_ids]
        self._class_index = {c: i for i, c in enumerate(self.class_ids)}

    def _parse_images(self, images):
        ids, sizes, paths = [], [], []
        self._image_index = {}
        for i, img in enumerate(images):
            where = f"images[{i}]"
            if not isinstance(img, dict):
                self._fail(where, f"expected an object, got {type(img).__name__}")
            if "id" not in img:
                self._fail(where, "missing key 'id'")
            if not _is_int(img["id"]):
                self._fail(where, f"'id' must be an integer, got {img['id']!r}")
            where = f"images[{i}] (id={img['id']})"
            for key in ("height", "width"):
                if key not in img:
                    self._fail(where, f"missing key '{key}'")
                if not _is_int(img[key]) or img[key] <= 0:
                    self._fail(where, f"'{key}' must be a positive integer, got {img[key]!r}")
            if img["id"] in self._image_index:
                self._fail(where, "duplicate image id")
            self._image_index[img["id"]] = i
            ids.append(img["id"])
            sizes.append((img["height"], img["width"]))
            paths.append(self._image_relpath(img, where))
        self.ids = ids
        self._img_hw = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        # one numpy string array instead of a list of str: DataLoader workers do not copy it page by page
        self._img_relpaths = np.asarray(paths, dtype=str)

    def _image_relpath(self, img, where):
        """The image path relative to ``data_dir``: ``<name>/<file_name>`` (``<id:012>.jpg`` without file_name)."""
        file_name = img.get("file_name", f"{img['id']:012d}.jpg")
        if not isinstance(file_name, str) or not file_name:
            self._fail(where, f"'file_name' must be a non-empty string, got {file_name!r}")
        return os.path.join(self.name, file_name) if self.name else file_name

    def _parse_annotations(self, annotations):
        boxes, classes, owners = [], [], []
        num_crowd = num_unknown_cat = num_unknown_img = 0
        for j, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                self._fail(f"annotations[{j}]", f"expected an object, got {type(ann).__name__}")
            where = f"annotations[{j}] (id={ann['id']!r})" if "id" in ann else f"annotations[{j}]"
            for key in ("image_id", "category_id", "bbox"):
                if key not in ann:
                    self._fail(where, f"missing key '{key}'")
            image_id, category_id, bbox = ann["image_id"], ann["category_id"], ann["bbox"]
            if not _is_int(image_id):
                self._fail(where, f"'image_id' must be an integer, got {image_id!r}")
            if not _is_int(category_id):
                self._fail(where, f"'category_id' must be an integer, got {category_id!r}")
            if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(map(_is_finite_number, bbox))):
                self._fail(where, f"'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
            iscrowd = ann.get("iscrowd", 0)
            if iscrowd not in (0, 1):
                self._fail(where, f"'iscrowd' must be 0 or 1, got {iscrowd!r}")

            owner = self._image_index.get(image_id)
            if owner is None:
                if not self.skip_bad_images:
                    self._fail(where, f"image_id {image_id} is not in 'images'")
                num_unknown_img += 1
                continue
            cls = self._class_index.get(category_id)
            if cls is None:
                if not self.skip_bad_images:
                    self._fail(where, f"unknown category_id {category_id} (not in 'categories')")
                num_unknown_cat += 1
                continue
            if iscrowd:  # upstream YOLOX trains without crowd regions
                num_crowd += 1
                continue
            boxes.append(bbox)
            classes.append(cls)
            owners.append(owner)

        if num_unknown_cat or num_unknown_img:
            logger.warning(
                f"{self.json_file}: skipped {num_unknown_cat} annotations with an unknown category_id and "
                f"{num_unknown_img} with an unknown image_id (skip_bad_images)"
            )
        if num_crowd:
            logger.info(f"{self.json_file}: ignoring {num_crowd} crowd annotations (iscrowd=1)")

        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        owners = np.asarray(owners, dtype=np.int64)
        heights, widths = self._img_hw[owners, 0], self._img_hw[owners, 1]
        x1 = np.clip(boxes[:, 0], 0, widths)
        y1 = np.clip(boxes[:, 1], 0, heights)
        x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, widths)
        y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, heights)
        keep = (x2 > x1) & (y2 > y1)
        num_dropped = int((~keep).sum())
        if num_dropped:
            logger.warning(
                f"{self.json_file}: dropped {num_dropped} of {len(keep)} boxes with no area inside their image "
                "(zero or negative size, or outside the image)"
            )
        labels = np.stack([x1, y1, x2, y2, np.asarray(classes, dtype=np.float64)], axis=1)[keep]
        owners = owners[keep]
        order = np.argsort(owners, kind="stable")
        # all boxes in one array, image i owning rows offsets[i]:offsets[i + 1]
        self._labels = labels[order]
        self._label_owners = owners[order]
        self._label_offsets = np.concatenate([[0], np.cumsum(np.bincount(owners, minlength=len(self.ids)))])

    def _parse_extras(self, data):
        """Hook for subclasses to read more fields from the loaded json."""

    # ------------------------------------------------------------------ metadata
    def __len__(self):
        return len(self.ids)

    @property
    def num_classes(self):
        return len(self.class_ids)

    def image_path(self, index):
        """Path of the image at ``index``."""
        return os.path.join(self.data_dir, str(self._img_relpaths[index]))

    def image_size(self, index):
        """(height, width) of the original image at ``index``, from the annotation file."""
        return int(self._img_hw[index, 0]), int(self._img_hw[index, 1])

    def _image_class_pairs(self):
        """Unique (image index, class index) pairs, sorted by image then class: two int64 arrays."""
        keys = np.unique(self._label_owners * self.num_classes + self._labels[:, 4].astype(np.int64))
        return keys // self.num_classes, keys % self.num_classes

    def img_cat_ids(self):
        """Sorted contiguous class indices present in each image (``[]`` for negatives), for RFS."""
        owners, classes = self._image_class_pairs()
        splits = np.searchsorted(owners, np.arange(1, len(self)))
        return [c.tolist() for c in np.split(classes, splits)]

    @property
    def class_image_counts(self):
        """ndarray[C] int64: number of images containing each class."""
        _, classes = self._image_class_pairs()
        return np.bincount(classes, minlength=self.num_classes)

    def load_anno(self, index):
        """ndarray[K, 5] float64 (x1, y1, x2, y2, cls) in ORIGINAL image pixels (a copy)."""
        return self._labels[self._label_offsets[index]:self._label_offsets[index + 1]].copy()

    def _resize_ratio(self, index):
        height, width = self._img_hw[index]
        return min(self.img_size[0] / height, self.img_size[1] / width)

    # ------------------------------------------------------------------ images
    def load_image(self, index):
        """The original image at ``index`` (HWC BGR uint8); its size must match the annotation file.

        A JPEG with an EXIF rotation is used in the orientation whose size the annotation file records:
        the stored pixels first (COCO's convention), else the rotated image."""
        return self._load_image(index, reduction=1)[0]

    def _load_image(self, index, reduction):
        """``load_image``, a JPEG decoded at 1/``reduction`` size (sides rounded up, see ``read_image``).

        Returns (img, the reduction used: 1 for other formats). ``reduction`` must be below both sides."""
        path = self.image_path(index)
        height, width = self.image_size(index)
        reduced = (-(-height // reduction), -(-width // reduction))
        img = read_image(path, exif_orientation=False, reduction=reduction)
        if img.shape[:2] in (reduced[::-1], (width, height)) and height != width:
            rotated = read_image(path, exif_orientation=True, reduction=reduction)
            if rotated.shape[:2] in (reduced, (height, width)):
                img = rotated
        if img.shape[:2] == (height, width):
            return img, 1
        if img.shape[:2] == reduced:
            return img, reduction
        if reduction > 1:  # a size mismatch: report it at full size
            return self._load_image(index, reduction=1)
        raise DatasetError(
            f"cannot use image {path}: it is {img.shape[1]}x{img.shape[0]} (w x h) but "
            f"{self.json_file} says {width}x{height}"
        )

    def _read_resized(self, index):
        img = self.load_image(index)
        r = self._resize_ratio(index)
        size = (int(img.shape[1] * r), int(img.shape[0] * r))
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR).astype(np.uint8)

    def letterbox_size(self, index):
        """(height, width) of the image at ``index`` once letterbox-resized for ``img_size`` (``pull_item``'s)."""
        height, width = self._img_hw[index]
        r = self._resize_ratio(index)
        return int(height * r), int(width * r)

    def load_resized_img(self, index):
        """The image at ``index`` letterbox-resized for ``img_size`` (HWC uint8, a fresh writable array)."""
        if self.imgs is not None and self.imgs[index] is not None:
            return self.imgs[index].copy()
        if self.cache_dir is not None:
            try:
                return np.array(np.load(self._cache_file(index), mmap_mode="r"))
            except (OSError, ValueError):
                pass  # cache file gone or damaged: read the image itself
        return self._read_resized(index)

    def _load_scaled_img(self, index, scale):
        """(img, pitch): see ``pull_scaled_item``."""
        if self.imgs is not None and self.imgs[index] is not None:
            return self.imgs[index], (1.0, 1.0)
        if self.cache_dir is not None:
            return self.load_resized_img(index), (1.0, 1.0)
        height, width = self._img_hw[index]
        letterbox_h, letterbox_w = self.letterbox_size(index)
        # output pixels per stored pixel; a reduced decode must still give >= 1 decoded pixel per output pixel
        zoom = max(letterbox_h / height, letterbox_w / width) * scale
        reduction = 1
        while reduction < 8 and 2 * reduction * zoom <= 1 and 2 * reduction < min(height, width):
            reduction *= 2
        img, reduction = self._load_image(index, reduction)
        return img, (reduction * letterbox_h / height, reduction * letterbox_w / width)

    def pull_scaled_item(self, index, scale=1.0):
        """``pull_item`` for an image that will be drawn at ``scale`` output pixels per letterboxed pixel.

        Instead of the letterboxed image it returns the image at a size that still has at least one pixel
        per output pixel, without resizing it: a JPEG is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg
        (DCT scaling, cheaper than decoding it whole) when ``scale`` allows; cached images come as cached.
        Returns (img, labels, (h, w), img_id, letterbox_hw, pitch):
          img: HWC BGR uint8 showing the whole image, to be read only (it may be the RAM cache's array);
            None when ``scale`` is None: labels only, the image is not read (an unreadable one that has not
            been met yet is not noticed);
          labels, (h, w), img_id: as ``pull_item`` (labels in letterboxed pixels);
          letterbox_hw: (height, width) of the image ``pull_item`` returns;
          pitch: (py, px) letterboxed pixels per ``img`` pixel; pixel (x, y) of ``img`` lies at
            ((x + 0.5) * px - 0.5, (y + 0.5) * py - 0.5) of the letterboxed image (``cv2.resize``'s pixel grid).
        """
        def load(candidate):
            return (None, None) if scale is None else self._load_scaled_img(candidate, scale)

        candidate, (img, pitch) = self._first_readable(index, load)
        labels = self.load_anno(candidate)
        labels[:, :4] *= self._resize_ratio(candidate)
        return img, labels, self.image_size(candidate), self.ids[candidate], self.letterbox_size(candidate), pitch

    def pull_item(self, index):
        """(resized img HWC uint8, labels ndarray[K, 5] scaled by r, (h, w) original size, img_id).

        With ``skip_bad_images`` an unreadable image is replaced by the next readable one
        (index + 1, index + 2, ...), with one warning per bad file.
        """
        candidate, img = self._first_readable(index, self.load_resized_img)
        labels = self.load_anno(candidate)
        labels[:, :4] *= self._resize_ratio(candidate)
        return img, labels, self.image_size(candidate), self.ids[candidate]

    def _first_readable(self, index, load):
        """(candidate, load(candidate)) for the first of index, index + 1, ... that loads: with
        ``skip_bad_images`` unreadable images are skipped (one warning each), else their error is raised."""
        for step in range(len(self)):
            candidate = (index + step) % len(self)
            if candidate in self._bad_indices:
                continue
            try:
                return candidate, load(candidate)
            except DatasetError as err:
                if not self.skip_bad_images:
                    raise
                self._mark_bad(candidate, err)
        raise DatasetError(f"no readable image among the {len(self)} images of {self.json_file}")

    def _mark_bad(self, index, err):
        self._bad_indices.add(index)
        logger.warning(f"{err}; skipping it (skip_bad_images)")

    @Dataset.mosaic_getitem
    def __getitem__(self, index):
        img, target, img_info, img_id = self.pull_item(index)
        if self.preproc is not None:
            img, target = self.preproc(img, target, self.input_dim)
        return img, target, img_info, img_id

    # ------------------------------------------------------------------ caching
    @property
    def cache_name(self):
        """Tag of the disk cache folder: the image folder name, else the json's stem."""
        return self.name or Path(self.json_file).stem

    def _cache_file(self, index):
        return os.path.join(self.cache_dir, f"{self.ids[index]}_{self.img_size[0]}x{self.img_size[1]}.npy")

    def _cache_one(self, index):
        """Fill the cache for ``index``. Returns (index, DatasetError or None)."""
        try:
            if self.imgs is not None:
                self.imgs[index] = self._read_resized(index)
                return index, None
            path = self._cache_file(index)
            r = self._resize_ratio(index)
            height, width = self._img_hw[index]
            expected = (int(height * r), int(width * r), 3)
            try:
                cached = np.load(path, mmap_mode="r")
                if cached.shape == expected and cached.dtype == np.uint8:
                    return index, None
            except (OSError, ValueError):
                pass
            img = self._read_resized(index)
            # write then rename: an interrupted run or another rank never leaves a half-written file
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, img)
            os.replace(tmp, path)
            return index, None
        except DatasetError as err:
            return index, err

    def cache_images(self, cache_type="ram", cache_dir=None):
        """Preload every resized image into RAM, or into ``.npy`` files that later runs reuse."""
        if cache_type not in ("ram", "disk"):
            raise ValueError(f"cache_type must be 'ram' or 'disk', got {cache_type!r}")
        ratios = np.minimum(self.img_size[0] / self._img_hw[:, 0], self.img_size[1] / self._img_hw[:, 1])
        gigabytes = float(((self._img_hw * ratios[:, None]).astype(np.int64).prod(1) * 3).sum()) / 1024**3
        if cache_type == "ram":
            self.imgs = [None] * len(self)
            logger.info(f"caching {len(self)} images in RAM ({gigabytes:.1f} GB)")
        else:
            self.cache_dir = cache_dir or os.path.join(self.data_dir, f"img_resized_cache_{self.cache_name}")
            os.makedirs(self.cache_dir, exist_ok=True)
            logger.info(f"caching {len(self)} images on disk in {self.cache_dir} ({gigabytes:.1f} GB)")
        num_threads = max(1, min(8, (os.cpu_count() or 2) - 1))
        with ThreadPool(num_threads) as pool:
            progress = tqdm(pool.imap(self._cache_one, range(len(self))), total=len(self),
                            desc=f"caching images ({cache_type})")
            for index, err in progress:
                if err is None:
                    continue
                if not self.skip_bad_images:
                    raise err
                self._mark_bad(index, err)
