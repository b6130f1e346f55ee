"""PASCAL VOC detection dataset (the VOCdevkit layout, one XML annotation per image).

    <data_dir>/VOC2007/Annotations/000005.xml
    <data_dir>/VOC2007/JPEGImages/000005.jpg
    <data_dir>/VOC2007/ImageSets/Main/trainval.txt      (one image name per line)
    <data_dir>/VOC2012/...

Annotations are parsed once, at construction, into the same compact tables as :class:`COCODataset`, whose
image reading, letterboxing, caching, reduced JPEG decoding (``pull_scaled_item``) and ``img_cat_ids``
(repeat-factor sampling) this class reuses.
"""
import os
import xml.etree.ElementTree as ET

import numpy as np
from loguru import logger

from ..dataloading import get_yolox_datadir
from ..errors import DatasetError
from .coco import COCODataset, read_image
from .datasets_wrapper import Dataset
from .voc_classes import VOC_CLASSES

__all__ = ["AnnotationTransform", "VOCDetection", "parse_voc_xml", "parse_voc_objects", "voc_image_size"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# ------------------------------------------------------------------ XML parsing
def parse_voc_xml(path):
    """The root element of a VOC annotation file; ``DatasetError`` naming the file when it is missing or
    not well-formed XML."""
    path = os.fspath(path)
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {path}") from None
    except ET.ParseError as err:
        raise DatasetError(f"{path}: not valid XML ({err})") from None
    except OSError as err:
        raise DatasetError(f"cannot read annotation file {path}: {err.strerror or err}") from None


def _text(node, tag, path, where, default=None):
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if default is not None:
            return default
        raise DatasetError(f"{path}: {where}: missing <{tag}>")
    return child.text.strip()


def _number(node, tag, path, where):
    text = _text(node, tag, path, where)
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{path}: {where}: <{tag}> must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise DatasetError(f"{path}: {where}: <{tag}> must be finite, got {text!r}")
    return value


def _flag(node, tag, path, where):
    """A 0/1 field such as <difficult>; absent or empty reads as 0."""
    text = _text(node, tag, path, where, default="0")
    try:
        return int(float(text)) == 1
    except ValueError:
        raise DatasetError(f"{path}: {where}: <{tag}> must be 0 or 1, got {text!r}") from None


def parse_voc_objects(root, path="<annotation>"):
    """The <object> entries of a parsed VOC annotation, in file order: dicts with ``name`` (str, stripped),
    ``bbox`` ([xmin, ymin, xmax, ymax] floats as written: 1-based inclusive pixels), ``difficult`` and
    ``truncated`` (bool, 0 when absent) and ``pose`` (str, "Unspecified" when absent). ``path`` names the
    file in the ``DatasetError`` of a missing <name>, <bndbox> or coordinate."""
    objects = []
    for k, obj in enumerate(root.iter("object")):
        name = _text(obj, "name", path, f"object {k}")
        where = f"object {k} ({name})"
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(f"{path}: {where}: missing <bndbox>")
        objects.append({
            "name": name,
            "bbox": [_number(box, tag, path, where) for tag in ("xmin", "ymin", "xmax", "ymax")],
            "difficult": _flag(obj, "difficult", path, where),
            "truncated": _flag(obj, "truncated", path, where),
            "pose": _text(obj, "pose", path, where, default="Unspecified"),
        })
    return objects


def voc_image_size(root, path="<annotation>"):
    """(height, width) from <size>, or None when it is absent or not positive (some tools write 0)."""
    size = root.find("size")
    if size is None:
        return None
    values = []
    for tag in ("height", "width"):
        text = _text(size, tag, path, "size", default="0")
        try:
            values.append(int(float(text)))
        except ValueError:
            raise DatasetError(f"{path}: size: <{tag}> must be an integer, got {text!r}") from None
    return tuple(values) if min(values) > 0 else None


class AnnotationTransform:
    """VOC objects -> training labels ``ndarray[K, 5]`` (x1, y1, x2, y2, class index), upstream's interface.

    Coordinates are the XML's minus 1 (1-based -> 0-based pixels, as upstream YOLOX). ``difficult`` objects
    are training targets unless ``keep_difficult`` is False (upstream's default keeps them; evaluation
    ignores them either way). ``class_to_ind``: class
    name -> contiguous index (default: the 20 VOC classes); an object of another name is a
    ``DatasetError`` naming the file.

    ``transform(root)`` (an XML root element) returns ``(labels, (height, width) or None)``.
    """

    def __init__(self, class_to_ind=None, keep_difficult=True):
        self.class_to_ind = dict(class_to_ind) if class_to_ind else {n: i for i, n in enumerate(VOC_CLASSES)}
        self.keep_difficult = keep_difficult

    def labels(self, objects, path="<annotation>"):
        """Training labels of ``parse_voc_objects``' output."""
        rows = []
        for k, obj in enumerate(objects):
            if obj["difficult"] and not self.keep_difficult:
                continue
            cls = self.class_to_ind.get(obj["name"])
            if cls is None:
                known = ", ".join(sorted(self.class_to_ind)[:25])
                raise DatasetError(f"{path}: object {k}: unknown class {obj['name']!r} (the dataset's "
                                   f"{len(self.class_to_ind)} classes: {known}); pass class_names to VOCDetection")
            rows.append([c - 1.0 for c in obj["bbox"]] + [float(cls)])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)

    def __call__(self, target, path="<annotation>"):
        return self.labels(parse_voc_objects(target, path), path), voc_image_size(target, path)


