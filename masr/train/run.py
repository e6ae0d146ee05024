"""The frame of every training entry point (pretraining, LangID, ASR fine-tuning).

:func:`training_run` picks the device, joins the DDP group, locks the run folder, writes
``env.log`` and keeps the config with the run (:func:`save_run_config`); :func:`seed_everything`
is what every config calls first (``__set_seed``); :data:`TRAINING_ERRORS` are the errors an
entry point reports as ``error: ...`` with exit status 1.
"""

import contextlib
import os
import random
import sys

import numpy as np
import torch

from masr.data.datadir import DataDirError
from masr.train import distributed
from masr.train.checkpoint import CheckpointError
from masr.train.lock import ExpDirLocked, exp_dir_lock
from masr.train.trainer import TrainingError
from masr.utils.envlog import write_env_log
from masr.utils.fileio import atomic_open


def seed_everything(seed):
    """Seed Python's, NumPy's and PyTorch's generators (``torch.manual_seed`` seeds every CUDA
    device too). Kept rather than ``speechbrain.utils.seed.seed_everything``, which does the same
    and also logs and sets ``SB_GLOBAL_SEED``: the configs call this one (``__set_seed``), and a
    resumed run restores the generators' states from its checkpoint instead of reseeding."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: Overrides that may change when a run is resumed: they do not change what is trained.
RESUMABLE_KEYS = {"exp_dir",  # a run folder that was moved or copied resumes where it now is
                  "progress", "log_every", "valid_every", "valid_batches", "checkpoint_every",
                  "keep_checkpoints", "keep_steps", "num_workers", "cpu_threads",
                  "compile", "compile_mode",  # the same model and updates, compiled or not
                  "fbank_device",   # the same filterbanks (within float32 rounding), on the GPU or not
                  "pretrain_langs"}   # LangID: only splits the test results into O / NO


class RunConfigMismatch(RuntimeError):
    """An existing run's directory was trained with another config than the one given now."""


def save_run_config(config_file, argv, exp_dir):
    """Keep the config and the command-line overrides with the run (``<exp>/config.yaml``,
    ``<exp>/overrides.yaml``), so the run can be rebuilt (``masr.model.ssl_from_run``).

    A run that already has checkpoints resumes; it must then be given the same config (only
    ``RESUMABLE_KEYS`` may differ), otherwise :class:`RunConfigMismatch` says what differs
    instead of silently continuing, or skipping, a run trained with other settings.
    """
    import shutil

    import yaml

    from masr.train.checkpoint import list_checkpoints
    from masr.utils.config import overrides_from_args

    declared, flags = {"--device"}, {"--allow-inexact-resume"}
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == os.fspath(config_file) or arg in flags:
            continue
        if arg.split("=", 1)[0] in declared:
            skip = "=" not in arg
            continue
        rest.append(arg)
    overrides = overrides_from_args(rest)
    saved_config = os.path.join(exp_dir, "config.yaml")
    saved_overrides = os.path.join(exp_dir, "overrides.yaml")
    if list_checkpoints(os.path.join(exp_dir, "checkpoints")) and os.path.isfile(saved_config):
        with open(config_file, encoding="utf-8") as f, open(saved_config, encoding="utf-8") as g:
            same_file = f.read() == g.read()
        with open(saved_overrides, encoding="utf-8") as f:
            before = yaml.safe_load(f) or {}
        changed = sorted(k for k in set(before) | set(overrides)
                         if k not in RESUMABLE_KEYS and before.get(k) != overrides.get(k))
        if not same_file or changed:
            what = ("the config file" if not same_file else "") + (
                f"{' and ' if not same_file else ''}overrides {', '.join(changed)}" if changed else "")
            raise RunConfigMismatch(
                f"{exp_dir} holds checkpoints of a run trained with other settings ({what} differ from "
                f"{saved_config} / {saved_overrides}); delete {exp_dir} to train anew, or restore them to resume")
    os.makedirs(exp_dir, exist_ok=True)
    if os.path.abspath(config_file) != os.path.abspath(saved_config):
        shutil.copyfile(config_file, saved_config)
    with atomic_open(saved_overrides) as f:
        yaml.safe_dump(overrides, f, sort_keys=True, allow_unicode=True)


#: Errors that stop a training entry point with a message and exit status 1 (no traceback).
TRAINING_ERRORS = (TrainingError, CheckpointError, ExpDirLocked, DataDirError, FileNotFoundError)


def error_text(error):
    """The message of an error for the user: for one a DataLoader worker raised (which PyTorch
    re-raises with the worker's traceback in the message), its own last line.

    Example
    -------
    >>> error_text(ValueError("Caught X in DataLoader worker process 0.\\nOriginal Traceback (most recent "
    ...                       "call last):\\n  File ...\\nmasr.data.dataset.FeatsReadError: dump/feats.scp: bad"))
    'dump/feats.scp: bad'
    """
    text = str(error)
    if "\nOriginal Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def add_training_arguments(parser):
    """The options every training entry point declares (the rest are config overrides)."""
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    parser.add_argument("--allow-inexact-resume", action="store_true",
                        help="resume a checkpoint written by another number of processes, or one missing an RNG "
                             "file (refused otherwise: the run would not continue exactly)")
    return parser


@contextlib.contextmanager
def training_run(args, config, argv=None):
    """The frame of every training entry point (pretraining, LangID, ASR): pick the device
    (``--device auto``: CUDA if available), set the CPU threads (``cpu_threads``; null: torch's default), join the DDP
    group, (rank 0) lock the run folder against a second writer (:func:`masr.train.lock.exp_dir_lock`),
    write ``env.log`` (:func:`masr.utils.envlog.write_env_log`) and keep the config with the run
    (:func:`save_run_config`, which raises
    :class:`RunConfigMismatch`); yields (rank, world size, device) and leaves the DDP group at
    the end, also on an error. ``--allow-inexact-resume`` reaches the trainer as the config's
    ``allow_inexact_resume``::

        with training_run(args, config, argv) as (rank, world, device):
            ...
    """
    device_type = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device_type == "cpu" and config["cpu_threads"]:  # null: torch's default
        torch.set_num_threads(config["cpu_threads"])
    config["allow_inexact_resume"] = getattr(args, "allow_inexact_resume", False)
    rank, world, device = distributed.init(device_type)
    with contextlib.ExitStack() as held:
        if rank == 0:
            try:
                held.enter_context(exp_dir_lock(config["exp_dir"]))
                save_run_config(args.config, argv if argv is not None else sys.argv[1:], config["exp_dir"])
                write_env_log(config["exp_dir"])   # versions, GPUs, git commit of this (re)start
            except (RunConfigMismatch, ExpDirLocked):
                distributed.cleanup()
                raise
        try:
            yield rank, world, device
        finally:
            distributed.cleanup()
