"""Pretrained encoders for downstream tasks: from a pretraining run, or from one self-contained file.

A pretraining run (``masr.train.pretrain``) keeps its config, overrides and checkpoints in its
exp dir; :func:`encoder_from_run` rebuilds the model from them (paths in the config are relative
to the recipe folder, as the recipe ran it) and returns the SSL encoder, unwrapped from
``masr.model.MASR`` if needed. A finished run's ``encoder.pt`` and the encoder spec that
fine-tuned models store are read and written by :mod:`masr.ssl.encoder_file`.
"""

import os
import re

from masr.model import ssl_from_run
from masr.ssl.encoder_file import ENCODER_FILE, read_encoder_file, unwrap_ssl
from masr.train.checkpoint import load_checkpoint, newest_checkpoint


def run_name(run_dir):
    """The model name of a pretraining run folder: its name, or its parent's for a seed folder.

    Stage 4 of the recipe writes one run per seed (``exp/<config>/seed<S>``); results and tables
    name the model by the config (``<config>``) and the seed separately.

    Example
    -------
    >>> run_name("exp/continue_masr/seed2/"), run_name("exp/pretrain_bestrq")
    ('continue_masr', 'pretrain_bestrq')
    """
    path = os.path.normpath(run_dir)
    name = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) if re.fullmatch(r"seed\d+", name) else name


def encoder_from_run(run_dir, checkpoint=None):
    """The SSL encoder of a pretraining run, with the weights of its newest (or the given) checkpoint.

    A finished run holds ``encoder.pt`` (written by ``masr.train.pretrain`` at the end of
    training, see :func:`save_encoder`): when it belongs to the checkpoint asked for, it is read
    and nothing else is needed. Otherwise the model is rebuilt from the run's config, whose
    paths are relative to the folder the run was trained from (the recipe folder).

    Arguments
    ---------
    run_dir : str
        ``exp/<config name>`` of ``masr.train.pretrain`` (BEST-RQ, or a MASR/LASR continuation).
    checkpoint : str or None
        A checkpoint folder; None takes the newest.

    Returns
    -------
    masr.ssl.base.SSLModel
        In eval mode, on the CPU.
    """
    path = checkpoint or newest_checkpoint(run_dir)
    exported = os.path.join(run_dir, ENCODER_FILE)
    if os.path.isfile(exported):
        model, saved_from = read_encoder_file(exported)
        if saved_from == os.path.basename(os.path.normpath(path)):
            return model
    model = ssl_from_run(run_dir)
    state, _ = load_checkpoint(path)
    model.load_state_dict(state["model"])
    return unwrap_ssl(model).eval()


def load_encoder(path):
    """An encoder for embeddings: a pretraining run dir, or a file written by
    :func:`masr.ssl.encoder_file.save_encoder` (ValueError naming it if it is not one)."""
    if os.path.isdir(path):
        return encoder_from_run(path)
    return read_encoder_file(path)[0]
