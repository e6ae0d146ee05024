"""Step-based checkpoints, written atomically, the last K kept.

A checkpoint is a folder ``<exp>/checkpoints/step-<N>/`` holding ``state.pt`` (model, optimizer,
scheduler, trainer position) and one ``rng.rank<r>.pt`` per process (each DDP rank has its own
random state). It is written as ``step-<N>.tmp/`` and renamed once complete, so a run killed
while saving never leaves a checkpoint that looks finished.
"""

import os
import random
import re
import shutil

import numpy as np
import torch

from masr.train import distributed

_NAME = re.compile(r"^step-(\d+)$")


def rng_state():
    """Every random state a training step draws from."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(folder):
    """Finished checkpoints under ``folder``, oldest first, as (step, path)."""
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        m = _NAME.match(name)
        if m and os.path.isfile(os.path.join(folder, name, "state.pt")):
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


def save_checkpoint(folder, step, state, rank=0, keep=3, keep_steps=()):
    """Save ``state`` (rank 0) and this rank's RNG state as ``folder/step-<step>``.

    Every rank must call it (it synchronises); only rank 0 writes ``state.pt``, renames the
    folder into place and deletes all but the newest ``keep`` checkpoints, except those of
    ``keep_steps`` (e.g. the paper's MASR runs continue from BEST-RQ's 1M-step checkpoint while
    the baseline trains on to 1.25M).
    """
    final = os.path.join(folder, f"step-{step:08d}")
    tmp = final + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    distributed.barrier()
    torch.save(rng_state(), os.path.join(tmp, f"rng.rank{rank}.pt"))
    if rank == 0:
        torch.save(state, os.path.join(tmp, "state.pt"))
    distributed.barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old_step, old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
            if old_step not in keep_steps:
                shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()
    return final


def _numpy_rng_globals():
    """What unpickling numpy's random state (an array) needs; nothing that runs code."""
    import numpy.dtypes

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, numpy.dtypes.UInt32DType]


def load_checkpoint(path, rank=0, map_location="cpu"):
    """(state, rng state of this rank or None) from a checkpoint folder.

    Both files are read with ``weights_only=True``: tensors and plain values (and numpy's random
    state) only, so a crafted checkpoint cannot run code when it is loaded."""
    state = torch.load(os.path.join(path, "state.pt"), map_location=map_location, weights_only=True)
    rng_file = os.path.join(path, f"rng.rank{rank}.pt")
    rng = None
    if os.path.isfile(rng_file):
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            rng = torch.load(rng_file, weights_only=True)
    return state, rng


def load_model_weights(model, path, strict=False):
    """Initialise ``model`` from another run's checkpoint folder (or a ``state.pt`` file).

    Returns the (missing, unexpected) parameter names, so a caller can report what was not
    initialised — e.g. MASR heads absent from a BEST-RQ checkpoint.
    """
    file = os.path.join(path, "state.pt") if os.path.isdir(path) else path
    state = torch.load(file, map_location="cpu", weights_only=True)
    weights = state.get("model", state)
    own = model.state_dict()
    if not set(weights) & set(own) and hasattr(model, "ssl"):
        # an SSL checkpoint into a model that wraps the SSL model (masr.model.MASR)
        weights = {f"ssl.{k}": v for k, v in weights.items()}
    if not set(weights) & set(own):
        raise ValueError(f"{file}: none of its parameters belongs to {type(model).__name__}; wrong checkpoint?")
    result = model.load_state_dict(weights, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)
