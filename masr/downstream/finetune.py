"""What LangID and ASR fine-tuning share: the model around a pretrained encoder, the trainer,
checkpoint selection on dev, batched prediction, and the folder inference reads.

A fine-tuned model folder (``exp/langid/<model>/seed<S>``, ``exp/asr/...``) holds:

- ``checkpoints/step-N/``: the training checkpoints (``masr.train.checkpoint``);
- ``model.json``: the encoder's class and constructor arguments, the head, the labels or
  tokenizer, the filterbank options and the checkpoint selected on dev: everything
  :func:`load_finetuned` needs, with no reference to the recipe's data or pretraining run;
- ``config.yaml`` / ``overrides.yaml``: the run's settings;
- ``selection.tsv``: the dev score of every checkpoint; ``results.json``: the test results.

Training runs on the shared :class:`masr.train.trainer.Trainer` (resume, DDP, bf16 on GPU).
During the first ``freeze_encoder_steps`` steps only the head learns (the encoder is in eval mode
and gets no gradient): a frozen warm-up, so that a random head does not wreck the pretrained
encoder. The encoder then trains with its own learning rate (``encoder_lr``).
"""

import contextlib
import json
import os

import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.data.sampler import DynamicBucketBatchSampler
from masr.downstream.pretrained import encoder_from_run
from masr.ssl.encoder_file import encoder_from_spec, encoder_spec
from masr.train.checkpoint import list_checkpoints, load_checkpoint
from masr.train.trainer import Trainer
from masr.utils.config import check_config_keys
from masr.utils.fileio import atomic_open
from masr.utils.progress import progress


class FineTuneModel(torch.nn.Module):
    """A pretrained encoder with a linear head, on pooled (``pooled=True``) or frame outputs.

    Arguments
    ---------
    encoder : masr.ssl.base.SSLModel
    num_outputs : int
        Classes (LangID) or CTC output symbols (ASR, blank included).
    pooled : bool
        True: logits (B, C) of the masked mean of the frames; False: logits (B, T', C) per frame.
    layer : int or None
        Encoder blocks to use (None: all).
    freeze_encoder_steps : int
        Optimizer steps during which the encoder is frozen (told by the trainer: ``set_step``).
    dropout : float
        Dropout before the head.

    Example
    -------
    >>> from masr.ssl.bestrq import BestRQ
    >>> enc = BestRQ(input_dim=20, d_model=32, num_layers=2, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)
    >>> model = FineTuneModel(enc, num_outputs=5, pooled=True)
    >>> logits, lengths = model(torch.randn(3, 80, 20), torch.tensor([80, 60, 40]))
    >>> tuple(logits.shape), lengths.tolist()
    ((3, 5), [19, 14, 9])
    >>> model = FineTuneModel(enc, num_outputs=7, pooled=False, layer=1)
    >>> tuple(model(torch.randn(3, 80, 20), torch.tensor([80, 60, 40]))[0].shape)
    (3, 19, 7)
    """

    def __init__(self, encoder, num_outputs, pooled, layer=None, freeze_encoder_steps=0, dropout=0.1):
        super().__init__()
        self.encoder = encoder
        self.pooled, self.layer, self.freeze_encoder_steps = pooled, layer, freeze_encoder_steps
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.d_model, num_outputs)
        self.encoder_frozen = freeze_encoder_steps > 0

    def set_step(self, step):
        """Called by the trainer before each optimizer step."""
        self.encoder_frozen = step < self.freeze_encoder_steps

    def forward(self, feats, lengths):
        frozen = self.training and self.encoder_frozen
        if frozen:
            self.encoder.eval()
        elif self.training:
            self.encoder.train()
        with torch.no_grad() if frozen else contextlib.nullcontext():
            out = self.encoder.encode(feats, lengths, layer=self.layer)
            x = out.pooled() if self.pooled else out.frames
        return self.head(self.dropout(x)), out.lengths


def encoder_parameters(model):
    """(encoder parameters, the others): the two learning-rate groups."""
    enc = {id(p) for p in model.encoder.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if id(p) in enc], [p for p in params if id(p) not in enc]


