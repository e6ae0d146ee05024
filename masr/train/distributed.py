"""PyTorch DDP set-up from ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

A plain ``python -m ...`` run is a world of one; ``torchrun --nproc_per_node=K -m ...`` starts K
processes that each call :func:`init` and get their rank. CUDA runs use NCCL, CPU runs gloo.
"""

import datetime
import os

import torch
import torch.distributed as dist

from masr.utils.process import die_with_parent


#: Minutes a collective may wait (``MASR_DDP_TIMEOUT_MIN``). Long, because after fine-tuning rank 0
#: alone scores every checkpoint on dev and the test set while the other ranks wait at a barrier
#: (torch's default for NCCL, 10 minutes, is shorter than scoring FLEURS' test set can take).
TIMEOUT_MINUTES = 180


def init(device_type="cpu"):
    """Join the process group when launched by torchrun; returns (rank, world_size, device).

    A process launched by torchrun (``TORCHELASTIC_RUN_ID`` set) dies with its launcher
    (:func:`masr.utils.process.die_with_parent`)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if "TORCHELASTIC_RUN_ID" in os.environ:
        die_with_parent()  # kill -9 of torchrun must not leave its workers training
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        minutes = float(os.environ.get("MASR_DDP_TIMEOUT_MIN", TIMEOUT_MINUTES))
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=minutes))
    return rank, world, device


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def barrier():
    if is_distributed():
        dist.barrier()


def all_reduce_mean(values):
    """Average a dict of scalar tensors over ranks (for logging); returns floats."""
    if not values:
        return {}
    keys = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).detach().cpu() for k in keys])
    if is_distributed():
        # NCCL reduces CUDA tensors only
        nccl = dist.get_backend() == "nccl"
        reduced = stacked.to(torch.device("cuda", torch.cuda.current_device())) if nccl else stacked
        dist.all_reduce(reduced)
        stacked = reduced.cpu() / dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, stacked)}


def min_max(value):
    """(smallest, largest) of an integer over the ranks; (value, value) in a world of one."""
    if not is_distributed():
        return value, value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    both = torch.tensor([-value, value], dtype=torch.int64, device=device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    return int(-both[0]), int(both[1])


def cleanup():
    """Leave the process group. The barrier first makes every rank finish its last collective
    (gloo aborts a process whose peer tears down mid-transfer: "terminate called without an
    active exception")."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
