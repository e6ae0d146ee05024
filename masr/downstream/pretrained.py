"""Pretrained encoders for downstream tasks: from a pretraining run, or from one self-contained file.

A pretraining run (``masr.train.pretrain``) keeps its config, overrides and checkpoints in its
exp dir; :func:`encoder_from_run` rebuilds the model from them (paths in the config are relative
to the recipe folder, as the recipe ran it) and returns the SSL encoder, unwrapped from
``masr.model.MASR`` if needed. Downstream models store the encoder's class and constructor
arguments (``SSLModel.hparams``) with their own weights, so inference needs only their folder
(:func:`encoder_spec`, :func:`build_encoder`).
"""

import importlib
import os
import re

import torch

from masr.train.checkpoint import list_checkpoints, load_checkpoint


#: The self-contained encoder of a finished pretraining run: ``<run_dir>/encoder.pt``.
ENCODER_FILE = "encoder.pt"


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


def newest_checkpoint(run_dir):
    """The newest finished checkpoint folder of a run; FileNotFoundError naming the run if none."""
    found = list_checkpoints(os.path.join(run_dir, "checkpoints"))
    if not found:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no finished checkpoint; has this run been trained?")
    return found[-1][1]


def unwrap_ssl(model):
    """The SSL encoder inside a model (``MASR.ssl``), or the model itself."""
    return getattr(model, "ssl", model)


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
    from masr.model import ssl_from_run

    path = checkpoint or newest_checkpoint(run_dir)
    exported = os.path.join(run_dir, ENCODER_FILE)
    if os.path.isfile(exported):
        saved = torch.load(exported, map_location="cpu", weights_only=True)
        if saved.get("checkpoint") == os.path.basename(os.path.normpath(path)):
            model = build_encoder(saved["encoder"])
            model.load_state_dict(saved["state_dict"])
            return model.eval()
    model = ssl_from_run(run_dir)
    state, _ = load_checkpoint(path)
    model.load_state_dict(state["model"])
    return unwrap_ssl(model).eval()


def encoder_spec(model):
    """What rebuilds ``model``'s architecture: ``{"class": "module.Name", "hparams": {...}}``."""
    if model.hparams is None:
        raise ValueError(f"{type(model).__name__} did not record its constructor arguments (SSLModel.save_hparams)")
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "hparams": dict(model.hparams)}


#: The encoder classes a model file may name (``model.json``, ``encoder.pt``): nothing else is
#: imported or called, so a crafted file cannot make :func:`build_encoder` run other code.
ENCODER_CLASSES = {
    "masr.ssl.bestrq.BestRQ": ("masr.ssl.bestrq", "BestRQ"),
    "masr.ssl.w2vbert.W2vBert": ("masr.ssl.w2vbert", "W2vBert"),
}


def build_encoder(spec):
    """A freshly initialised encoder from :func:`encoder_spec` (weights are loaded by the caller).

    Only the classes of :data:`ENCODER_CLASSES` are built; any other name, and hparams that are
    not a mapping of plain values, are a ``ValueError``.

    Example
    -------
    >>> from masr.ssl.bestrq import BestRQ
    >>> model = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)
    >>> copy = build_encoder(encoder_spec(model))
    >>> type(copy).__name__, copy.num_layers, copy.d_model
    ('BestRQ', 1, 32)
    """
    name = spec.get("class") if isinstance(spec, dict) else None
    if name not in ENCODER_CLASSES:
        raise ValueError(f"encoder class {name!r} is not one of masr's encoders ({', '.join(ENCODER_CLASSES)}); "
                         "a model file can only name those")
    hparams = spec.get("hparams")
    if not isinstance(hparams, dict) or not all(_plain(v) for v in hparams.values()):
        raise ValueError(f"encoder {name}: hparams must be a mapping of numbers, strings, lists and null")
    module, attribute = ENCODER_CLASSES[name]
    return getattr(importlib.import_module(module), attribute)(**hparams)


def _plain(value):
    """JSON-like: None, bool, number, string, or lists / dicts of those."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def load_encoder(path):
    """An encoder for embeddings: a pretraining run dir, or a file written by :func:`save_encoder`."""
    if os.path.isdir(path):
        return encoder_from_run(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values only
        model = build_encoder(saved["encoder"])
        model.load_state_dict(saved["state_dict"])
    except Exception as e:  # unreadable, a pickle of anything else, another layout: not an encoder file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path}: not an encoder file of masr.downstream.pretrained.save_encoder "
                         f"({type(e).__name__}: {first})") from None
    return model.eval()


def save_encoder(model, path, checkpoint=None):
    """One file holding an encoder's architecture and weights (read by :func:`load_encoder`), and
    the name of the checkpoint folder they come from (``step-N``), if any."""
    from masr.utils.fileio import atomic_open

    with atomic_open(path, "wb") as f:
        torch.save({"encoder": encoder_spec(model), "state_dict": model.state_dict(),
                    "checkpoint": checkpoint and os.path.basename(os.path.normpath(checkpoint))}, f)
