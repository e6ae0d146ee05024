"""Shareable models: a run packed into a Hugging Face Hub model folder, and loaded back from it.

A packed folder (what ``save_pretrained`` writes, what a Hub model repository holds) is data only:

- ``config.json``: everything that rebuilds the model, as plain JSON: ``task`` (``langid``,
  ``asr`` or ``embed``), the encoder's class (one of
  :data:`masr.ssl.encoder_file.ENCODER_CLASSES`) and constructor arguments, the head
  (``num_outputs``, ``pooled``), the ``layer`` used, the labels (LangID) or the tokenizer file
  and decoding (ASR), the filterbank options, the source run and checkpoint step, the masr
  version and git commit (``masr_format``: the layout version, 1);
- ``model.safetensors``: the weights (tensors only, no pickle);
- ``tokenizer.model`` (ASR): the SentencePiece model (a protobuf);
- ``README.md``: the model card (:mod:`masr.hub_card`), with the Hub's YAML front matter
  (``library_name: masr``, tags, languages, metrics), written from the run's results files only
  (``not evaluated`` otherwise).

Loading reads JSON and safetensors only, never a pickle, and refuses a ``config.json`` naming
an encoder class outside the allow-list, holding anything but plain values, or naming a file
outside the folder. ``config.json`` keeps the keys of a fine-tuned run's ``model.json`` (less
``checkpoint``), so :mod:`masr.infer` runs a packed folder as it runs the run folder:
``python -m masr.infer langid --model <packed folder> a.wav``.

Command line::

    # a fine-tuned LangID / ASR model (exp/<task>/<model>/seed<S>: model.json + checkpoints)
    python -m masr.hub pack exp/langid/continue_masr/seed1 packed/langid-continue_masr
    # a pretraining run (or its encoder.pt): an encoder for embeddings
    python -m masr.hub pack exp/continue_masr/seed1 packed/continue_masr --fbank-config conf/fbank.yaml
    # then, to share it: huggingface-cli upload <user>/<repo> packed/langid-continue_masr

Python::

    from masr.hub import from_pretrained
    lid = from_pretrained("packed/langid-continue_masr")     # or "<user>/<repo>" on the Hub
    lid.predict("a.wav", topk=3)                             # a masr.infer.LanguageIdentifier
    model, config = masr.hub.load_model("packed/langid-continue_masr")  # the torch module

A repository id is downloaded with ``huggingface_hub.snapshot_download`` (only ``*.json``,
``*.safetensors``, ``*.model`` and ``README.md``), from ``endpoint`` or the ``HF_ENDPOINT``
environment variable (default: huggingface.co).
"""

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile

import torch

from masr.hub_card import model_card

#: Layout version written in ``config.json``.
FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.model"
CARD_FILE = "README.md"
TASKS = ("langid", "asr", "embed")
#: What a repository download fetches: no other file (no .bin/.pt/.pkl) is ever downloaded.
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.model", CARD_FILE]


class PackError(ValueError):
    """A folder that cannot be packed, or a packed folder that cannot be loaded."""


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------

def _tensors_for_safetensors(state):
    """(tensors, aliases): contiguous CPU copies of a state dict's tensors, each storage once.

    Entries that are the same view of the same storage as an earlier entry (tied weights) are not
    stored again: ``aliases`` maps their name to the stored one. Other tensors that share storage
    (different views) are stored as independent copies. Anything that is not a tensor is an error.
    """
    tensors, aliases, seen = {}, {}, {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise PackError(f"state entry {name!r} is a {type(value).__name__}, not a tensor")
        value = value.detach().cpu()
        key = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.stride(),
               value.dtype) if value.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = value.contiguous().clone()  # own storage: no two entries share memory
    return tensors, aliases


def save_weights(state, path):
    """Write a state dict to ``path`` as safetensors (tied entries as aliases in the metadata)."""
    from safetensors.torch import save_file

    tensors, aliases = _tensors_for_safetensors(state)
    save_file(tensors, path, metadata={"format": "pt", "masr_aliases": json.dumps(aliases, sort_keys=True)})


