import json
import random
from pathlib import Path

import cv2
import numpy as np
import torch

from yolox.data import (COCODataset, DataLoader, Dataset, InfiniteSampler, MosaicDetection, TrainTransform,
                        YoloBatchSampler, get_yolox_datadir, worker_init_reset_seed)


class FlagDataset(Dataset):
    """Returns the mosaic flag it received with each index."""

    def __init__(self):
        super().__init__((8, 8))

    def __len__(self):
        return 6

    @Dataset.mosaic_getitem
    def __getitem__(self, index):
        return torch.tensor([index, int(self.enable_mosaic)])


def test_get_yolox_datadir(monkeypatch):
    monkeypatch.delenv("YOLOX_DATADIR", raising=False)
    assert Path(get_yolox_datadir()) == Path(__file__).resolve().parents[2] / "datasets"
    monkeypatch.setenv("YOLOX_DATADIR", "/some/where")
    assert get_yolox_datadir() == "/some/where"


def test_worker_init_reset_seed_follows_torch_initial_seed():
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        draws = []
        for _ in range(2):
            torch.manual_seed(1234)  # a worker's initial seed is base_seed + worker_id
            worker_init_reset_seed(0)
            draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
        assert draws[0] == draws[1]
        torch.manual_seed(1235)
        worker_init_reset_seed(1)
        assert random.random() != draws[0][0]
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


def test_close_mosaic_reaches_the_dataset():
    batch_sampler = YoloBatchSampler(InfiniteSampler(6, shuffle=False), batch_size=3, mosaic=True)
    loader = DataLoader(FlagDataset(), batch_sampler=batch_sampler, num_workers=0)
    batches = iter(loader)
    assert next(batches).tolist() == [[0, 1], [1, 1], [2, 1]]
    loader.close_mosaic()
    assert next(batches).tolist() == [[3, 0], [4, 0], [5, 0]]
    assert len(loader) == 2


def test_restart_at_starts_the_next_pass_after_that_many_samples():
    loader = DataLoader(FlagDataset(), batch_sampler=YoloBatchSampler(InfiniteSampler(6, shuffle=False), batch_size=3),
                        num_workers=0)
    assert loader.restart_at(4)
    assert next(iter(loader)).tolist() == [[4, 1], [5, 1], [0, 1]]  # the endless stream, from sample 4 on
    plain = DataLoader(FlagDataset(), batch_size=3)
    assert not plain.restart_at(4) and next(iter(plain))[:, 0].tolist() == [0, 1, 2]


def test_base_dataset_is_the_dataset_under_the_mosaic():
    base = FlagDataset()
    base.load_anno = lambda index: np.zeros((0, 5))
    mosaic = MosaicDetection(base, img_size=(8, 8), mosaic=False, preproc=TrainTransform())
    assert DataLoader(mosaic, batch_size=2).base_dataset is base and mosaic.base_dataset is base
    assert DataLoader(base, batch_size=2).base_dataset is base


def test_close_mosaic_with_worker_processes():
    batch_sampler = YoloBatchSampler(InfiniteSampler(6, shuffle=False), batch_size=3, mosaic=True)
    loader = DataLoader(FlagDataset(), batch_sampler=batch_sampler, num_workers=2, prefetch_factor=1)
    batches = iter(loader)
    assert next(batches)[:, 1].tolist() == [1, 1, 1]
    loader.close_mosaic()
    flags = [next(batches)[:, 1].tolist() for _ in range(4)]
    assert flags[-1] == [0, 0, 0]  # batches already requested may still carry the old flag


def write_dataset(root, n=6):
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        images.append({"id": i, "file_name": f"{i}.jpg", "height": 48, "width": 64})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [8, 8, 24, 20]})
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
    (root / "ann.json").write_text(json.dumps(data))


def make_training_loader(root, num_workers):
    dataset = COCODataset(root, root / "ann.json", name="images", img_size=(64, 64))
    mosaic = MosaicDetection(dataset, img_size=(64, 64), preproc=TrainTransform(max_labels=10))
    batch_sampler = YoloBatchSampler(InfiniteSampler(len(dataset), seed=0), batch_size=2, mosaic=True)
    return DataLoader(mosaic, batch_sampler=batch_sampler, num_workers=num_workers,
                      worker_init_fn=worker_init_reset_seed)


def test_training_loader_batches_are_deterministic_with_workers(tmp_path):
    write_dataset(tmp_path)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        batches = iter(make_training_loader(tmp_path, num_workers=2))
        runs.append([next(batches) for _ in range(3)])
    for (imgs, labels, info, ids), (imgs2, labels2, _, ids2) in zip(*runs):
        assert imgs.shape == (2, 3, 64, 64) and imgs.dtype == torch.float32 and labels.shape == (2, 10, 5)
        assert torch.equal(imgs, imgs2) and torch.equal(labels, labels2) and torch.equal(ids, ids2)
        assert (labels[..., 3] > 0).any()
    assert not torch.equal(runs[0][0][0], runs[0][1][0])


