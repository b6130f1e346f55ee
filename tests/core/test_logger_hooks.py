"""-l wandb and -l mlflow (yolox/core/hooks/loggers.py), offline: the hooks driven with a fake trainer, and
short trainings through tools/train.py whose tracked values are read back and compared with TensorBoard's."""
import argparse
import json
import os
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cli_helpers import make_dataset, run_tool, write_exp  # noqa: E402

from yolox.core.hooks import MlflowLoggerHook, WandbLoggerHook, build_logger_hook  # noqa: E402
from yolox.core.hooks.loggers import check_logger, exp_params, split_wandb_options  # noqa: E402
from yolox.evaluators.detection_gather import kept_detections  # noqa: E402
from yolox.utils.errors import YOLOXError  # noqa: E402

# What a progress hook writes in two progress lines and one evaluation (tag, value, step): the steps are the
# global iteration (train/, efl/) and the epoch (val/), as in TensorBoard.
SCALARS = [
    [("train/total_loss", 3.5, 2), ("train/cls_loss", 1.25, 2), ("train/lr", 0.001, 2), ("efl/gamma_r", 2.5, 2)],
    [("train/total_loss", 2.5, 4), ("train/cls_loss", 0.75, 4), ("train/lr", 0.002, 4), ("efl/gamma_r", 2.25, 4)],
]
VAL = [("val/AP50_95", 0.125, 1), ("val/AP50", 0.25, 1), ("val/APr", 0.0625, 1)]


def fake_trainer(tmp_path, rank=0, logger="mlflow"):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    exp = SimpleNamespace(exp_name="tiny", basic_lr_per_img=0.01 / 64, input_size=(96, 96), cls_loss="efl")
    args = argparse.Namespace(experiment_name="run", batch_size=2, logger=logger, opts=[])
    return SimpleNamespace(rank=rank, file_name=str(run), exp=exp, args=args, epoch=0, iter=0, max_epoch=1,
                           max_iter=4)


def drive(hook, trainer, progress, best=True):
    """One epoch of two progress lines and an evaluation, written through the progress hook's writer."""
    hook.trainer = trainer
    hook.before_train()
    for line in SCALARS:
        trainer.iter = line[0][2] - 1
        for tag, value, step in line:
            progress.writer.add_scalar(tag, value, step)
        hook.after_step()
    (Path(trainer.file_name) / "latest_ckpt.pth").write_bytes(b"latest")
    if best:
        (Path(trainer.file_name) / "best_ckpt.pth").write_bytes(b"best")
    for tag, value, step in VAL:
        progress.writer.add_scalar(tag, value, step)
    hook.after_epoch()
    progress.writer.close()  # as ProgressHook.after_train
    hook.after_train()


# ---------------------------------------------------------------------------------------------- options
def test_wandb_options_come_out_of_the_overrides_typed_and_the_rest_stays_in_order():
    opts = ["max_epoch", "3", "wandb-project", "yolox", "wandb-entity", "me", "wandb-name", "run1", "wandb-id", "abc",
            "wandb-save_dir", "./wandb", "wandb-log_checkpoints", "True", "wandb-num_eval_images", "10",
            "eval_interval", "2"]
    options, rest = split_wandb_options(opts)
    assert options == {"project": "yolox", "entity": "me", "name": "run1", "id": "abc", "save_dir": "./wandb",
                       "log_checkpoints": True, "num_eval_images": 10}
    assert rest == ["max_epoch", "3", "eval_interval", "2"]
    assert split_wandb_options(None) == ({}, [])
    # a lone trailing key stays for exp.merge to reject as an odd list
    assert split_wandb_options(["wandb-project"]) == ({}, ["wandb-project"])


def test_params_are_the_exps_public_attributes_with_other_values_as_strings():
    exp = SimpleNamespace(a=1, b=(96, 96), _private=3, c=None, d="x")
    assert exp_params(exp) == {"a": 1, "b": "(96, 96)", "c": "None", "d": "x"}


def test_a_missing_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(YOLOXError) as err:
        check_logger("mlflow")
    assert "pip install '.[loggers]'" in str(err.value) and "requirements-optional.txt" in str(err.value)
    assert "\n" not in str(err.value)
    check_logger("tensorboard")
    check_logger("none")
    # other ranks log nothing and need no package
    assert MlflowLoggerHook(SimpleNamespace(writer=None), rank=1).mlflow is None
    assert build_logger_hook("tensorboard", None) is None and build_logger_hook("none", None) is None


