"""One self-contained encoder file: an SSL encoder's class, constructor arguments and weights.

A finished pretraining run writes ``<run_dir>/encoder.pt`` (:func:`save_encoder`); downstream
stages, ``masr.infer`` and ``masr.hub`` read it (:func:`read_encoder_file`) from any folder, with
no config and no recipe folder. Fine-tuned models store the encoder's spec (:func:`encoder_spec`)
in their ``model.json`` and rebuild it with :func:`encoder_from_spec`.

A file is data: ``torch.load(weights_only=True)`` (tensors and plain values, no pickled objects),
and a spec may only name a class of :data:`ENCODER_CLASSES`, so a crafted file cannot make masr
import or run other code.
"""

import importlib
import os

import torch

from masr.utils.fileio import atomic_open

#: The self-contained encoder of a finished pretraining run: ``<run_dir>/encoder.pt``.
ENCODER_FILE = "encoder.pt"

#: The encoder classes a model file may name (``model.json``, ``encoder.pt``, a packed
#: ``config.json``): nothing else is imported or called.
ENCODER_CLASSES = {
    "masr.ssl.bestrq.BestRQ": ("masr.ssl.bestrq", "BestRQ"),
    "masr.ssl.w2vbert.W2vBert": ("masr.ssl.w2vbert", "W2vBert"),
}


def unwrap_ssl(model):
    """The SSL encoder inside a model (``masr.model.MASR.ssl``), or the model itself."""
    return getattr(model, "ssl", model)


def encoder_spec(model):
    """What rebuilds ``model``'s architecture: ``{"class": "module.Name", "hparams": {...}}``."""
    if model.hparams is None:
        raise ValueError(f"{type(model).__name__} did not record its constructor arguments (SSLModel.save_hparams)")
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "hparams": dict(model.hparams)}


def encoder_from_spec(spec):
    """A freshly initialised encoder from :func:`encoder_spec` (weights are loaded by the caller).

    Only the classes of :data:`ENCODER_CLASSES` are built; any other name, and hparams that are
    not a mapping of plain values, are a ``ValueError``.

    Example
    -------
    >>> from masr.ssl.bestrq import BestRQ
    >>> model = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)
    >>> copy = encoder_from_spec(encoder_spec(model))
    >>> type(copy).__name__, copy.num_layers, copy.d_model
    ('BestRQ', 1, 32)
    """
    name = spec.get("class") if isinstance(spec, dict) else None
    if name not in ENCODER_CLASSES:
        raise ValueError(f"encoder class {name!r} is not one of masr's encoders ({', '.join(ENCODER_CLASSES)}); "
                         "a model file can only name those")
    hparams = spec.get("hparams")
    if not isinstance(hparams, dict) or not all(is_plain(v) for v in hparams.values()):
        raise ValueError(f"encoder {name}: hparams must be a mapping of numbers, strings, lists and null")
    module, attribute = ENCODER_CLASSES[name]
    return getattr(importlib.import_module(module), attribute)(**hparams)


def is_plain(value):
    """JSON-like: None, bool, number, string, or lists / dicts of those.

    Example
    -------
    >>> is_plain({"a": [1, 2.5, None, "x"]}), is_plain({"a": object()})
    (True, False)
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def save_encoder(model, path, checkpoint=None):
    """One file holding an encoder's architecture and weights (read by :func:`read_encoder_file`),
    and the name of the checkpoint folder they come from (``step-N``), if any. Written atomically."""
    with atomic_open(path, "wb") as f:
        torch.save({"encoder": encoder_spec(model), "state_dict": model.state_dict(),
                    "checkpoint": checkpoint and os.path.basename(os.path.normpath(checkpoint))}, f)


def read_encoder_file(path):
    """The encoder of a file written by :func:`save_encoder`, in eval mode on the CPU, and the
    name of the checkpoint it comes from (or None).

    Raises
    ------
    ValueError
        Naming ``path``: unreadable, a pickle of anything but tensors and plain values, another
        layout, or an encoder class outside :data:`ENCODER_CLASSES`.
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values only
        model = encoder_from_spec(saved["encoder"])
        model.load_state_dict(saved["state_dict"])
    except Exception as e:  # unreadable, a pickle of anything else, another layout: not an encoder file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path}: not an encoder file of masr.ssl.encoder_file.save_encoder "
                         f"({type(e).__name__}: {first})") from None
    return model.eval(), saved.get("checkpoint")
