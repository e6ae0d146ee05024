"""Multi-process tests on one machine: a free port, and a worker joining the gloo group."""

import os
import socket

import torch


def free_port():
    """A TCP port free on localhost now (for a rendezvous or a daemon)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_cpu_group(rank, world, port):
    """In an ``mp.spawn`` worker: set torchrun's environment, one thread, and join the gloo group
    through :func:`masr.train.distributed.init`; returns (rank, world size, device)."""
    from masr.train import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    return distributed.init("cpu")