def load_weights(path):
    """The state dict of a safetensors file of :func:`save_weights` (no pickle involved)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(path)
        aliases = json.loads(metadata.get("masr_aliases", "{}"))
    except Exception as e:  # a truncated or foreign file: say which
        raise PackError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and v in state for k, v in aliases.items()):
        raise PackError(f"{path}: bad masr_aliases metadata")
    for name, target in aliases.items():
        state[name] = state[target]
    return state


# --------------------------------------------------------------------------------------------------
# config.json: validation
# --------------------------------------------------------------------------------------------------

def _inside(folder, name, what):
    """The path of ``name`` (a relative path) in ``folder``; PackError when it leaves the folder."""
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\\" in name or ".." in name.split("/"):
        raise PackError(f"{folder}/{CONFIG_FILE}: {what} {name!r} must be a relative path inside the folder")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    roots = [root]
    repo = os.path.dirname(os.path.dirname(root))
    if os.path.basename(os.path.dirname(root)) == "snapshots" and os.path.basename(repo).startswith("models--"):
        roots.append(os.path.join(repo, "blobs"))  # huggingface_hub's cache: snapshot files link to its blobs
    if not any(os.path.commonpath([r, path]) == r for r in roots):
        raise PackError(f"{folder}/{CONFIG_FILE}: {what} {name!r} is outside the model folder")
    if not os.path.isfile(path):
        raise PackError(f"{folder}: {what} {name!r} not found")
    return path


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validate_config(config, folder="."):
    """Check a ``config.json`` (parsed) of a packed folder; returns it, or raises PackError.

    Checked: plain JSON values only; a known ``masr_format`` and ``task``; the encoder class is
    one of masr's (:data:`masr.ssl.encoder_file.ENCODER_CLASSES`) with plain hparams; the
    filterbank options are those of :class:`masr.features.fbank.FbankConfig`; head sizes and
    labels agree; every file named (weights, tokenizer) lies inside ``folder``.
    """
    from masr.ssl.encoder_file import ENCODER_CLASSES, is_plain
    from masr.features.fbank import FbankConfig

    where = f"{folder}/{CONFIG_FILE}"
    if not isinstance(config, dict) or not is_plain(config):
        raise PackError(f"{where}: must be a JSON object of plain values")
    if config.get("masr_format") != FORMAT:
        raise PackError(f"{where}: masr_format {config.get('masr_format')!r} is not {FORMAT} (not a masr model "
                        "folder, or written by another masr version)")
    task = config.get("task")
    if task not in TASKS:
        raise PackError(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    encoder = config.get("encoder")
    name = encoder.get("class") if isinstance(encoder, dict) else None
    if name not in ENCODER_CLASSES:
        raise PackError(f"{where}: encoder class {name!r} is not one of masr's encoders ({', '.join(ENCODER_CLASSES)})")
    if not isinstance(encoder.get("hparams"), dict):
        raise PackError(f"{where}: encoder hparams must be a mapping")
    fbank = config.get("fbank")
    fields = {f.name for f in dataclasses.fields(FbankConfig)}
    if not isinstance(fbank, dict) or set(fbank) - fields or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in fbank.values()):
        raise PackError(f"{where}: fbank must be a mapping of numbers with keys among {', '.join(sorted(fields))}")
    layer = config.get("layer")
    if layer is not None and not (_is_int(layer) and layer >= 0):
        raise PackError(f"{where}: layer must be null or a non-negative integer")
    if config.get("weights", WEIGHTS_FILE) != WEIGHTS_FILE:
        raise PackError(f"{where}: weights must be {WEIGHTS_FILE!r}")
    _inside(folder, WEIGHTS_FILE, "weights")
    if task in ("langid", "asr"):
        if not _is_int(config.get("num_outputs")) or config["num_outputs"] < 1:
            raise PackError(f"{where}: num_outputs must be a positive integer")
        if config.get("pooled") is not (task == "langid"):
            raise PackError(f"{where}: pooled must be {task == 'langid'} for a {task} model")
    if task == "langid":
        labels = config.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) \
                or len(labels) != config["num_outputs"]:
            raise PackError(f"{where}: labels must be a list of num_outputs strings")
    if task == "asr":
        _inside(folder, config.get("tokenizer"), "tokenizer")
        if not _is_int(config.get("blank", 0)) or not isinstance(config.get("decoding", "greedy"), str):
            raise PackError(f"{where}: blank must be an integer and decoding a string")
    return config


def read_config(folder):
    """The validated ``config.json`` of a packed folder."""
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isfile(path):
        raise PackError(f"{path}: not found; is '{folder}' a packed masr model folder?")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackError(f"{path}: not JSON ({e})") from None
    return validate_config(config, folder)


def is_packed(path):
    """True for a folder holding a masr ``config.json`` (a packed model), not a run folder."""
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and not os.path.isfile(os.path.join(path, "model.json"))


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------

def load_model(folder):
    """(torch module in eval mode, config) of a packed folder (local).

    The module is a :class:`masr.downstream.finetune.FineTuneModel` (``langid``, ``asr``) or the
    SSL encoder (``embed``); ``config`` is the validated ``config.json``. Only JSON and
    safetensors are read.
    """
    from masr.ssl.encoder_file import encoder_from_spec

    config = read_config(folder)
    try:
        encoder = encoder_from_spec(config["encoder"])
    except (TypeError, ValueError) as e:
        raise PackError(f"{folder}/{CONFIG_FILE}: cannot build the encoder: {e}") from None
    if config["task"] == "embed":
        model = encoder
    else:
        from masr.downstream.finetune import FineTuneModel

        model = FineTuneModel(encoder, config["num_outputs"], config["pooled"], layer=config["layer"])
    state = load_weights(os.path.join(folder, WEIGHTS_FILE))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise PackError(f"{folder}/{WEIGHTS_FILE}: does not fit the model of {CONFIG_FILE}: "
                        f"{str(e).splitlines()[0]}") from None
    return model.eval(), config


def download(repo_id, revision=None, cache_dir=None, endpoint=None, token=None):
    """The local folder of a Hub repository, fetched with ``huggingface_hub.snapshot_download``
    (only :data:`DOWNLOAD_PATTERNS`); ``endpoint`` defaults to ``$HF_ENDPOINT`` or the Hub."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise PackError(f"{repo_id!r} is not a local folder, and huggingface_hub (needed to download a Hub "
                        "repository) is not installed: pip install huggingface_hub") from None
    return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=DOWNLOAD_PATTERNS,
                             endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)


