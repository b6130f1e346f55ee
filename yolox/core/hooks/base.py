"""The interface of the trainer's hooks (detectron2's ``HookBase``, with epochs added)."""

__all__ = ["HookBase"]


class HookBase:
    """A piece of the training run that acts at fixed moments of :class:`yolox.core.Trainer`'s loop.

    The moments, in order: ``before_train``; per epoch ``before_epoch``; per iteration ``before_step``,
    ``after_backward`` (the step's gradients exist, summed over its micro-batches when it accumulates several,
    and the step guard has read them: ``trainer.step_check``), ``after_step`` (the optimizer step is done or
    skipped, the learning rate of the next iteration set); ``after_epoch``; ``after_train`` (also when training
    stops with an error). Every hook sees the moment before the next hook does, in the order the trainer
    registered them.

    ``self.trainer`` is set by ``Trainer.register_hooks``. A hook with state returns it from
    :meth:`state_dict` as top-level checkpoint entries and takes it back from the whole checkpoint in
    :meth:`load_state_dict`.
    """

    trainer = None

    def before_train(self):
        pass

    def before_epoch(self):
        pass

    def before_step(self):
        pass

    def after_backward(self):
        pass

    def after_step(self):
        pass

    def after_epoch(self):
        pass

    def after_train(self):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, checkpoint):
        pass
