"""LVIS dataset (v1, and v0.5): COCO-format annotations whose images live in the COCO 2017 folders."""

import os
import re

from ..dataloading import get_yolox_datadir
from ..errors import DatasetError
from .coco import COCODataset, _is_int

__all__ = ["LVISDataset"]

# LVIS v0.5 names its images after COCO 2014 ("COCO_val2014_000000397133.jpg"); the COCO 2017
# folders hold the same images as "000000397133.jpg".
_COCO2014_NAME = re.compile(r"^COCO_(?:train|val|test)2014_(\d+\.\w+)$")


class LVISDataset(COCODataset):
    """An LVIS annotation file (``lvis_v1_train.json``, ``lvis_v1_val.json``, v0.5 files) over COCO 2017 images.

    Image paths:
      - LVIS v1 images have no ``file_name``: the path is ``<data_dir>/<split>/<file>`` from the last two
        components of ``coco_url`` (``.../train2017/X.jpg`` -> ``<data_dir>/train2017/X.jpg``). ``name`` is
        not used, since the v1 validation set holds images of both COCO train2017 and val2017.
      - With ``file_name`` (v0.5): ``<data_dir>/<name>/<file_name>``, the folder taken from ``coco_url``
        when ``name`` is None; COCO-2014 style names are mapped to the 2017 names when that folder is a
        2017 one.

    Besides the ``COCODataset`` interface it exposes ``category_frequency`` ('r'/'c'/'f' per contiguous
    class, or None when the json does not give all of them) and, per image, ``neg_category_ids`` and
    ``not_exhaustive_category_ids`` (LVIS category ids, ``[]`` when absent).
    """

    def __init__(
        self,
        data_dir=None,
        json_file="lvis_v1_train.json",
        name=None,
        img_size=(416, 416),
        preproc=None,
        cache=False,
        cache_type="ram",
        skip_bad_images=False,
        cache_dir=None,
    ):
        if data_dir is None:
            data_dir = os.path.join(get_yolox_datadir(), "LVIS")
        super().__init__(data_dir, json_file, name, img_size, preproc, cache, cache_type, skip_bad_images, cache_dir)

    def _image_relpath(self, img, where):
        file_name, url = img.get("file_name"), img.get("coco_url")
        for key, value in (("file_name", file_name), ("coco_url", url)):
            if value is not None and (not isinstance(value, str) or not value):
                self._fail(where, f"'{key}' must be a non-empty string, got {value!r}")
        url_folder = None
        if url is not None:
            parts = url.rstrip("/").split("/")
            if len(parts) < 2 or not parts[-1]:
                self._fail(where, f"'coco_url' must end in <split>/<file>, got {url!r}")
            url_folder, url_file = parts[-2], parts[-1]
        if file_name is None:
            if url is None:
                self._fail(where, "has neither 'file_name' nor 'coco_url'")
            return os.path.join(url_folder, url_file)
        folder = self.name or url_folder or ""
        match = _COCO2014_NAME.match(file_name)
        if match and folder.endswith("2017"):
            file_name = match.group(1)
        return os.path.join(folder, file_name)

    def _parse_extras(self, data):
        frequencies = [None] * self.num_classes
        for cat in data["categories"]:
            frequency = cat.get("frequency")
            if frequency is not None and frequency not in ("r", "c", "f"):
                raise DatasetError(
                    f"{self.json_file}: category id={cat['id']}: 'frequency' must be 'r', 'c' or 'f', got {frequency!r}"
                )
            frequencies[self._class_index[cat["id"]]] = frequency
        self.category_frequency = frequencies if all(f is not None for f in frequencies) else None

        self.neg_category_ids, self.not_exhaustive_category_ids = [], []
        for i, img in enumerate(data["images"]):
            for key, out in (("neg_category_ids", self.neg_category_ids),
                             ("not_exhaustive_category_ids", self.not_exhaustive_category_ids)):
                value = img.get(key, [])
                if not isinstance(value, list) or not all(map(_is_int, value)):
                    self._fail(f"images[{i}] (id={img['id']})",
                               f"'{key}' must be a list of category ids, got {value!r}")
                out.append(value)