def resolve(path_or_repo_id, revision=None, cache_dir=None, endpoint=None, token=None):
    """A local folder as is; otherwise ``<owner>/<name>`` downloaded from the Hub."""
    if os.path.isdir(path_or_repo_id):
        return path_or_repo_id
    if os.path.exists(path_or_repo_id) or not re.fullmatch(r"[\w.-]+/[\w.-]+", path_or_repo_id):
        raise PackError(f"{path_or_repo_id!r}: not a model folder, nor a Hub repository id (<owner>/<name>)")
    return download(path_or_repo_id, revision, cache_dir, endpoint, token)


def from_pretrained(path_or_repo_id, revision=None, cache_dir=None, endpoint=None, token=None, device="cpu"):
    """The :mod:`masr.infer` object of a packed model: a local folder or a Hub repository id.

    Arguments
    ---------
    path_or_repo_id : str
        A folder of :func:`save_pretrained`, or ``<owner>/<name>`` on the Hub.
    revision, cache_dir, token : passed to ``huggingface_hub.snapshot_download``.
    endpoint : str or None
        The Hub's URL (default: ``$HF_ENDPOINT``, else huggingface.co).

    Returns
    -------
    masr.infer.LanguageIdentifier, masr.infer.Transcriber or masr.infer.Embedder
        By the folder's task; each keeps the torch module (``.model``, or ``.encoder`` for an
        Embedder) and the config (``.spec``). For the bare module use :func:`load_model`.
    """
    from masr import infer

    folder = resolve(path_or_repo_id, revision, cache_dir, endpoint, token)
    task = read_config(folder)["task"]
    if task == "embed":
        return infer.Embedder(folder, device=device)
    return (infer.LanguageIdentifier if task == "langid" else infer.Transcriber)(folder, device)


