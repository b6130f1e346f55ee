"""Logging through loguru: INFO to the console on rank 0, everything to a file in the output folder."""
import os
import sys

from loguru import logger

__all__ = ["setup_logger"]

FORMAT = "<green>{time:YYYY-MM-DD HH:mm:ss}</green> | <level>{level: <8}</level> | <level>{message}</level>"


def setup_logger(save_dir, distributed_rank=0, filename="log.txt", mode="a"):
    """Route loguru output: rank 0 logs to stderr and ``save_dir/filename``; other ranks log warnings only."""
    logger.remove()
    if distributed_rank == 0:
        logger.add(sys.stderr, format=FORMAT, level="INFO", enqueue=False)
        if save_dir:
            os.makedirs(save_dir, exist_ok=True)
            path = os.path.join(save_dir, filename)
            if mode == "o" and os.path.exists(path):
                os.remove(path)
            logger.add(path, format=FORMAT, level="INFO")
    else:
        logger.add(sys.stderr, format=FORMAT, level="WARNING")