# ------------------------------------------------------------------ dataset
class VOCDetection(COCODataset):
    """PASCAL VOC (or any folder in its layout) as a YOLOX detection dataset.

    Args:
        data_dir: the VOCdevkit folder (default ``<YOLOX_DATADIR>/VOCdevkit``).
        image_sets: (year, set) pairs: images ``VOC<year>/ImageSets/Main/<set>.txt`` (first word of a line).
        img_size: (height, width) the images are letterbox-resized for.
        preproc: ``(img, target, input_dim) -> (img, target)``, applied by ``__getitem__``.
        target_transform: objects -> labels; default ``AnnotationTransform(class_names, keep_difficult)``
            (a given transform brings its own ``keep_difficult``).
        dataset_name: tag of the disk cache folder (``<data_dir>/img_resized_cache_<name>_<sets>``).
        cache, cache_type, cache_dir, skip_bad_images: as :class:`COCODataset`.
        class_names: the classes in index order (default ``VOC_CLASSES``); objects of other names are an error.
        keep_difficult: train on ``difficult`` objects too (default True, upstream YOLOX's; False leaves them out of
            the targets).

    Items are ``(img, target, (h, w), index)`` like ``COCODataset``'s, the image id being the index (as
    upstream). ``load_anno`` gives ORIGINAL-pixel labels (upstream: letterboxed ones). A JPEG's size must
    match the XML's <size> (either EXIF orientation); without <size> it is read from the image.
    ``voc_ids[i]`` is (``<data_dir>/VOC<year>``, image name). Images with no object left are negatives.
    ``ground_truth(c)`` holds every object of class c with its ``difficult`` flag, for ``VOCEvaluator``.
    """

    def __init__(
        self,
        data_dir=None,
        image_sets=(("2007", "trainval"), ("2012", "trainval")),
        img_size=(416, 416),
        preproc=None,
        target_transform=None,
        dataset_name="VOC0712",
        cache=False,
        cache_type="ram",
        skip_bad_images=False,
        cache_dir=None,
        class_names=None,
        keep_difficult=True,
    ):
        Dataset.__init__(self, img_size)
        self.data_dir = os.fspath(data_dir) if data_dir is not None else os.path.join(get_yolox_datadir(), "VOCdevkit")
        self.root = self.data_dir  # upstream's name
        if isinstance(image_sets, tuple) and len(image_sets) == 2 and all(isinstance(v, str) for v in image_sets):
            image_sets = [image_sets]  # a single ("2007", "test")
        self.image_set = [(str(year), str(name)) for year, name in image_sets]
        if not self.image_set:
            raise ValueError("image_sets is empty: give (year, set) pairs such as ('2007', 'trainval')")
        self.img_size = tuple(img_size[:2])
        self.preproc = preproc
        self.name = dataset_name
        self.skip_bad_images = skip_bad_images
        if class_names is None and getattr(target_transform, "class_to_ind", None):
            mapping = target_transform.class_to_ind
            class_names = sorted(mapping, key=mapping.get)
        self.class_names = [str(n) for n in class_names] if class_names is not None else list(VOC_CLASSES)
        if not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be distinct names, got {self.class_names}")
        self.class_ids = list(range(len(self.class_names)))
        self._class_index = {i: i for i in self.class_ids}
        self.cats = [{"id": i, "name": n} for i, n in enumerate(self.class_names)]
        self.target_transform = target_transform or AnnotationTransform(
            {n: i for i, n in enumerate(self.class_names)}, keep_difficult=keep_difficult)

        self._load_annotations()
        self.imgs = None
        self.cache_dir = None
        self._bad_indices = set()
        if cache:
            self.cache_images(cache_type, cache_dir)

    # ------------------------------------------------------------------ layout
    def _set_file(self, year, name):
        return os.path.join(self.data_dir, f"VOC{year}", "ImageSets", "Main", f"{name}.txt")

    def _image_files(self, year):
        """image name -> file name in ``VOC<year>/JPEGImages`` (``.jpg`` first, then other image formats)."""
        folder = os.path.join(self.data_dir, f"VOC{year}", "JPEGImages")
        if not os.path.isdir(folder):
            raise DatasetError(f"VOC image folder not found: {folder}")
        files = {}
        for entry in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(entry)
            if ext.lower() in IMAGE_EXTENSIONS and (stem not in files or ext.lower() == ".jpg"):
                files[stem] = entry
        return files

    def _image_names(self, year, name):
        if not os.path.isdir(self.data_dir):
            raise DatasetError(f"VOC folder not found: {self.data_dir} (expected the VOCdevkit folder holding "
                               f"VOC<year>/Annotations, JPEGImages and ImageSets/Main)")
        year_dir = os.path.join(self.data_dir, f"VOC{year}")
        if not os.path.isdir(year_dir):
            raise DatasetError(f"VOC folder not found: {year_dir} (image set ({year!r}, {name!r}))")
        for sub in ("Annotations", "JPEGImages"):
            if not os.path.isdir(os.path.join(year_dir, sub)):
                raise DatasetError(f"VOC folder not found: {os.path.join(year_dir, sub)}")
        set_file = self._set_file(year, name)
        try:
            with open(set_file, "r", encoding="utf-8") as f:
                names = [line.split()[0] for line in f if line.strip()]
        except FileNotFoundError:
            raise DatasetError(f"VOC image set file not found: {set_file}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"cannot read VOC image set file {set_file}: {err}") from None
        if not names:
            raise DatasetError(f"{set_file}: lists no image")
        return names

    def annotation_path(self, index):
        """The XML file of the image at ``index``."""
        rootpath, image_name = self.voc_ids[index]
        return os.path.join(rootpath, "Annotations", f"{image_name}.xml")

    def _load_annotations(self):
        self.voc_ids, sizes, relpaths, self._years = [], [], [], []
        labels, owners = [], []
        gt_boxes, gt_classes, gt_difficult, gt_owners = [], [], [], []
        num_sized_from_image = 0
        class_index = {name: i for i, name in enumerate(self.class_names)}
        for year, set_name in self.image_set:
            image_names = self._image_names(year, set_name)  # checks the folders first
            image_files = self._image_files(year)
            rootpath = os.path.join(self.data_dir, f"VOC{year}")
            for image_name in image_names:
                index = len(self.voc_ids)
                self.voc_ids.append((rootpath, image_name))
                self._years.append(year)
                file_name = image_files.get(image_name, f"{image_name}.jpg")  # a missing image fails when read
                relpaths.append(os.path.join(f"VOC{year}", "JPEGImages", file_name))
                xml = self.annotation_path(index)
                root = parse_voc_xml(xml)
                objects = parse_voc_objects(root, xml)
                if hasattr(self.target_transform, "labels"):
                    target, size = self.target_transform.labels(objects, xml), voc_image_size(root, xml)
                else:  # an upstream-style callable: root element -> (labels, (height, width))
                    target, size = self.target_transform(root)
                    target = np.asarray(target, dtype=np.float64).reshape(-1, 5)
                if size is None:
                    size = read_image(os.path.join(self.data_dir, relpaths[-1])).shape[:2]
                    num_sized_from_image += 1
                sizes.append(size)
                labels.append(target)
                owners.append(np.full(len(target), index, dtype=np.int64))
                for obj in objects:
                    gt_boxes.append(obj["bbox"])
                    gt_classes.append(class_index.get(obj["name"], -1))  # -1: a class not evaluated
                    gt_difficult.append(obj["difficult"])
                    gt_owners.append(index)
        if num_sized_from_image:
            logger.info(f"{self.data_dir}: {num_sized_from_image} annotations have no <size>; read it from the image")

        self.ids = list(range(len(self.voc_ids)))  # the image id of an item is its index, as upstream
        self._img_hw = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        self._img_relpaths = np.asarray(relpaths, dtype=str)
        self._store_labels(np.concatenate(labels, 0), np.concatenate(owners, 0))
        # evaluation ground truth: every object as written (1-based inclusive pixels), difficult ones included
        self._gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        self._gt_classes = np.asarray(gt_classes, dtype=np.int64)
        self._gt_difficult = np.asarray(gt_difficult, dtype=bool)
        self._gt_owners = np.asarray(gt_owners, dtype=np.int64)

    def _store_labels(self, labels, owners):
        """Clip the training boxes to their images, drop those without area, and store them as COCODataset does."""
        heights, widths = self._img_hw[owners, 0], self._img_hw[owners, 1]
        labels = labels.copy()
        labels[:, 0], labels[:, 2] = np.clip(labels[:, 0], 0, widths), np.clip(labels[:, 2], 0, widths)
        labels[:, 1], labels[:, 3] = np.clip(labels[:, 1], 0, heights), np.clip(labels[:, 3], 0, heights)
        keep = (labels[:, 2] > labels[:, 0]) & (labels[:, 3] > labels[:, 1])
        if not keep.all():
            logger.warning(f"{self.data_dir}: dropped {int((~keep).sum())} of {len(keep)} boxes with no area inside "
                           f"their image (image sets {self._sets_description()})")
        self._labels, self._label_owners = labels[keep], owners[keep]
        self._label_offsets = np.concatenate([[0], np.cumsum(np.bincount(self._label_owners, minlength=len(self.ids)))])

    def _sets_description(self):
        return ", ".join(f"VOC{year}/{name}" for year, name in self.image_set)

    # ------------------------------------------------------------------ evaluation
    @property
    def use_07_metric(self):
        """VOC2007's 11-point AP for sets of the years before 2010 (the devkit changed its AP then), as upstream."""
        try:
            return all(int(year) < 2010 for year, _ in self.image_set)
        except ValueError:  # a folder such as VOCmydata: the current metric
            return False

    def image_name(self, index):
        """The VOC image name (file stem) at ``index``."""
        return self.voc_ids[index][1]

    def ground_truth(self, class_index):
        """{image index: (boxes [K, 4] float64 as in the XML (1-based inclusive pixels), difficult [K] bool)}
        of the objects of ``class_index``, over every image (empty arrays where it has none)."""
        select = self._gt_classes == class_index
        owners, boxes, difficult = self._gt_owners[select], self._gt_boxes[select], self._gt_difficult[select]
        splits = np.searchsorted(owners, np.arange(1, len(self) + 1))
        starts = np.concatenate([[0], splits[:-1]])
        return {i: (boxes[a:b], difficult[a:b]) for i, (a, b) in enumerate(zip(starts, splits))}

    def evaluate_detections(self, all_boxes, output_dir=None):
        """Upstream's VOC evaluation: ``all_boxes[class][image]`` arrays [K, 5] (x1, y1, x2, y2, score) in
        original 0-based pixels. Returns (mAP50:95, mAP50); with ``output_dir`` the per-class results files
        ``comp4_det_test_<class>.txt`` are written there (the devkit's format, 1-based)."""
        from yolox.evaluators.voc_evaluator import detections_from_all_boxes, voc_metrics, write_voc_results

        detections = detections_from_all_boxes(all_boxes)
        if output_dir is not None:
            write_voc_results(self, detections, output_dir)
        metrics = voc_metrics(self, detections)
        return metrics["AP"], metrics["AP50"]

    # ------------------------------------------------------------------ images
    def _load_image(self, index, reduction):
        """The image at ``index`` and the reduction used (see ``COCODataset._load_image``); its size must be the
        XML's, in the stored or the EXIF-rotated orientation."""
        path = self.image_path(index)
        height, width = self.image_size(index)
        reduced = (-(-height // reduction), -(-width // reduction))
        for exif_orientation in (False, True):
            img = read_image(path, exif_orientation=exif_orientation, reduction=reduction)
            if img.shape[:2] == (height, width):
                return img, 1
            if img.shape[:2] == reduced:
                return img, reduction
            if img.shape[:2] not in ((width, height), reduced[::-1]):
                break  # no rotation makes it fit
        if reduction > 1:
            return self._load_image(index, 1)
        raise DatasetError(f"cannot use image {path}: it is {img.shape[1]}x{img.shape[0]} (w x h) but "
                           f"{self.annotation_path(index)} says {width}x{height}")

    def _first_readable(self, index, load):
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
        raise DatasetError(f"no readable image among the {len(self)} images of {self.data_dir} "
                           f"({self._sets_description()})")

    @property
    def cache_name(self):
        return f"{self.name}_" + "+".join(f"{year}{name}" for year, name in self.image_set)

    def _cache_file(self, index):
        stem = os.path.splitext(os.path.basename(str(self._img_relpaths[index])))[0]
        return os.path.join(self.cache_dir, f"VOC{self._years[index]}_{stem}_{self.img_size[0]}x{self.img_size[1]}.npy")