# --------------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------------

def git_commit():
    """The commit of the masr checkout this code runs from, or None (not a checkout, no git)."""
    import masr
    from masr.utils.envlog import git_state

    sha, dirty = git_state(os.path.dirname(os.path.dirname(os.path.abspath(masr.__file__))))
    if sha == "unknown":
        return None
    return f"{sha} (with uncommitted changes)" if dirty.startswith("yes") else sha


def _step(checkpoint):
    """6 for ``.../step-00000006``; None if not a step folder name."""
    m = re.fullmatch(r"step-(\d+)", os.path.basename(os.path.normpath(str(checkpoint or ""))))
    return int(m.group(1)) if m else None


def _fbank_options(fbank_config):
    from masr.features.fbank import FbankConfig

    if isinstance(fbank_config, FbankConfig):
        return dataclasses.asdict(fbank_config)
    if fbank_config is None:
        return dataclasses.asdict(FbankConfig())
    if isinstance(fbank_config, dict):
        return dataclasses.asdict(FbankConfig(**fbank_config))
    import yaml

    with open(fbank_config, encoding="utf-8") as f:
        return dataclasses.asdict(FbankConfig(**(yaml.safe_load(f) or {})))


def _collect(source, fbank_config=None):
    """(module, config without provenance, extra files {name in folder: source path}, info) of a
    run folder, model folder or encoder file."""
    from masr.downstream import pretrained
    from masr.ssl.encoder_file import ENCODER_FILE, encoder_spec, read_encoder_file
    from masr.train.checkpoint import newest_checkpoint

    if os.path.isdir(source) and os.path.isfile(os.path.join(source, "model.json")):
        from masr.downstream.finetune import load_finetuned

        model, spec = load_finetuned(source)
        task = spec["task"]
        if task not in ("langid", "asr"):
            raise PackError(f"{source}/model.json: unknown task {task!r}")
        config = {"task": task, "encoder": encoder_spec(model.encoder), "num_outputs": spec["num_outputs"],
                  "pooled": spec["pooled"], "layer": spec["layer"],
                  "fbank": _fbank_options(spec["fbank"] if fbank_config is None else fbank_config)}
        files = {}
        if task == "langid":
            config["labels"] = list(spec["labels"])
        else:
            tokenizer = os.path.realpath(os.path.join(source, spec["tokenizer"]))
            if os.path.commonpath([tokenizer, os.path.realpath(source)]) != os.path.realpath(source):
                raise PackError(f"{source}/model.json: tokenizer {spec['tokenizer']!r} is outside the model folder")
            config.update(tokenizer=TOKENIZER_FILE, blank=spec.get("blank", 0), decoding=spec.get("decoding", "greedy"))
            files[TOKENIZER_FILE] = tokenizer
        checkpoint = spec["checkpoint"]
        return model, config, files, {"run": source, "checkpoint": os.path.basename(os.path.normpath(checkpoint)),
                                      "step": _step(checkpoint)}
    if os.path.isdir(source) and (os.path.isdir(os.path.join(source, "checkpoints"))
                                  or os.path.isfile(os.path.join(source, ENCODER_FILE))):
        checkpoint = newest_checkpoint(source)
        encoder = pretrained.encoder_from_run(source)
    elif os.path.isfile(source):
        encoder, checkpoint = read_encoder_file(source)
    elif os.path.isdir(source):
        raise PackError(f"{source}: neither a fine-tuned model folder (model.json), nor a pretraining run "
                        "(checkpoints/, encoder.pt), nor an encoder file")
    else:
        raise PackError(f"{source}: no such file or folder")
    fbank = _fbank_options(fbank_config)
    dim = encoder.cmvn.mean.numel()
    if dim != fbank["num_mel_bins"]:
        raise PackError(f"{source}: the encoder takes {dim}-dim features, the filterbank options give "
                        f"{fbank['num_mel_bins']} mel bins; pass the features stage's config (--fbank-config)")
    config = {"task": "embed", "encoder": encoder_spec(encoder), "layer": None, "fbank": fbank}
    return encoder, config, {}, {"run": source, "checkpoint": checkpoint and os.path.basename(os.path.normpath(checkpoint)),
                                 "step": _step(checkpoint)}


