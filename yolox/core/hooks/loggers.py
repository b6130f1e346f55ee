"""Experiment trackers besides TensorBoard: Weights & Biases (``-l wandb``) and MLflow (``-l mlflow``).

Both log what TensorBoard gets, at the same steps: ``train/<loss term>``, ``train/lr`` and ``efl/gamma_<group>``
at the global iteration of every progress line, the evaluation's ``val/...`` (``val/AP50_95``, ``val/AP50``,
LVIS's ``val/APr``, ``val/APc``, ``val/APf`` ...) at the epoch. The hook takes the place of the
:class:`~yolox.core.hooks.ProgressHook`'s SummaryWriter on rank 0 (the other ranks log nothing), so that the
values and steps are those TensorBoard would get; it sends each step's values in one call.

Weights & Biases (``pip install wandb``), options as upstream YOLOX's: trailing ``wandb-<key> <value>`` pairs
after the flags, e.g. ``-l wandb wandb-project yolox wandb-entity me wandb-name run1 wandb-id abc
wandb-save_dir ./wandb wandb-log_checkpoints True``; other ``wandb-<key>`` pairs go to ``wandb.init``.
``save_dir`` defaults to the run's output folder. Training scalars use the step metric ``train/step``,
validation ones ``train/epoch`` (wandb's own step must increase, the two axes do not share one).
``log_checkpoints True``: after every epoch ``latest_ckpt.pth`` as a ``model`` artifact
``run_<id>_model`` with the aliases ``latest``, ``epoch-<n>`` and, when the epoch wrote a new
``best_ckpt.pth``, ``best``. ``num_eval_images N`` (default 100 as upstream's; -1: the whole validation set;
0: none): after each evaluation, the table ``val_results/result_table`` (at ``train/epoch``) of the first N
validation images, one row each: ``id`` (image id), ``predicted`` (the image with two box layers,
``predictions``, the evaluation's detections with their scores, and ``ground_truth``), ``num_predictions``,
``num_ground_truth``. The detections are those the evaluation scored (original-image pixels), not a second
inference. ``WANDB_MODE=offline`` writes the run under ``<save_dir>/wandb`` only (a table's images and boxes
are in its ``run_table`` artifact, staged under ``WANDB_DATA_DIR`` until ``wandb sync``).

MLflow (``pip install mlflow``; ``mlflow-skinny`` is enough), configured as upstream YOLOX's by environment
variables: ``MLFLOW_TRACKING_URI`` (default: a file store ``<output_dir>/<experiment>/mlruns``),
``MLFLOW_EXPERIMENT_NAME`` (default: the experiment's ``exp_name``), ``YOLOX_MLFLOW_RUN_NAME`` (default: the
run folder's name, ``-expn``), ``MLFLOW_RUN_ID`` (continue that run), ``MLFLOW_TAGS`` (a JSON object of run
tags), ``YOLOX_MLFLOW_LOG_MODEL_ARTIFACTS`` (default true: ``best_ckpt.pth`` as an artifact under
``checkpoints/`` at the end). Parameters: the experiment's attributes and the arguments (``args/<name>``), as
strings. The run ends FINISHED after the last epoch, FAILED when training stopped before it.
"""
import importlib
import json
import os
import time
from pathlib import Path

import numpy as np
from loguru import logger

from yolox.utils.errors import YOLOXError

from .base import HookBase
from .rng import preserved_rng_state

__all__ = [
    "LOGGERS", "WANDB_PREFIX", "LoggerHook", "WandbLoggerHook", "MlflowLoggerHook", "build_logger_hook",
    "check_logger", "exp_params", "split_wandb_options",
]

LOGGERS = ("tensorboard", "wandb", "mlflow", "none")  # tools/train.py's -l/--logger choices
WANDB_PREFIX = "wandb-"
_PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}  # -l value -> module
_TRUE = ("1", "true", "yes", "on")


def _require(name):
    """The tracker's module, or a one-line YOLOXError naming the extra that installs it."""
    try:
        return importlib.import_module(_PACKAGES[name])
    except ImportError:
        raise YOLOXError(f"-l {name} needs the {_PACKAGES[name]} package: pip install '.[loggers]' "
                         f"(or pip install -r requirements-optional.txt)") from None


def check_logger(name):
    """Fail early (before any process starts) when ``-l name`` needs a package that is not installed."""
    if name in _PACKAGES:
        _require(name)


