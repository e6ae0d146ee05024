"""Step-based checkpoints, written atomically and durably, verified when resumed, the last K kept.

A checkpoint is a folder ``<exp>/checkpoints/step-<N>/`` holding ``state.pt`` (model, optimizer,
scheduler, trainer position), one ``rng.rank<r>.pt`` per process (each DDP rank has its own
random state) and ``manifest.json`` (the step, the number of processes, and every file's size
and SHA-256). It is written as ``step-<N>.tmp/``, every file and the folder are ``fsync``-ed, and
it is renamed once complete, so neither a killed run nor a power loss leaves a checkpoint that
looks finished but is not.

Resuming (:func:`find_resumable`) takes the newest checkpoint whose files match its manifest and
load; a broken one (truncated, emptied, changed) is skipped with a warning that names it and
says why, and the next older one is used. :func:`check_exact_resume` then refuses, unless
allowed, what would make the resumed run differ from an uninterrupted one: a missing RNG file
or a different number of processes.
"""

import hashlib
import json
import os
import random
import re
import shutil

import numpy as np
import torch

from masr.train import distributed
from masr.utils.fileio import atomic_open, fsync_dir

_NAME = re.compile(r"^step-(\d+)$")
_RNG = re.compile(r"^rng\.rank(\d+)\.pt$")

#: The file listing a checkpoint's files with their sizes and checksums, written last.
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """No checkpoint of a run can be resumed, or resuming it would not be exact; the message names
    the checkpoint(s) and why."""


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


def newest_checkpoint(run_dir):
    """The newest finished checkpoint folder of a run (``<run_dir>/checkpoints/step-N``);
    FileNotFoundError naming the run if there is none."""
    found = list_checkpoints(os.path.join(run_dir, "checkpoints"))
    if not found:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no finished checkpoint; has this run been trained?")
    return found[-1][1]


def remove_unfinished(folder):
    """Delete ``step-*.tmp`` folders left by a run killed while saving (rank 0, before training)."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith("step-") and name.endswith(".tmp"):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def file_sha256(path, block=1 << 22):
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingWriter:
    """A file that hashes what is written to it (so a checkpoint is not read back to be hashed)."""

    def __init__(self, f):
        self.f, self.sha256, self.size = f, hashlib.sha256(), 0

    def write(self, data):
        self.sha256.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def _save_durably(obj, path):
    """``torch.save`` + ``fsync``; returns the file's manifest entry (size, SHA-256)."""
    with open(path, "wb") as f:
        writer = _HashingWriter(f)
        torch.save(obj, writer)
        f.flush()
        os.fsync(f.fileno())
    return {"size": writer.size, "sha256": writer.sha256.hexdigest()}


def save_checkpoint(folder, step, state, rank=0, keep=3, keep_steps=(), world_size=1):
    """Save ``state`` (rank 0) and this rank's RNG state as ``folder/step-<step>``.

    Every rank must call it (it synchronises); only rank 0 writes ``state.pt`` and the manifest,
    renames the folder into place and deletes all but the newest ``keep`` checkpoints, except
    those of ``keep_steps`` (e.g. the paper's MASR runs continue from BEST-RQ's 1M-step checkpoint
    while the baseline trains on to 1.25M).
    """
    final = os.path.join(folder, f"step-{step:08d}")
    tmp = final + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    distributed.barrier()
    _save_durably(rng_state(), os.path.join(tmp, f"rng.rank{rank}.pt"))
    if rank == 0:
        state_entry = _save_durably(state, os.path.join(tmp, "state.pt"))
    distributed.barrier()
    if rank == 0:
        files = {name: {"size": os.path.getsize(os.path.join(tmp, name)), "sha256": file_sha256(os.path.join(tmp, name))}
                 for name in sorted(os.listdir(tmp)) if name != "state.pt"}  # the small RNG files
        files["state.pt"] = state_entry
        with atomic_open(os.path.join(tmp, MANIFEST), durable=True) as f:
            json.dump({"step": step, "world_size": world_size, "files": files}, f, indent=1)
        fsync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync_dir(folder)
        for old_step, old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
            if old_step not in keep_steps:
                shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()
    return final


def verify_checkpoint(path):
    """Why the checkpoint folder ``path`` is broken, or ``None`` when its files match its manifest.

    A checkpoint written before manifests existed (none in the folder) is only checked by
    loading it (see :func:`find_resumable`)."""
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
        return None
    try:
        with open(manifest, encoding="utf-8") as f:
            files = json.load(f)["files"]
        for name, info in files.items():
            if os.path.basename(name) != name:
                return f"{MANIFEST} names a file outside the checkpoint folder ('{name}')"
            file = os.path.join(path, name)
            if not os.path.isfile(file):
                if _RNG.match(name):
                    continue  # not damage but an inexact resume: check_exact_resume refuses it
                return f"{name} is missing"
            size = os.path.getsize(file)
            if size != info["size"]:
                return f"{name} has {size} bytes, its manifest says {info['size']} (truncated or overwritten)"
            if file_sha256(file) != info["sha256"]:
                return f"{name} does not match its SHA-256 checksum in {MANIFEST}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"{MANIFEST} cannot be read ({type(e).__name__}: {e})"
    return None