def save_pretrained(source, out_dir, fbank_config=None, layer=None, results=None, overwrite=False):
    """Pack a run into a Hub model folder (``config.json``, ``model.safetensors``, ``README.md``,
    ``tokenizer.model`` for ASR).

    Arguments
    ---------
    source : str
        A fine-tuned LangID/ASR model folder (``exp/<task>/<model>/seed<S>``: ``model.json``), a
        pretraining run folder (``exp/<run>``) or an encoder file (``encoder.pt``) of
        :func:`masr.ssl.encoder_file.save_encoder`: the last two give an ``embed`` model.
    out_dir : str
        Created (an existing non-empty folder only with ``overwrite``).
    fbank_config : str, dict, FbankConfig or None
        Filterbank options: for an encoder, default ``FbankConfig()`` (the recipes' 80 bins);
        a fine-tuned model keeps its own unless given.
    layer : int or None
        ``embed`` only: the encoder blocks the embeddings use (None: all).
    results : list of str or None
        More results files (JSON) for the model card; the run's own are found.

    Returns
    -------
    dict
        The ``config.json`` written.
    """
    import masr

    model, config, files, source_info = _collect(source, fbank_config)
    if layer is not None:
        if config["task"] != "embed":
            raise PackError("--layer is for encoders (embed); a fine-tuned model keeps its own layer")
        config["layer"] = layer
    config = {"masr_format": FORMAT, **config, "weights": WEIGHTS_FILE, "source": source_info,
              "masr_version": getattr(masr, "__version__", None), "git_commit": git_commit()}
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise PackError(f"{out_dir}: exists and is not empty (overwrite=True / --overwrite to replace it)")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".pack.")
    try:
        save_weights(model.state_dict(), os.path.join(tmp, WEIGHTS_FILE))
        for name, path in files.items():
            shutil.copyfile(path, os.path.join(tmp, name))
        with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=1, ensure_ascii=False)
            f.write("\n")
        validate_config(config, tmp)
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            f.write(model_card(config, source, results))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for name in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name), 0o666 & ~umask)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return config


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m masr.hub", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack a run into a Hugging Face Hub model folder")
    p.add_argument("source", help="a fine-tuned model folder (model.json), a pretraining run folder or an encoder.pt")
    p.add_argument("out_dir", help="the packed folder to write")
    p.add_argument("--fbank-config", help="filterbank options (YAML); encoders: default 80 bins, 16 kHz")
    p.add_argument("--layer", type=int, default=None, help="encoders: blocks the embeddings use (default: all)")
    p.add_argument("--results", action="append", default=[], help="another results.json for the model card")
    p.add_argument("--overwrite", action="store_true", help="replace an existing out_dir")
    args = parser.parse_args(argv)
    try:
        config = save_pretrained(args.source, args.out_dir, args.fbank_config, args.layer, args.results,
                                 args.overwrite)
    except (OSError, ValueError, TypeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"packed {config['task']} model {args.source} -> {args.out_dir} "
          f"({', '.join(sorted(os.listdir(args.out_dir)))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