def _parse_option(raw):
    if not isinstance(raw, str):
        return raw
    try:
        return int(raw)
    except ValueError:
        pass
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def split_wandb_options(opts):
    """Upstream YOLOX's wandb options out of the trailing ``key value`` overrides: returns
    ({key without ``wandb-``: value}, the other overrides in order). Values that read as int or bool are."""
    opts = list(opts or [])
    options, rest = {}, []
    i = 0
    while i < len(opts):
        key = opts[i]
        if isinstance(key, str) and key.startswith(WANDB_PREFIX) and i + 1 < len(opts):
            options[key[len(WANDB_PREFIX):]] = _parse_option(opts[i + 1])
            i += 2
        else:
            rest.extend(opts[i:i + 2])
            i += 2
    return options, rest


def exp_params(exp):
    """The experiment's public attributes: {name: value}, values that are not str/int/float/bool as str."""
    out = {}
    for key, value in sorted(vars(exp).items()):
        if key.startswith("_") or callable(value):
            continue
        out[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return out


def _args_params(args):
    items = vars(args).items() if hasattr(args, "__dict__") else ()
    return {f"args/{k}": v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in sorted(items)}


class LoggerHook(HookBase):
    """Becomes ``progress``'s scalar writer on rank 0 (SummaryWriter's ``add_scalar`` / ``close``) and sends
    the scalars of a step together after that step or epoch. Register it after ``progress``.

    Subclasses: :meth:`start`, :meth:`log` ({tag: value}, step, ``epoch_axis``: the step is an epoch),
    :meth:`epoch_end`, :meth:`finish` (``completed``: the last epoch ended).

    Each of those runs with the process's random-number states preserved: a tracker's client may draw from
    Python's global ``random`` (MLflow 3's start-up does, now and then), and the training's augmentation draws
    from the same stream, so without this a seeded run would train on other samples under ``-l mlflow`` than
    under ``-l tensorboard``."""

    def __init__(self, progress):
        self.progress = progress
        self.active = False  # True on rank 0 between before_train and after_train
        self.completed = False
        self.pending = {}  # (epoch_axis, step) -> {tag: value}, in arrival order

    # ---------------------------------------------------------------- SummaryWriter's interface
    def add_scalar(self, tag, value, step):
        self.pending.setdefault((tag.startswith("val/"), int(step)), {})[tag] = float(value)

    def close(self):
        self.flush()

    def flush(self):
        pending, self.pending = self.pending, {}
        if self.active and pending:
            with preserved_rng_state():
                for (epoch_axis, step), values in pending.items():
                    self.log(values, step, epoch_axis)

    # ---------------------------------------------------------------- moments
    def before_train(self):
        trainer = self.trainer
        if getattr(trainer, "rank", 0) != 0:
            return
        with preserved_rng_state():
            self.start()
        self.active = True
        self.progress.writer = self

    def after_step(self):
        self.flush()

    def after_epoch(self):
        self.flush()
        if not self.active:
            return
        trainer = self.trainer
        if trainer.epoch + 1 >= trainer.max_epoch:
            self.completed = True
        with preserved_rng_state():
            self.epoch_end()

    def after_train(self):
        self.flush()
        if self.active:
            self.active = False
            if self.progress.writer is self:
                self.progress.writer = None
            with preserved_rng_state():
                self.finish(self.completed)

    # ---------------------------------------------------------------- the tracker
    def start(self):
        raise NotImplementedError

    def log(self, values, step, epoch_axis):
        raise NotImplementedError

    def epoch_end(self):
        pass

    def finish(self, completed):
        pass

    def _best_ckpt(self):
        return os.path.join(self.trainer.file_name, "best_ckpt.pth")

    def _best_stamp(self):
        try:
            stat = os.stat(self._best_ckpt())
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino


class WandbLoggerHook(LoggerHook):
    """``-l wandb``: see the module docstring. ``options``: :func:`split_wandb_options`'s dict."""

    def __init__(self, progress, options=None, rank=0):
        super().__init__(progress)
        options = dict(options or {})
        self.project = options.pop("project", None)
        self.name = options.pop("name", None)
        self.id = options.pop("id", None)
        self.entity = options.pop("entity", None)
        self.save_dir = options.pop("save_dir", None)
        self.log_checkpoints = str(options.pop("log_checkpoints", False)).lower() in _TRUE
        self.num_eval_images = options.pop("num_eval_images", 100)
        if not isinstance(self.num_eval_images, int) or isinstance(self.num_eval_images, bool):
            raise YOLOXError(f"wandb-num_eval_images must be an integer (-1: the whole validation set, 0: none), "
                             f"got {self.num_eval_images!r}")
        options.pop("config", None)  # the run's config is the experiment's
        self.init_kwargs = options
        self.wandb = _require("wandb") if rank == 0 else None
        self.run = None
        self.best_stamp = None
        self.evaluator = None  # the evaluator whose detections are kept (rank 0, num_eval_images != 0)
        self.eval_images = {}  # image id -> index in the validation dataset, of the images of the table

    def start(self):
        trainer = self.trainer
        save_dir = self.save_dir or trainer.file_name
        os.makedirs(save_dir, exist_ok=True)
        self.run = self.wandb.init(project=self.project, name=self.name, id=self.id, entity=self.entity,
                                   dir=save_dir, resume="allow", allow_val_change=True, **self.init_kwargs)
        config = exp_params(trainer.exp)
        config.update(_args_params(getattr(trainer, "args", None)))
        self.run.config.update(config, allow_val_change=True)
        self.run.define_metric("train/step")
        self.run.define_metric("train/*", step_metric="train/step")
        self.run.define_metric("efl/*", step_metric="train/step")
        self.run.define_metric("train/epoch")
        self.run.define_metric("val/*", step_metric="train/epoch")
        self.run.define_metric("val_results/*", step_metric="train/epoch")
        if self.num_eval_images:
            self._keep_detections(getattr(getattr(self.progress, "evaluation", None), "evaluator", None))
        self.best_stamp = self._best_stamp()
        logger.info(f"wandb: run {self.run.id} in {save_dir}")

    def log(self, values, step, epoch_axis):
        self.run.log({**values, ("train/epoch" if epoch_axis else "train/step"): step})

    # ---------------------------------------------------------------- prediction table
    def _keep_detections(self, evaluator):
        """Have ``evaluator`` keep the detections of the table's images when it scores an evaluation: the first
        ``num_eval_images`` images' only (LVIS val's whole set would be hundreds of MB)."""
        dataset = getattr(getattr(evaluator, "dataloader", None), "dataset", None)
        needed = ("ids", "load_image", "load_anno", "class_ids", "class_names")
        if not hasattr(evaluator, "keep_image_ids") or not all(hasattr(dataset, name) for name in needed):
            logger.warning("wandb-num_eval_images: the run's evaluator has no COCO/LVIS/VOC validation dataset; "
                           "no prediction table is logged")
            return
        count = len(dataset) if self.num_eval_images < 0 else min(self.num_eval_images, len(dataset))
        self.eval_images = {int(dataset.ids[i]): i for i in range(count)}
        evaluator.keep_image_ids = tuple(self.eval_images)
        self.evaluator = evaluator

    def _release_evaluator(self):
        if self.evaluator is not None:
            self.evaluator.keep_image_ids = ()
            self.evaluator.kept_detections = None
            self.evaluator = None

    def prediction_table(self):
        """The ``val_results/result_table`` of the last evaluation's kept detections (see the module docstring)."""
        dataset = self.evaluator.dataloader.dataset
        class_labels = {int(c): str(name) for c, name in zip(dataset.class_ids, dataset.class_names)}
        table = self.wandb.Table(columns=["id", "predicted", "num_predictions", "num_ground_truth"])
        for img_id, index in self.eval_images.items():
            detections = self.evaluator.kept_detections[img_id]  # [K, 6]: category_id, x, y, w, h, score
            predictions = [
                {"position": {"minX": x, "minY": y, "maxX": x + w, "maxY": y + h}, "domain": "pixel",
                 "class_id": int(cat), "scores": {"score": score},
                 "box_caption": f"{class_labels.get(int(cat), int(cat))} {score:.2f}"}
                for cat, x, y, w, h, score in detections.tolist()
            ]
            annotations = dataset.load_anno(index)  # [G, 5]: x1, y1, x2, y2, class index
            ground_truth = []
            for x1, y1, x2, y2, cls in annotations.tolist():
                cat = int(dataset.class_ids[int(cls)])
                ground_truth.append({"position": {"minX": x1, "minY": y1, "maxX": x2, "maxY": y2}, "domain": "pixel",
                                     "class_id": cat, "box_caption": class_labels[cat]})
            image = np.ascontiguousarray(dataset.load_image(index)[:, :, ::-1])  # BGR -> RGB
            boxes = {"predictions": {"box_data": predictions, "class_labels": class_labels},
                     "ground_truth": {"box_data": ground_truth, "class_labels": class_labels}}
            table.add_data(img_id, self.wandb.Image(image, boxes=boxes), len(predictions), len(ground_truth))
        return table

    def epoch_end(self):
        if self.evaluator is not None and self.evaluator.kept_detections is not None:  # this epoch was evaluated
            try:
                table = self.prediction_table()
                self.run.log({"val_results/result_table": table, "train/epoch": self.trainer.epoch + 1})
            except Exception as e:  # noqa: BLE001 - a picture must not stop the training (e.g. an unreadable image)
                logger.warning(f"wandb: prediction table not logged: {type(e).__name__}: {e}")
            self.evaluator.kept_detections = None
        if not self.log_checkpoints:
            return
        trainer = self.trainer
        path = os.path.join(trainer.file_name, "latest_ckpt.pth")
        if not os.path.isfile(path):
            return
        stamp = self._best_stamp()
        is_best = stamp is not None and stamp != self.best_stamp
        self.best_stamp = stamp
        epoch = trainer.epoch + 1
        aliases = ["latest", f"epoch-{epoch}"] + (["best"] if is_best else [])
        evaluation = getattr(self.progress, "evaluation", None)
        metadata = {"epoch": epoch, "best_ap": float(getattr(evaluation, "best_ap", 0.0) or 0.0)}
        artifact = self.wandb.Artifact(name=f"run_{self.run.id}_model", type="model", metadata=metadata)
        artifact.add_file(path, name="model_ckpt.pth")
        self.run.log_artifact(artifact, aliases=aliases)

    def finish(self, completed):
        self._release_evaluator()
        self.run.finish(exit_code=0 if completed else 1)
        self.run = None


class MlflowLoggerHook(LoggerHook):
    """``-l mlflow``: see the module docstring."""

    def __init__(self, progress, rank=0):
        super().__init__(progress)
        self.mlflow = _require("mlflow") if rank == 0 else None
        self.client, self.run_id, self.tracking_uri = None, None, None

    def start(self):
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        trainer = self.trainer
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (Path(trainer.file_name) / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in
        self.tracking_uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        run_id = os.environ.get("MLFLOW_RUN_ID")
        if run_id:
            self.run_id = self.client.get_run(run_id).info.run_id
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or getattr(trainer.exp, "exp_name", None) or "yolox"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            tags = json.loads(os.environ.get("MLFLOW_TAGS") or "{}")
            run_name = os.environ.get("YOLOX_MLFLOW_RUN_NAME") or getattr(trainer.args, "experiment_name", None)
            self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                                 tags={str(k): str(v) for k, v in tags.items()}).info.run_id
        params = {**exp_params(trainer.exp), **_args_params(getattr(trainer, "args", None))}
        params = [Param(k, str(v)[:500]) for k, v in params.items()]
        try:
            for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
        except MlflowException as e:  # e.g. a continued run (MLFLOW_RUN_ID) with other values
            logger.warning(f"mlflow: parameters not logged: {str(e).splitlines()[0]}")
        logger.info(f"mlflow: run {self.run_id} at {uri}")

    def log(self, values, step, epoch_axis):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self, completed):
        log_model = os.environ.get("YOLOX_MLFLOW_LOG_MODEL_ARTIFACTS", "true").lower() in _TRUE
        if log_model and os.path.isfile(self._best_ckpt()):
            try:
                self.client.log_artifact(self.run_id, self._best_ckpt(), artifact_path="checkpoints")
            except Exception as e:  # noqa: BLE001 - the training's result is on disk either way
                logger.warning(f"mlflow: best_ckpt.pth not logged: {e}")
        self.client.set_terminated(self.run_id, "FINISHED" if completed else "FAILED")


def build_logger_hook(name, progress, args=None, rank=0):
    """The hook of ``-l name`` (None for tensorboard and none: the progress hook writes TensorBoard itself)."""
    if name == "wandb":
        return WandbLoggerHook(progress, split_wandb_options(getattr(args, "opts", None))[0], rank=rank)
    if name == "mlflow":
        return MlflowLoggerHook(progress, rank=rank)
    return None
