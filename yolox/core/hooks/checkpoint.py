"""Checkpoints: writing them (atomically, with every rank's random-number states) and resuming from them.

Files in the run's directory: ``latest_ckpt.pth`` (every epoch end, and every ``ckpt_interval_iters``
iterations when set), ``last_mosaic_epoch_ckpt.pth`` (at the final phase's switch), ``last_epoch_ckpt.pth`` /
``best_ckpt.pth`` / ``epoch_<n>_ckpt.pth`` (after evaluations, written through :meth:`CheckpointHook.save`).
Entries: ``start_epoch`` and ``start_iter`` (where a resumed run starts), ``model`` (the weights evaluation
uses: the EMA's, as in the published checkpoints), ``train_model``, ``optimizer``, ``curr_ap``,
``input_size``, ``rng`` and ``rng_per_rank``, and those of the parts with state (the step guard's
``scaler``, the evaluation's ``best_ap``, the EMA's ``ema`` and ``ema_updates``).
"""
import os

from loguru import logger

from yolox.utils import CheckpointError, load_checkpoint_file, load_ckpt, save_checkpoint, seed_everything, unwrap_model

from .base import HookBase
from .rng import gather_rng_states, set_rng_state

__all__ = ["CheckpointHook"]


class CheckpointHook(HookBase):
    """Writes ``latest`` at every epoch end (and every ``interval_iters`` iterations, 0: never mid-epoch);
    :meth:`resume` loads ``--resume`` / ``-c``. ``save_dir`` is the run's output directory."""

    def __init__(self, save_dir, interval_iters=0):
        self.save_dir = save_dir
        self.interval_iters = interval_iters

    def after_step(self):
        trainer = self.trainer
        done_in_epoch = trainer.iter + 1
        if self.interval_iters and done_in_epoch % self.interval_iters == 0 and done_in_epoch < trainer.max_iter:
            self.save("latest", next_position=(trainer.epoch, done_in_epoch))
            # a resume point: a resumed run restarts its stream here, so this run does too
            trainer.restart_data_stream(trainer.progress_in_iter + 1)

    def after_epoch(self):
        self.save("latest")

    def save(self, name, update_best=False, ap=None, next_position=None):
        """Write ``<name>_ckpt.pth`` (rank 0; every rank must call it, for the random states), and copy it to
        ``best_ckpt.pth`` when ``update_best``.

        ``next_position`` = (epoch, iteration in epoch) a resumed run starts at; default: the next epoch.
        """
        trainer = self.trainer
        rng_states = gather_rng_states(trainer.world_size)
        if trainer.rank != 0:
            return
        next_epoch, next_iter = next_position if next_position is not None else (trainer.epoch + 1, 0)
        state = {
            "start_epoch": next_epoch,
            "start_iter": next_iter,
            "model": trainer.evaluation_model().state_dict(),
            "train_model": unwrap_model(trainer.model).state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
        }
        for part in (trainer.guard, *trainer.hooks):
            state.update(part.state_dict())
        state.update({"curr_ap": ap, "input_size": list(trainer.input_size), "rng": rng_states[0],
                      "rng_per_rank": rng_states})
        logger.info(f"Save weights to {self.save_dir} ({name})")
        save_checkpoint(state, update_best, self.save_dir, name)

    # ------------------------------------------------------------------ resuming
    def remove_interrupted_writes(self):
        """Delete temporary files of checkpoint writes that a killed run left behind (never a checkpoint)."""
        for name in os.listdir(self.save_dir):
            if name.startswith(".tmp_") and name.endswith(".pth"):
                logger.info(f"removing {name}, an unfinished checkpoint write of an interrupted run")
                os.remove(os.path.join(self.save_dir, name))

    def resume(self, model):
        """Load ``--resume`` (continue a run: ``model``'s and the trainer's optimizer's state, the start
        position and input size set on the trainer) or ``-c`` (initial weights only).

        Returns the checkpoint dict of a resumed run (for the other parts' states and :meth:`restore_rng`),
        else None.
        """
        trainer, args = self.trainer, self.trainer.args
        if args.resume:
            ckpt_file = args.ckpt or os.path.join(self.save_dir, "latest_ckpt.pth")
            logger.info(f"resume training from {ckpt_file}")
            ckpt = load_checkpoint_file(ckpt_file, map_location=trainer.device)
            if not isinstance(ckpt, dict) or "model" not in ckpt:
                raise CheckpointError(f"cannot resume from {ckpt_file}: it holds no 'model' weights")
            weights = ckpt.get("train_model", ckpt["model"])
            try:
                model.load_state_dict(weights)
            except RuntimeError:
                raise CheckpointError(
                    f"cannot resume from {ckpt_file}: it was saved for another architecture or class count; "
                    f"{_describe_mismatch(model.state_dict(), weights)}. Use -c (without --resume) to start from "
                    "its matching weights"
                ) from None
            if "optimizer" in ckpt:
                try:
                    trainer.optimizer.load_state_dict(ckpt["optimizer"])
                except (ValueError, KeyError, RuntimeError) as e:
                    raise CheckpointError(f"cannot resume the optimizer state of {ckpt_file}: {e}") from None
            else:
                logger.warning(f"{ckpt_file} has no optimizer state: the optimizer starts afresh")
            if args.start_epoch is not None:
                trainer.start_epoch, trainer.start_iter_in_epoch = args.start_epoch - 1, 0
            else:
                trainer.start_epoch = int(ckpt.get("start_epoch", 0))
                trainer.start_iter_in_epoch = int(ckpt.get("start_iter", 0))
            if "input_size" in ckpt:
                trainer.input_size = tuple(int(v) for v in ckpt["input_size"])
            logger.info(f"loaded checkpoint '{ckpt_file}' (epoch {trainer.start_epoch}, iteration "
                        f"{trainer.start_iter_in_epoch} of the epoch)")
            return ckpt
        if args.ckpt is not None:
            logger.info(f"loading initial weights from {args.ckpt}")
            ckpt = load_checkpoint_file(args.ckpt, map_location=trainer.device)
            load_ckpt(model, ckpt["model"] if "model" in ckpt else ckpt)
        trainer.start_epoch = 0
        return None

    def restore_rng(self, ckpt):
        """This rank's random-number states of ``ckpt``; with another number of processes, a fresh seed per
        rank and position instead."""
        trainer = self.trainer
        states = ckpt.get("rng_per_rank")
        if states is not None and len(states) == trainer.world_size:
            set_rng_state(states[trainer.rank])
        elif trainer.world_size == 1 and ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        else:
            # another number of processes: exact continuation is impossible, keep ranks decorrelated
            position = trainer.start_epoch * trainer.max_iter + trainer.start_iter_in_epoch
            seed_everything((trainer.exp.seed or 0) + trainer.rank + 1_000_003 * position)
            logger.warning("the checkpoint's random states do not match this number of processes: reseeded "
                           "(the run continues, but not bit for bit as it would have)")


def _describe_mismatch(model_sd, ckpt_sd, limit=12):
    """One line listing the keys/shapes that differ between a model's and a checkpoint's state dicts."""
    problems = [f"{k} (not in model)" for k in ckpt_sd if k not in model_sd]
    problems += [f"{k} (not in checkpoint)" for k in model_sd if k not in ckpt_sd]
    problems += [
        f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)})"
        for k, v in ckpt_sd.items() if k in model_sd and hasattr(v, "shape") and tuple(v.shape) != tuple(model_sd[k].shape)
    ]
    more = f", ... ({len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{len(problems)} mismatched tensors: " + ", ".join(problems[:limit]) + more