def checkpoint_world_size(path):
    """The number of processes that wrote the checkpoint (its manifest, else its RNG files)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            return int(json.load(f)["world_size"])
    except (OSError, ValueError, KeyError, TypeError):
        ranks = [int(m.group(1)) for m in map(_RNG.match, os.listdir(path)) if m]
        return max(ranks) + 1 if ranks else None


def _numpy_rng_globals():
    """What unpickling numpy's random state (an array) needs; nothing that runs code."""
    import numpy.dtypes

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, numpy.dtypes.UInt32DType]


def _load(file, **kwargs):
    """``torch.load(weights_only=True)``; an unreadable file is a :class:`CheckpointError` naming it."""
    try:
        return torch.load(file, weights_only=True, **kwargs)
    except Exception as e:  # a truncated zip, a pickle of something else: unreadable whatever the cause
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{file}: cannot be loaded ({type(e).__name__}: {first})") from None


def load_checkpoint(path, rank=0, map_location="cpu", verify=True):
    """(state, rng state of this rank or None) from a checkpoint folder.

    Both files are read with ``weights_only=True``: tensors and plain values (and numpy's random
    state) only, so a crafted checkpoint cannot run code when it is loaded. With ``verify``, the
    files must first match the folder's manifest (:func:`verify_checkpoint`).

    Raises
    ------
    CheckpointError
        The checkpoint is broken or unreadable; the message names it and says why.
    """
    if verify:
        reason = verify_checkpoint(path)
        if reason is not None:
            raise CheckpointError(f"{path}: broken checkpoint: {reason}")
    state = _load(os.path.join(path, "state.pt"), map_location=map_location)
    rng_file = os.path.join(path, f"rng.rank{rank}.pt")
    rng = None
    if os.path.isfile(rng_file):
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            rng = _load(rng_file)
    return state, rng


def find_resumable(folder, rank=0, map_location="cpu", at_most=None):
    """The newest intact checkpoint under ``folder`` (of a step <= ``at_most``, when given), loaded.

    Returns
    -------
    (step, path, state, rng, skipped) or None
        ``None`` when there is no checkpoint at all. ``rng`` is this rank's random state (``None``
        when its file is missing, see :func:`check_exact_resume`); ``skipped`` lists
        ``(path, reason)`` of the newer, broken checkpoints passed over. DDP ranks must agree on
        the step (a file one rank cannot read): :meth:`masr.train.trainer.Trainer` does.

    Raises
    ------
    CheckpointError
        Checkpoints exist but none is intact; the message lists each with its reason.
    """
    skipped = []
    for step, path in reversed(list_checkpoints(folder)):
        if at_most is not None and step > at_most:
            continue
        reason = verify_checkpoint(path)
        if reason is None:
            try:
                state, rng = load_checkpoint(path, rank, map_location, verify=False)
                return step, path, state, rng, skipped
            except CheckpointError as e:
                reason = str(e)
        skipped.append((path, reason))
    if skipped:
        raise CheckpointError("no checkpoint can be resumed:\n" + "\n".join(f"  {p}: {r}" for p, r in skipped)
                              + f"\nmove them out of {folder} to train from scratch")
    return None


def check_exact_resume(path, world_size, allow_inexact=False):
    """Refuse, with :class:`CheckpointError`, to resume ``path`` inexactly unless ``allow_inexact``.

    Inexact: the checkpoint was written by another number of processes (the data order and
    per-rank random states differ), or an RNG file of a rank of this run is missing.

    Returns
    -------
    list of str
        What is inexact (empty when nothing is); with ``allow_inexact`` the caller logs it.
    """
    problems = []
    saved_world = checkpoint_world_size(path)
    if saved_world is not None and saved_world != world_size:
        problems.append(f"it was written by {saved_world} process(es), this run has {world_size}")
    missing = [f"rng.rank{r}.pt" for r in range(world_size) if not os.path.isfile(os.path.join(path, f"rng.rank{r}.pt"))]
    if missing:
        problems.append(f"its random state file(s) {', '.join(missing)} are missing")
    if problems and not allow_inexact:
        raise CheckpointError(f"{path}: resuming would not continue the run exactly: {'; '.join(problems)}. "
                              f"Resume with the same number of processes, or pass --allow-inexact-resume to "
                              f"continue anyway")
    return problems


def load_model_weights(model, path, strict=False):
    """Initialise ``model`` from another run's checkpoint folder (or a ``state.pt`` file).

    Returns the (missing, unexpected) parameter names, so a caller can report what was not
    initialised — e.g. MASR heads absent from a BEST-RQ checkpoint.
    """
    file = os.path.join(path, "state.pt") if os.path.isdir(path) else path
    reason = verify_checkpoint(os.path.dirname(file))
    if reason is not None:
        raise CheckpointError(f"{os.path.dirname(file)}: broken checkpoint: {reason}")
    state = _load(file, map_location="cpu")
    weights = state.get("model", state)
    own = model.state_dict()
    if not set(weights) & set(own) and hasattr(model, "ssl"):
        # an SSL checkpoint into a model that wraps the SSL model (masr.model.MASR)
        weights = {f"ssl.{k}": v for k, v in weights.items()}
    if not set(weights) & set(own):
        raise ValueError(f"{file}: none of its parameters belongs to {type(model).__name__}; wrong checkpoint?")
    result = model.load_state_dict(weights, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)
