"""Starting 1..N training/evaluation processes: spawned locally, across machines, or under torchrun."""
import os
import socket
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from loguru import logger

from yolox.utils.dist import set_local_rank
from yolox.utils.errors import YOLOXError

__all__ = ["launch", "find_free_port", "under_torchrun"]


def find_free_port():
    """A TCP port on 127.0.0.1 that is free right now (for single-machine rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def under_torchrun():
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ and "RANK" in os.environ


def default_backend(device):
    return "nccl" if device == "cuda" else "gloo"


def launch(main_func, num_procs_per_machine, num_machines=1, machine_rank=0, backend="auto", dist_url=None,
           device="cpu", args=(), timeout=timedelta(minutes=30)):
    """Run ``main_func(*args)`` in ``num_procs_per_machine * num_machines`` processes.

    - under ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK set): joins that group, one process here;
    - one process in all: runs ``main_func`` in this process, without torch.distributed;
    - otherwise spawns ``num_procs_per_machine`` local workers that rendezvous at ``dist_url``
      (``tcp://host:port``; ``None``/"auto" picks a free local port, single machine only).
    ``backend``: "auto" = NCCL on CUDA, gloo on CPU.
    """
    if backend in (None, "auto"):
        backend = default_backend(device)
    if under_torchrun():
        if os.environ.get("MASTER_PORT") == "0":
            # torchrun passes "--master_port 0" on to the workers unchanged: they would wait forever
            raise YOLOXError("torchrun was given --master_port 0, which its workers cannot connect to; use "
                             "torchrun --standalone (it picks a free port) or a real port number")
        local_rank = int(os.environ["LOCAL_RANK"])
        _init_group(backend, "env://", int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"]), local_rank, device, timeout)
        try:
            main_func(*args)
        finally:
            dist.destroy_process_group()
        return
    world_size = num_machines * num_procs_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise YOLOXError(f"--num_machines {num_machines} needs --dist-url tcp://HOST:PORT of machine 0 (the same "
                             f"on every machine)")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    mp.start_processes(
        _worker, nprocs=num_procs_per_machine,
        args=(main_func, world_size, num_procs_per_machine, machine_rank, backend, dist_url, device, args, timeout),
        daemon=False, start_method="spawn",
    )


def _init_group(backend, init_method, world_size, rank, local_rank, device, timeout):
    if device == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method=init_method, world_size=world_size, rank=rank, timeout=timeout)
    set_local_rank(local_rank)
    # Share the machine's cores among the local processes instead of oversubscribing them.
    if device == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", 0)) or max(1, world_size)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def _worker(local_rank, main_func, world_size, procs_per_machine, machine_rank, backend, dist_url, device, args, timeout):
    rank = machine_rank * procs_per_machine + local_rank
    os.environ["LOCAL_WORLD_SIZE"] = str(procs_per_machine)
    try:
        _init_group(backend, dist_url, world_size, rank, local_rank, device, timeout)
    except Exception as e:  # noqa: BLE001 - one clear line instead of a rendezvous traceback
        logger.error(f"process {rank} could not join the process group at {dist_url} ({backend}): {e}")
        sys.exit(1)
    try:
        main_func(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