class RandomCrop:
    """Collate with a random window of at most ``max_frames`` frames per utterance (training only;
    the RNG is torch's global one, restored on resume).

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> batch = RandomCrop(4)([{"utt": "a", "feats": torch.arange(10.).unsqueeze(1)}])
    >>> batch["lengths"].tolist(), batch["feats"].shape[1]
    ([4], 4)
    """

    def __init__(self, max_frames):
        self.max_frames = max_frames

    def __call__(self, items):
        if self.max_frames:
            cropped = []
            for item in items:
                extra = item["feats"].shape[0] - self.max_frames
                if extra > 0:
                    start = int(torch.randint(extra + 1, ()))
                    item = dict(item, feats=item["feats"][start:start + self.max_frames])
                cropped.append(item)
            items = cropped
        return collate_feats(items)


#: The keys :func:`build_finetune_trainer` reads (with the run frame's ``exp_dir`` and
#: ``cpu_threads``); each stage's ``CONFIG_KEYS`` adds its own.
TRAINER_KEYS = (
    "seed", "exp_dir", "cpu_threads", "max_batch_frames", "num_buckets", "crop_frames", "num_workers",
    "max_steps", "grad_accum", "lr", "encoder_lr", "optimizer", "scheduler", "clip_grad_norm",
    "max_nonfinite_steps", "precision", "log_every", "progress", "checkpoint_every", "keep_checkpoints",
)


def build_finetune_trainer(config, model, dataset, step_fn, rank=0, world_size=1, device=None):
    """The shared trainer for a fine-tuning ``config`` (keys: see ``egs/mini/conf/langid.yaml``):
    ``config["optimizer"]`` over two parameter groups (the encoder at ``encoder_lr``, the rest at
    ``lr``) and ``config["scheduler"]``, both declared in the YAML. No validation loss: the
    stages score every checkpoint on dev after training (:func:`score_checkpoints`)."""
    check_config_keys(config, TRAINER_KEYS)
    crop = config["crop_frames"]
    lengths = [min(n, crop) if crop else n for n in dataset.num_frames]
    sampler = DynamicBucketBatchSampler(lengths, config["max_batch_frames"], num_buckets=config["num_buckets"],
                                        seed=config["seed"], rank=rank, world_size=world_size)
    enc, rest = encoder_parameters(model)
    optimizer = config["optimizer"]([{"params": enc, "lr": config["encoder_lr"]}, {"params": rest, "lr": config["lr"]}])
    scheduler = config["scheduler"](optimizer)
    return Trainer(
        model, optimizer, scheduler, dataset, sampler, RandomCrop(crop), step_fn, config["exp_dir"],
        max_steps=config["max_steps"], grad_accum=config["grad_accum"], clip_grad_norm=config["clip_grad_norm"],
        checkpoint_every=config["checkpoint_every"], keep_checkpoints=config["keep_checkpoints"],
        log_every=config["log_every"], precision=config["precision"], device=device, rank=rank,
        world_size=world_size, num_workers=config["num_workers"], progress=config["progress"],
        find_unused_parameters=True, max_nonfinite_steps=config["max_nonfinite_steps"],
        allow_inexact_resume=config.get("allow_inexact_resume", False),  # --allow-inexact-resume (no YAML key)
    )


def pretrained_encoder(config):
    """The encoder named by ``config["pretrained"]`` (a pretraining run dir)."""
    return encoder_from_run(config["pretrained"])


@torch.no_grad()
def predict(model, dump_dir, batch_frames=20000, device=None, max_frames=None, show_progress=False, desc=None,
            leave=True):
    """Run ``model`` (in eval mode) over every utterance of a dump dir; ``show_progress``: a bar of
    the utterances done (:func:`masr.utils.progress.progress`: None on a terminal, rank 0).

    Returns
    -------
    list of (utt, logits, length)
        Per utterance, in utterance-id order: its logits (C,) or (T', C) on the CPU, and its
        number of valid output frames.
    """
    device = device or torch.device("cpu")
    dataset = FeatsDataset(dump_dir, max_frames=max_frames)
    sampler = DynamicBucketBatchSampler(dataset.num_frames, batch_frames, shuffle=False)
    was_training = model.training
    model.eval()
    out = {}
    with progress(total=len(dataset), desc=desc, unit="utt", enabled=show_progress, leave=leave) as bar:
        for indices in sampler:
            batch = collate_feats([dataset[i] for i in indices])
            logits, lengths = model(batch["feats"].to(device), batch["lengths"].to(device))
            for utt, x, n in zip(batch["utt"], logits.float().cpu(), lengths.cpu().tolist()):
                out[utt] = (x if model.pooled else x[:n], n)
            bar.update(len(indices))
    model.train(was_training)
    return [(utt, *out[utt]) for utt in sorted(out)]