def test_default_num_workers_shares_the_affinity_cpus_among_local_processes(monkeypatch):
    from yolox.data import dataloading

    cpus = set(range(12))
    monkeypatch.setattr(dataloading.os, "sched_getaffinity", lambda pid: cpus, raising=False)
    monkeypatch.setattr(dataloading.os, "cpu_count", lambda: 96)  # the machine's count must not be used
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert dataloading.default_num_workers() == 8  # 12 CPUs, capped
    assert dataloading.default_num_workers(max_workers=16) == 12
    for local_processes, workers in [("1", 8), ("2", 6), ("4", 3), ("5", 2), ("12", 1), ("13", 0), ("", 8)]:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
        assert dataloading.default_num_workers() == workers, local_processes
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    cpus.intersection_update({0, 1, 2})  # taskset to 3 CPUs
    assert dataloading.default_num_workers() == 1


def test_default_num_workers_without_affinity_uses_cpu_count(monkeypatch):
    from yolox.data import dataloading

    monkeypatch.delattr(dataloading.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(dataloading.os, "cpu_count", lambda: 6)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert dataloading.default_num_workers() == 6
    monkeypatch.setattr(dataloading.os, "cpu_count", lambda: None)
    assert dataloading.default_num_workers() == 1


def test_default_num_workers_is_logged_once(monkeypatch):
    from loguru import logger

    from yolox.data import dataloading

    monkeypatch.setattr(dataloading.os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(dataloading, "_logged_workers", None)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    messages = []
    handler = logger.add(lambda m: messages.append(str(m)), level="INFO", format="{message}")
    try:
        for _ in range(3):
            assert dataloading.default_num_workers() == 2
    finally:
        logger.remove(handler)
    assert len(messages) == 1
    assert "2 workers per process" in messages[0] and "4 CPUs" in messages[0] and "data_num_workers" in messages[0]


def test_exp_default_workers_and_the_override_wins(monkeypatch):
    from yolox.data import dataloading
    from yolox.exp import Exp

    monkeypatch.setattr(dataloading.os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    exp = Exp()
    assert exp.data_num_workers == 3
    exp.merge(["data_num_workers", "5"])
    assert exp.data_num_workers == 5
    exp.merge(["data_num_workers", "0"])
    assert exp.data_num_workers == 0


def test_dataloader_workers_keep_freed_memory_before_worker_init_fn(monkeypatch):
    from yolox.data import dataloading

    calls = []
    monkeypatch.setattr(dataloading, "keep_freed_memory", lambda: calls.append("keep"))
    loader = DataLoader(FlagDataset(), batch_size=2, num_workers=0, worker_init_fn=lambda i: calls.append(i))
    loader.worker_init_fn(3)
    assert calls == ["keep", 3]
    DataLoader(FlagDataset(), batch_size=2).worker_init_fn(0)  # no worker_init_fn of its own
    assert calls == ["keep", 3, "keep"]


def test_keep_freed_memory_takes_with_glibc():
    import platform

    from yolox.data.dataloading import keep_freed_memory

    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")


def test_uint8_training_batches_hold_the_float32_batches_values(tmp_path):
    """The experiment's loader sends uint8 images by default: the same values as upstream's float32."""
    from yolox.exp.yolox_base import Exp

    (tmp_path / "data").mkdir()
    write_dataset(tmp_path / "data")
    (tmp_path / "data" / "annotations").mkdir()
    (tmp_path / "data" / "ann.json").rename(tmp_path / "data" / "annotations" / "ann.json")
    batches = {}
    for dtype in ("uint8", "float32"):
        exp = Exp()
        exp.data_dir, exp.train_ann, exp.train_name = str(tmp_path / "data"), "ann.json", "images"
        exp.input_size, exp.num_classes, exp.data_num_workers, exp.enable_mixup = (64, 64), 1, 0, True
        exp.train_image_dtype = dtype
        torch.manual_seed(3)
        random.seed(3)
        np.random.seed(3)
        loader = iter(exp.get_data_loader(batch_size=2, is_distributed=False))
        batches[dtype] = [next(loader)[:2] for _ in range(3)]
    for (imgs8, labels8), (imgs32, labels32) in zip(batches["uint8"], batches["float32"]):
        assert imgs8.dtype == torch.uint8 and imgs32.dtype == torch.float32
        assert torch.equal(imgs8.float(), imgs32) and torch.equal(labels8, labels32)