def test_a_trackers_calls_leave_the_training_random_streams_alone(tmp_path):
    """A tracker's client may draw from the global generators (MLflow 3's start-up does, now and then); the
    training's augmentation draws from the same ones, so a seeded run must not see the draws."""
    import random

    import numpy as np
    import torch

    from yolox.core.hooks import LoggerHook

    class DrawingTracker(LoggerHook):
        calls = []

        def _draw(self, name):
            self.calls.append(name)
            random.random(), np.random.rand(), torch.rand(1)

        def start(self):
            self._draw("start")

        def log(self, values, step, epoch_axis):
            self._draw("log")

        def epoch_end(self):
            self._draw("epoch_end")

        def finish(self, completed):
            self._draw("finish")

    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    progress = SimpleNamespace(writer=None, evaluation=None)
    drive(DrawingTracker(progress), fake_trainer(tmp_path), progress)
    assert DrawingTracker.calls == ["start", "log", "log", "log", "epoch_end", "finish"]
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


# ---------------------------------------------------------------------------------------------- mlflow
def test_mlflow_logs_the_writers_scalars_at_their_steps_params_and_the_best_checkpoint(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lt-tests")
    monkeypatch.setenv("YOLOX_MLFLOW_RUN_NAME", "run-a")
    monkeypatch.setenv("MLFLOW_TAGS", '{"team": "lt"}')
    trainer = fake_trainer(tmp_path)
    progress = SimpleNamespace(writer=None, evaluation=None)
    hook = MlflowLoggerHook(progress)
    drive(hook, trainer, progress)
    assert progress.writer is None  # handed back at the end
    assert hook.tracking_uri == (tmp_path / "run" / "mlruns").resolve().as_uri()  # the default file store
    client = MlflowClient(tracking_uri=hook.tracking_uri)
    run = client.get_run(hook.run_id)
    assert run.info.run_name == "run-a" and run.info.status == "FINISHED" and run.data.tags["team"] == "lt"
    assert client.get_experiment(run.info.experiment_id).name == "lt-tests"
    for tag, value, step in [s for line in SCALARS for s in line] + VAL:
        history = {m.step: m.value for m in client.get_metric_history(hook.run_id, tag)}
        assert history[step] == pytest.approx(value)
    assert run.data.params["exp_name"] == "tiny" and run.data.params["input_size"] == "(96, 96)"
    assert run.data.params["args/batch_size"] == "2"
    assert [a.path for a in client.list_artifacts(hook.run_id, "checkpoints")] == ["checkpoints/best_ckpt.pth"]


def test_mlflow_marks_a_run_that_stopped_early_failed(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("YOLOX_MLFLOW_LOG_MODEL_ARTIFACTS", "false")
    trainer = fake_trainer(tmp_path)
    progress = SimpleNamespace(writer=None, evaluation=None)
    hook = MlflowLoggerHook(progress)
    hook.trainer = trainer
    hook.before_train()
    progress.writer.add_scalar("train/lr", 0.5, 1)
    hook.after_step()
    hook.after_train()  # an error before the first epoch ended
    client = MlflowClient(tracking_uri=hook.tracking_uri)
    assert client.get_run(hook.run_id).info.status == "FAILED"
    assert client.get_run(hook.run_id).info.run_name == "run"  # default: the run folder's name
    assert [m.value for m in client.get_metric_history(hook.run_id, "train/lr")] == [0.5]


# ---------------------------------------------------------------------------------------------- wandb
class FakeWandb:
    """Stands in for the wandb module: keeps what the hook asked."""

    def __init__(self):
        self.calls = []
        outer = self

        class Run:
            id = "abc"
            config = SimpleNamespace(update=lambda config, allow_val_change: outer.calls.append(("config", config)))

            def define_metric(self, name, step_metric=None):
                outer.calls.append(("define_metric", name, step_metric))

            def log(self, values):
                outer.calls.append(("log", values))

            def log_artifact(self, artifact, aliases):
                outer.calls.append(("artifact", artifact.name, artifact.files, aliases, artifact.metadata))

            def finish(self, exit_code=0):
                outer.calls.append(("finish", exit_code))

        class Artifact:
            def __init__(self, name, type, metadata):
                self.name, self.metadata, self.files = name, metadata, []

            def add_file(self, path, name):
                self.files.append((Path(path).read_bytes(), name))

        self.Artifact = Artifact
        self.run = Run()

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        return self.run


def test_wandb_logs_each_step_in_one_call_on_its_own_axis_and_the_checkpoints(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    trainer = fake_trainer(tmp_path, logger="wandb")
    progress = SimpleNamespace(writer=None, evaluation=SimpleNamespace(best_ap=0.125))
    options, _ = split_wandb_options(["wandb-project", "yolox", "wandb-name", "run1", "wandb-id", "abc",
                                      "wandb-log_checkpoints", "True", "wandb-num_eval_images", "10",
                                      "wandb-tags", "lt"])
    hook = WandbLoggerHook(progress, options)
    drive(hook, trainer, progress)
    init = next(c[1] for c in fake.calls if c[0] == "init")
    assert init == {"project": "yolox", "name": "run1", "id": "abc", "entity": None, "dir": trainer.file_name,
                    "resume": "allow", "allow_val_change": True, "tags": "lt"}
    config = next(c[1] for c in fake.calls if c[0] == "config")
    assert config["exp_name"] == "tiny" and config["input_size"] == "(96, 96)" and config["args/logger"] == "wandb"
    assert ("define_metric", "train/*", "train/step") in fake.calls
    assert ("define_metric", "val/*", "train/epoch") in fake.calls
    logs = [c[1] for c in fake.calls if c[0] == "log"]
    assert logs == [{**{t: v for t, v, _ in line}, "train/step": line[0][2]} for line in SCALARS] + [
        {**{t: v for t, v, _ in VAL}, "train/epoch": 1}]
    artifacts = [c[1:] for c in fake.calls if c[0] == "artifact"]
    assert artifacts == [("run_abc_model", [(b"latest", "model_ckpt.pth")], ["latest", "epoch-1", "best"],
                          {"epoch": 1, "best_ap": 0.125})]
    assert fake.calls[-1] == ("finish", 0)


def test_other_ranks_log_nothing(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    progress = SimpleNamespace(writer=None, evaluation=None)
    hook = WandbLoggerHook(progress, {}, rank=1)
    hook.trainer = fake_trainer(tmp_path, rank=1)
    hook.before_train()
    assert progress.writer is None
    hook.add_scalar("train/lr", 1.0, 1)
    hook.after_step()
    hook.after_epoch()
    hook.after_train()
    assert fake.calls == []


class KeepingEvaluator:
    """What the hook uses of an evaluator: its validation loader's dataset, and ``keep_image_ids``, whose
    detections every evaluator's ``evaluate()`` keeps in ``kept_detections`` on rank 0."""

    def __init__(self, dataset):
        self.dataloader = SimpleNamespace(dataset=dataset)
        self.keep_image_ids = ()
        self.kept_detections = None

    def score(self, merged):
        """What ``evaluate()`` does with the gathered ``{image id: [K, 6] detections}`` before scoring them."""
        self.kept_detections = kept_detections(merged, self.keep_image_ids)


def offline_wandb(monkeypatch, root):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(root / var.lower()))


def json_ground_truth(gt_json, img_id):
    """[(category_id, x1, y1, x2, y2)] of an image, from the annotation file."""
    boxes = [(a["category_id"], *a["bbox"]) for a in gt_json["annotations"] if a["image_id"] == img_id]
    return sorted((c, x, y, x + w, y + h) for c, x, y, w, h in boxes)


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    from yolox.exp import get_exp

    root = tmp_path_factory.mktemp("wandb_table")
    data = make_dataset(root / "data", "coco")
    exp = get_exp(write_exp(root / "exp.py", data, root / "out"))
    return exp.get_eval_dataset(), json.loads(Path(data["val_json"]).read_text())


def test_wandb_logs_the_evaluations_detections_of_the_first_images_with_their_ground_truth(tmp_path, monkeypatch,
                                                                                            tiny_val):
    import cv2
    import numpy as np

    offline_wandb(monkeypatch, tmp_path)
    dataset, gt_json = tiny_val
    evaluator = KeepingEvaluator(dataset)
    progress = SimpleNamespace(writer=None, evaluation=SimpleNamespace(best_ap=0.0, evaluator=evaluator))
    hook = WandbLoggerHook(progress, {"id": "t2", "num_eval_images": 3})
    hook.trainer = fake_trainer(tmp_path, logger="wandb")
    hook.before_train()
    hook.after_epoch()  # an epoch without evaluation: no table
    # the evaluation's detections of the 4 images, (category_id, x, y, w, h, score) in original pixels;
    # the second image has none
    cats = dataset.class_ids
    merged = {img_id: np.array([[cats[k % 4], 10.0 + k, 20.5, 30.0, 15.25, 0.875 - 0.125 * k] for k in range(i + 1)])
              for i, img_id in enumerate(dataset.ids)}
    merged[dataset.ids[1]] = np.zeros((0, 6))
    assert evaluator.keep_image_ids == tuple(dataset.ids[:3])
    evaluator.score(merged)
    hook.after_epoch()
    hook.after_train()
    assert evaluator.keep_image_ids == () and evaluator.kept_detections is None  # left as it was found

    (run_file,) = (tmp_path / "run" / "wandb").glob("offline-run-*-t2/run-t2.wandb")
    ((table, files),) = read_wandb_tables(run_file, "val_results/result_table")
    assert table["columns"] == ["id", "predicted", "num_predictions", "num_ground_truth"]
    rows = table_rows(table)
    assert [row["id"] for row in rows] == [image["id"] for image in gt_json["images"][:3]]
    for index, row in enumerate(rows):
        predicted = row["predicted"]
        got = box_list(predicted["boxes"]["predictions"])
        expected = [(int(c), x, y, x + w, y + h, score) for c, x, y, w, h, score in merged[row["id"]].tolist()]
        assert got == expected and row["num_predictions"] == len(expected)
        truth = json_ground_truth(gt_json, row["id"])
        assert sorted(b[:5] for b in box_list(predicted["boxes"]["ground_truth"])) == truth
        assert row["num_ground_truth"] == len(truth) >= 1
        image = cv2.imread(files[predicted["path"]])  # the PNG in the table: the image itself, RGB in wandb
        assert (predicted["width"], predicted["height"]) == (96, 96)
        np.testing.assert_array_equal(image, dataset.load_image(index))
    assert [len(row["predicted"]["boxes"]["predictions"]) for row in rows] == [1, 0, 3]
    classes = json.loads(Path(files[rows[0]["predicted"]["classes"]["path"]]).read_text())["class_set"]
    assert {c["id"]: c["name"] for c in classes} == {c["id"]: c["name"] for c in gt_json["categories"]}
    (logged,) = [row for row in read_wandb_history(run_file) if "val_results/result_table/_type" in row]
    assert logged["train/epoch"] == 1 and logged["val_results/result_table/nrows"] == 3


def test_wandb_num_eval_images_counts(tiny_val):
    dataset, _ = tiny_val
    progress = SimpleNamespace(writer=None, evaluation=None)
    hook = WandbLoggerHook(progress, {"num_eval_images": -1}, rank=1)  # -1: the whole validation set
    hook._keep_detections(KeepingEvaluator(dataset))
    assert list(hook.eval_images) == list(dataset.ids) and len(dataset.ids) == 4
    assert WandbLoggerHook(progress, {}, rank=1).num_eval_images == 100  # upstream's default
    with pytest.raises(YOLOXError, match="wandb-num_eval_images must be an integer"):
        WandbLoggerHook(progress, {"num_eval_images": "all"}, rank=1)


# ---------------------------------------------------------------------------------------------- real runs
def read_wandb_records(run_file):
    """The protobuf Records of an offline run's .wandb file (a LevelDB-style log)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(run_file).read_bytes()
    assert data[:4] == b":W&B"
    block, pos, chunks, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the block's tail is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            chunks.append(pending + chunk)
    records = []
    for chunk in chunks:
        record = pb.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


def read_wandb_history(run_file):
    """The history rows of an offline run's .wandb file."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for record in read_wandb_records(run_file) if record.WhichOneof("record_type") == "history"]


def read_wandb_tables(run_file, key):
    """Every table logged offline under ``key``, in logging order: (its json, {file in its artifact: the staged
    file}). wandb keeps a table's images and boxes in a ``run_table`` artifact, staged until ``wandb sync``."""
    tables = []
    for record in read_wandb_records(run_file):
        if record.WhichOneof("record_type") != "artifact" or record.artifact.type != "run_table":
            continue
        files = {entry.path: entry.local_path for entry in record.artifact.manifest.contents}
        if f"{key}.table.json" in files:
            tables.append((json.loads(Path(files[f"{key}.table.json"]).read_text()), files))
    return tables


def table_rows(table):
    """Rows of a table json as dicts by column name."""
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def box_list(boxes):
    """wandb box_data -> [(class_id, minX, minY, maxX, maxY, score or None)]."""
    return [(b["class_id"], b["position"]["minX"], b["position"]["minY"], b["position"]["maxX"],
             b["position"]["maxY"], b.get("scores", {}).get("score")) for b in boxes]


def tensorboard_scalars(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """The same one-epoch LVIS training through tools/train.py with -l tensorboard, mlflow and wandb (offline)."""
    root = tmp_path_factory.mktemp("logger_runs")
    data = make_dataset(root / "data", "lvis")
    exp_file = write_exp(root / "exp.py", data, root / "out", fmt="lvis")
    # test_conf 0: the wandb run's prediction table gets detections from a model trained for 4 iterations
    common = ["tools/train.py", "-f", exp_file, "-d", "1", "-b", "2", "--device", "cpu", "max_epoch", "1",
              "no_aug_epochs", "0", "print_interval", "2", "seed", "0", "data_num_workers", "0", "test_conf", "0"]
    # the three runs must train the same model: seeded, loading in the training process
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.setenv("WANDB_MODE", "offline")
        for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(root / var.lower()))
        mp.setenv("YOLOX_MLFLOW_RUN_NAME", "ml-run")
        for name in ("tensorboard", "mlflow", "wandb"):
            extra = ["wandb-project", "yolox", "wandb-id", "lt1", "wandb-log_checkpoints", "True",
                     "wandb-num_eval_images", "3"]
            extra = extra if name == "wandb" else []
            run_tool(*common[:1], "-l", name, "-expn", name, *common[1:], *extra).stdout
    return root / "out"


def test_mlflow_and_wandb_hold_what_tensorboard_got_at_the_same_steps(three_runs):
    from mlflow.tracking import MlflowClient

    out = three_runs
    expected = tensorboard_scalars(out / "tensorboard" / "tensorboard")
    tags = {tag for tag, _ in expected}
    assert {"train/total_loss", "train/lr", "val/AP50_95", "val/AP50"} <= tags
    assert {"val/APr", "val/APc", "val/APf"} & tags
    assert {step for tag, step in expected if tag.startswith("val/")} == {1}
    assert {step for tag, step in expected if tag.startswith("train/")} == {2, 4}
    assert not (out / "mlflow" / "tensorboard").exists() and not (out / "wandb" / "tensorboard").exists()

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # recent MLflow reads a file store only with it
    client = MlflowClient(tracking_uri=(out / "mlflow" / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "mlflow"]  # exp_name, i.e. -expn
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "ml-run" and run.info.status == "FINISHED"
    got = {(tag, m.step): m.value for tag in tags for m in client.get_metric_history(run.info.run_id, tag)}
    assert set(got) == set(expected) and set(run.data.metrics) == tags
    differing = {k: (got[k], expected[k]) for k in expected if got[k] != pytest.approx(expected[k], rel=1e-5, abs=1e-8)}
    assert not differing, differing
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best_ckpt.pth"]

    (run_file,) = (out / "wandb" / "wandb").glob("offline-run-*-lt1/run-lt1.wandb")
    got = {}
    for row in read_wandb_history(run_file):
        step = row["train/epoch"] if "train/epoch" in row else row["train/step"]
        got.update({(tag, step): value for tag, value in row.items() if tag in tags})
    assert set(got) == set(expected)
    assert all(got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-8) for key in expected)


def test_wandb_table_holds_the_detections_of_the_runs_evaluation(three_runs):
    """The one evaluation of the wandb run: its table has the first 3 validation images with the detections of
    the evaluated model (``last_epoch_ckpt.pth``'s weights, run again here) and their annotations."""
    import numpy as np
    import torch

    from yolox.exp import get_exp

    out = three_runs
    (run_file,) = (out / "wandb" / "wandb").glob("offline-run-*-lt1/run-lt1.wandb")
    ((table, _),) = read_wandb_tables(run_file, "val_results/result_table")
    rows = table_rows(table)
    exp = get_exp(str(out.parent / "exp.py"))
    exp.test_conf = 0.0  # as the runs
    gt_json = json.loads((Path(exp.data_dir) / "annotations" / exp.val_ann).read_text())
    assert [row["id"] for row in rows] == [image["id"] for image in gt_json["images"][:3]]

    model = exp.get_model()
    model.load_state_dict(torch.load(out / "wandb" / "last_epoch_ckpt.pth", map_location="cpu",
                                     weights_only=False)["model"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the training process (OMP_NUM_THREADS=1): the same arithmetic
    try:
        merged, _ = exp.get_evaluator(batch_size=2, is_distributed=False)._detections(model.eval(), False, False)
    finally:
        torch.set_num_threads(threads)
    assert sum(row["num_predictions"] for row in rows) > 0
    for row in rows:
        boxes = row["predicted"]["boxes"]
        got = np.array(box_list(boxes["predictions"]), dtype=float).reshape(-1, 6)
        expected = np.array([(c, x, y, x + w, y + h, score) for c, x, y, w, h, score in merged[row["id"]].tolist()])
        assert row["num_predictions"] == len(got) == len(expected)
        np.testing.assert_allclose(got, expected.reshape(-1, 6), rtol=1e-5, atol=1e-4)
        assert sorted(b[:5] for b in box_list(boxes["ground_truth"])) == json_ground_truth(gt_json, row["id"])