def score_checkpoints(model, exp_dir, score_fn, higher_is_better=True, device=None):
    """Load each checkpoint of a run into ``model`` and score it on dev.

    Writes ``<exp_dir>/selection.tsv`` (step, dev score, ``*`` on the best: the highest, or the
    lowest when ``higher_is_better`` is False; ties go to the later step).

    Returns
    -------
    list of (step, checkpoint folder, score)
        In step order. ``model`` is left with the weights of the last checkpoint.
    """
    found = list_checkpoints(os.path.join(exp_dir, "checkpoints"))
    if not found:
        raise FileNotFoundError(f"{exp_dir}/checkpoints: no checkpoint to select from")
    scores = []
    for step, path in found:
        state, _ = load_checkpoint(path, map_location=device or "cpu")
        model.load_state_dict(state["model"])
        scores.append((step, path, float(score_fn(model))))
    best = best_checkpoint(scores, higher_is_better)
    with atomic_open(os.path.join(exp_dir, "selection.tsv")) as f:
        f.write("step\tdev_score\tselected\n")
        for step, _, score in scores:
            f.write(f"{step}\t{score:.6f}\t{'*' if step == best[0] else ''}\n")
    return scores


def best_checkpoint(scores, higher_is_better=True):
    """The (step, path, score) of ``scores`` with the best score; ties go to the later step.

    Example
    -------
    >>> best_checkpoint([(0, "a", 0.5), (10, "b", 0.7), (20, "c", 0.7)])
    (20, 'c', 0.7)
    >>> best_checkpoint([(0, "a", 0.5), (10, "b", 0.7)], higher_is_better=False)
    (0, 'a', 0.5)
    """
    sign = 1 if higher_is_better else -1
    return max(scores, key=lambda s: (sign * s[2], s[0]))


def load_weights(model, checkpoint, device=None):
    """Load the model weights of a checkpoint folder into ``model``."""
    state, _ = load_checkpoint(checkpoint, map_location=device or "cpu")
    model.load_state_dict(state["model"])


def select_checkpoint(model, exp_dir, score_fn, higher_is_better=True, device=None):
    """Load each checkpoint of a run into ``model``, score it on dev, keep the best.

    Ties go to the later step. Writes ``<exp_dir>/selection.tsv`` (step, score) and leaves the
    best weights in ``model``.

    Returns
    -------
    (step, checkpoint folder, score)
    """
    best = best_checkpoint(score_checkpoints(model, exp_dir, score_fn, higher_is_better, device), higher_is_better)
    load_weights(model, best[1], device)
    return best


def write_json(path, obj):
    """JSON, written atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def read_fbank_config(path):
    """The filterbank options of a recipe (plain YAML) as a dict, stored with the model."""
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def save_model_spec(exp_dir, model, task, checkpoint, fbank, **extra):
    """Write ``<exp_dir>/model.json``: what :func:`load_finetuned` needs to rebuild the model."""
    spec = {"task": task, "encoder": encoder_spec(model.encoder), "num_outputs": model.head.out_features,
            "pooled": model.pooled, "layer": model.layer,
            "checkpoint": os.path.relpath(checkpoint, exp_dir), "fbank": fbank, **extra}
    write_json(os.path.join(exp_dir, "model.json"), spec)


def load_finetuned(model_dir):
    """(model in eval mode, spec) of a fine-tuned model folder, weights of its selected checkpoint.

    Raises FileNotFoundError naming the folder when it holds no ``model.json`` (training not
    finished, or not a fine-tuned model).
    """
    spec_file = os.path.join(model_dir, "model.json")
    if not os.path.isfile(spec_file):
        raise FileNotFoundError(f"{spec_file}: not found; is '{model_dir}' a finished LangID/ASR fine-tuning run?")
    with open(spec_file, encoding="utf-8") as f:
        spec = json.load(f)
    model = FineTuneModel(encoder_from_spec(spec["encoder"]), spec["num_outputs"], spec["pooled"], layer=spec["layer"])
    checkpoint = os.path.realpath(os.path.join(model_dir, str(spec["checkpoint"])))
    if os.path.commonpath([checkpoint, os.path.realpath(model_dir)]) != os.path.realpath(model_dir):
        raise ValueError(f"{spec_file}: checkpoint {spec['checkpoint']!r} is outside the model folder")
    state, _ = load_checkpoint(checkpoint)
    model.load_state_dict(state["model"])
    return model.eval(), spec
