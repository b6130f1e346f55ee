"""Several detection datasets as one: ``ConcatDataset`` to put under ``MosaicDetection`` (e.g. COCO + VOC,
LVIS + a user's own COCO-format set), ``MixConcatDataset`` over datasets that each make their own items
(each a ``MosaicDetection``) from the ``(mosaic_flag, index)`` pairs of ``YoloBatchSampler``.

Index i of the concatenation is index i - offset(k) of dataset k, offset(k) being the total length of the
datasets before it (negative indices count from the end, as in a list).
"""
import bisect

import numpy as np

from .datasets_wrapper import Dataset

__all__ = ["ConcatDataset", "MixConcatDataset", "label_map_by_name"]


def label_map_by_name(source_names, target_names):
    """The label map from a dataset with classes ``source_names`` to ``target_names``: for each source class the
    index of the target class of the same name, -1 (dropped) where there is none. E.g. COCO's names onto
    VOC's for the classes they share (``"airplane"`` and ``"aeroplane"`` are not the same name)."""
    index = {name: i for i, name in enumerate(target_names)}
    return [index.get(name, -1) for name in source_names]


class ConcatDataset(Dataset):
    """The concatenation of detection datasets (``pull_item``/``load_anno``), usable inside ``MosaicDetection``.

    Args:
        datasets: the datasets, in order; each with ``__len__``, ``pull_item`` and ``load_anno`` (the
            ``MosaicDetection`` contract); ``pull_scaled_item`` and ``img_cat_ids`` are used when present.
        label_maps: None, or per dataset None (labels unchanged) or a sequence giving for each of its class
            indices the class of the concatenation, -1 to drop that class's boxes (:func:`label_map_by_name`).
            Without maps the datasets must already share one class numbering.
        input_dimension: (h, w) of ``input_dim``; default the first dataset's ``input_dim`` (as upstream).
        preproc: the transform ``__getitem__`` applies; default each dataset's own ``preproc``.

    ``pull_item``, ``pull_scaled_item`` and ``load_anno`` are those of the dataset holding the index (labels
    mapped); image ids are the datasets' own (they may repeat across datasets). ``num_classes`` is the number
    of classes the labels can take; ``class_names`` the datasets' names when they agree (or when the maps
    define them, with ``class_names`` given), else None.
    """

    def __init__(self, datasets, label_maps=None, input_dimension=None, preproc=None, class_names=None):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset")
        if input_dimension is None:
            first = self.datasets[0]
            input_dimension = getattr(first, "input_dim", None) or getattr(first, "img_size", None)
            if input_dimension is None:
                raise ValueError("the first dataset has no input_dim: give input_dimension=(h, w)")
        super().__init__(input_dimension)
        if label_maps is None:
            label_maps = [None] * len(self.datasets)
        label_maps = list(label_maps)
        if len(label_maps) != len(self.datasets):
            raise ValueError(f"got {len(label_maps)} label maps for {len(self.datasets)} datasets")
        self.label_maps = [None if m is None else np.asarray(m, dtype=np.int64).reshape(-1) for m in label_maps]
        for k, (dataset, mapping) in enumerate(zip(self.datasets, self.label_maps)):
            count = getattr(dataset, "num_classes", None)
            if mapping is not None and count is not None and len(mapping) != count:
                raise ValueError(f"label_maps[{k}] has {len(mapping)} entries but dataset {k} has {count} classes")
        self.preproc = preproc
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()
        self._class_names = list(class_names) if class_names is not None else None

    # ------------------------------------------------------------------ indices
    def __len__(self):
        return self.cumulative_sizes[-1]

    def locate(self, index):
        """(dataset number, index in that dataset) of ``index``."""
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a concatenation of {len(self)} items")
        k = bisect.bisect_right(self.cumulative_sizes, index)
        return k, index - (self.cumulative_sizes[k - 1] if k > 0 else 0)

    def _map(self, k, labels):
        """``labels`` [K, 5+] of dataset ``k`` with their classes mapped (rows of dropped classes removed)."""
        mapping = self.label_maps[k]
        if mapping is None or len(labels) == 0:
            return labels
        classes = mapping[labels[:, 4].astype(np.int64)]
        labels = labels[classes >= 0].copy()
        labels[:, 4] = classes[classes >= 0]
        return labels

    # ------------------------------------------------------------------ MosaicDetection's contract
    def pull_item(self, index):
        k, local = self.locate(index)
        img, labels, img_info, img_id = self.datasets[k].pull_item(local)
        return img, self._map(k, labels), img_info, img_id

    def pull_scaled_item(self, index, scale=1.0):
        """The holding dataset's ``pull_scaled_item``; for one without it, its ``pull_item`` (the image is then
        always read, at pitch 1)."""
        k, local = self.locate(index)
        dataset = self.datasets[k]
        if hasattr(dataset, "pull_scaled_item"):
            img, labels, img_info, img_id, letterbox_hw, pitch = dataset.pull_scaled_item(local, scale)
        else:
            img, labels, img_info, img_id = dataset.pull_item(local)
            letterbox_hw, pitch = img.shape[:2], (1.0, 1.0)
        return img, self._map(k, labels), img_info, img_id, letterbox_hw, pitch

    def load_anno(self, index):
        k, local = self.locate(index)
        return self._map(k, self.datasets[k].load_anno(local))

    @Dataset.mosaic_getitem
    def __getitem__(self, index):
        k, _ = self.locate(index)
        img, target, img_info, img_id = self.pull_item(index)
        preproc = self.preproc if self.preproc is not None else getattr(self.datasets[k], "preproc", None)
        if preproc is not None:
            img, target = preproc(img, target, self.input_dim)
        return img, target, img_info, img_id

    # ------------------------------------------------------------------ classes
    def img_cat_ids(self):
        """Sorted class indices (mapped) present in each image, for repeat-factor sampling."""
        out = []
        for k, dataset in enumerate(self.datasets):
            mapping = self.label_maps[k]
            if hasattr(dataset, "img_cat_ids"):
                cats = dataset.img_cat_ids()
            else:
                cats = [np.unique(dataset.load_anno(i)[:, 4].astype(np.int64)).tolist() for i in range(len(dataset))]
            if mapping is not None:
                cats = [sorted({int(mapping[c]) for c in image if mapping[c] >= 0}) for image in cats]
            out.extend(cats)
        return out

    @property
    def num_classes(self):
        counts = []
        for dataset, mapping in zip(self.datasets, self.label_maps):
            if mapping is not None:
                counts.append(int(mapping.max()) + 1 if len(mapping) else 0)
            elif getattr(dataset, "num_classes", None) is not None:
                counts.append(int(dataset.num_classes))
        if self._class_names is not None:
            counts.append(len(self._class_names))
        return max(counts) if counts else None

    @property
    def class_names(self):
        if self._class_names is not None:
            return list(self._class_names)
        if any(m is not None for m in self.label_maps):
            return None
        names = [getattr(d, "class_names", None) for d in self.datasets]
        if names[0] is not None and all(n is not None and list(n) == list(names[0]) for n in names):
            return list(names[0])
        return None


class MixConcatDataset(ConcatDataset):
    """A concatenation whose ``__getitem__`` passes the ``(mosaic_flag, index)`` pairs of ``YoloBatchSampler``
    on to the holding dataset as ``(mosaic_flag, local index)`` (upstream YOLOX's ``MixConcatDataset``), so
    that each dataset, e.g. a ``MosaicDetection`` of its own, builds the item and follows the sampler's flag.
    Plain int indices are passed on as ints. Labels are the datasets' (no ``label_maps``)."""

    def __init__(self, datasets, input_dimension=None):
        super().__init__(datasets, input_dimension=input_dimension)

    def __getitem__(self, index):
        if isinstance(index, (tuple, list)):
            k, local = self.locate(index[1])
            self.enable_mosaic = bool(index[0])
            return self.datasets[k][(index[0], local, *index[2:])]
        k, local = self.locate(index)
        return self.datasets[k][local]
