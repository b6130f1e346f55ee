"""Saving and loading checkpoints: atomic writes, safe loads; complete loads for inference, partial loads for
fine-tuning."""
import os
import shutil
import tempfile

import torch
from loguru import logger

from .errors import YOLOXError

__all__ = ["CheckpointError", "save_checkpoint", "atomic_torch_save", "load_checkpoint_file", "checkpoint_weights",
           "load_ckpt", "load_model_weights"]


class CheckpointError(YOLOXError, RuntimeError):
    """A checkpoint file that is missing, unreadable, unsafe or of the wrong layout."""


def atomic_torch_save(obj, path):
    """``torch.save`` to a temporary file in the same folder, fsync, then rename into place, so ``path``
    is always either the previous complete file or the new complete one, never half written."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(state, is_best, save_dir, model_name=""):
    """Write ``<model_name>_ckpt.pth`` (atomically) and copy it to ``best_ckpt.pth`` when ``is_best``."""
    filename = os.path.join(save_dir, model_name + "_ckpt.pth")
    atomic_torch_save(state, filename)
    if is_best:
        best = os.path.join(save_dir, "best_ckpt.pth")
        tmp = os.path.join(save_dir, ".tmp_best_ckpt.pth")
        shutil.copyfile(filename, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, best)


def load_checkpoint_file(path, map_location="cpu"):
    """Load a ``.pth`` with ``weights_only=True``: tensors and plain containers only, so a malicious
    pickle cannot run code. Raises :class:`CheckpointError` with a one-line reason."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - turned into one clear message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "unpickl" in str(e).lower():
            raise CheckpointError(
                f"refusing to load {path}: it is not a plain weights file (it contains pickled objects "
                f"that could run code): {first}"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    # Every checkpoint is a dict: a training checkpoint ({"model": ..., ...}) or a bare state dict.
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a checkpoint: it holds a {type(ckpt).__name__}, not a dict of weights "
                              f"(a state dict, or a training checkpoint with a 'model' entry)")
    return ckpt


def _check_state_dict(weights, path):
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{path} holds no model weights (expected a dict of tensors, or one under 'model')")
    not_tensors = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path} holds no model weights: {len(not_tensors)} of its {len(weights)} entries are "
                              f"not tensors (e.g. {not_tensors[0]!r})")
    return weights


def checkpoint_weights(ckpt, path="the checkpoint"):
    """The model weights of a loaded checkpoint: its ``"model"`` entry, or the checkpoint itself when it is a
    bare state dict. Raises :class:`CheckpointError` when they are not a dict of tensors."""
    return _check_state_dict(ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt, path)


def _mismatches(model_sd, ckpt_sd):
    """'<key> (<why>)' for every tensor that does not load: not in the model, not in the checkpoint, other shape."""
    problems = []
    for key, value in ckpt_sd.items():
        if key not in model_sd:
            problems.append(f"{key} (not in model)")
        elif tuple(value.shape) != tuple(model_sd[key].shape):
            problems.append(f"{key} (checkpoint {tuple(value.shape)} vs model {tuple(model_sd[key].shape)})")
    problems += [f"{k} (not in checkpoint)" for k in model_sd if k not in ckpt_sd]
    return problems


def load_ckpt(model, ckpt_state_dict):
    """Load every tensor of ``ckpt_state_dict`` whose name and shape match ``model``; log one line naming
    the skipped ones (e.g. the class predictions when fine-tuning COCO weights on another dataset).

    Returns the list of skipped keys (missing in the model, missing in the checkpoint, or shape mismatch).
    """
    _check_state_dict(ckpt_state_dict, "the checkpoint")
    model_sd = model.state_dict()
    skipped = _mismatches(model_sd, ckpt_state_dict)
    load_sd = {k: v for k, v in ckpt_state_dict.items() if k in model_sd and tuple(v.shape) == tuple(model_sd[k].shape)}
    model.load_state_dict(load_sd, strict=False)
    if skipped:
        logger.warning(f"loaded {len(load_sd)}/{len(model_sd)} tensors; skipped {len(skipped)}: " + ", ".join(skipped))
    return skipped


def load_model_weights(model, path, map_location="cpu", allow_partial=False):
    """Load the checkpoint file ``path`` into ``model`` for inference (evaluation, demo, export).

    Every tensor of the model must come from the checkpoint with its shape, and the checkpoint must hold no
    other tensors: weights of another experiment would otherwise give wrong results without an error.
    ``allow_partial`` (the tools' ``--allow-partial-ckpt``) loads only the matching tensors instead, with
    one warning naming the others. Raises :class:`CheckpointError` with a one-line reason.
    """
    weights = checkpoint_weights(load_checkpoint_file(path, map_location=map_location), path)
    if allow_partial:
        return load_ckpt(model, weights)
    problems = _mismatches(model.state_dict(), weights)
    if problems:
        more = f", ... ({len(problems) - 8} more)" if len(problems) > 8 else ""
        raise CheckpointError(
            f"checkpoint {path} does not fit the model ({len(problems)} of its tensors do not load: "
            f"{', '.join(problems[:8])}{more}); give the experiment it was trained with (-f / -n, num_classes, "
            f"depth, width, anchor_scales), or --allow-partial-ckpt to load only the matching tensors")
    model.load_state_dict(weights, strict=True)
    return []
