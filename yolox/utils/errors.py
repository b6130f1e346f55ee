"""The base class of errors that are the user's to fix (bad files, arguments, checkpoints, data).

Tools catch it and print its message as one line instead of a traceback."""

__all__ = ["YOLOXError"]


class YOLOXError(Exception):
    """An error with a message that names the file/argument and the problem."""
