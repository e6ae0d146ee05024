"""The SSL pretraining stage: any ``masr.ssl`` model, trained from a HyperPyYAML config.

Usage (one process, or one per GPU / CPU process with torchrun)::

    python -m masr.train.pretrain conf/pretrain_bestrq.yaml \\
        --train_dir dump/pretrain --valid_dir dump/dev --exp_dir exp/pretrain_bestrq
    torchrun --nproc_per_node=4 -m masr.train.pretrain conf/pretrain_bestrq_paper.yaml ...

Every key of the config can be overridden on the command line (``--max_steps 200``). The config
names the model (``model: !new:masr.ssl.bestrq.BestRQ``) and the optimisation settings; see
``egs/mini/conf/pretrain_bestrq.yaml`` for the keys. ``init_from`` starts from another run's
checkpoint (the paper continues MASR from a BEST-RQ checkpoint). Running the same command again
resumes from the newest checkpoint in ``exp_dir``. ``weighted_sampling: true`` draws the training
utterances with the per corpus/language weights of a pretraining mix (``weights.tsv`` of
``masr.corpora.mix``) instead of once each per epoch. ``sharded: true`` (features extracted with
``--shard-utts N``) makes each DDP rank read only its own shards of the features
(``masr.data.shards``; ``shard_buffer``: shards batched together, default 4): for multi-node
jobs on large corpora.
"""

import contextlib
import functools
import os
import random
import sys

import numpy as np
import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.data.sampler import DynamicBucketBatchSampler
from masr.data.shards import ShardedBatchSampler, shard_of_items
from masr.data.datadir import DataDirError
from masr.train import distributed
from masr.train.checkpoint import CheckpointError
from masr.train.lock import ExpDirLocked, exp_dir_lock
from masr.train.schedule import WarmupDecay
from masr.train.trainer import Trainer, TrainingError
from masr.utils.config import make_parser, parse_arguments
from masr.utils.envlog import write_env_log
from masr.utils.fileio import atomic_open


def metadata_streams(model):
    """Streams a model needs from the data (``masr.model.MASR``); none for a plain SSL model."""
    model = model.module if hasattr(model, "module") else model
    return list(getattr(model, "metadata_streams", []))


def ssl_step(model, batch):
    """The pretraining objective on one batch: the model's loss (SSL, plus MASR's streams)."""
    streams = metadata_streams(model)
    if streams:
        out = model(batch["feats"], batch["lengths"], metadata={s: batch[s] for s in streams})
    else:
        out = model(batch["feats"], batch["lengths"])
    return out.loss, out.metrics


def compile_model(model, config):
    """``compile: true``: compile the SSL model's forward (encoder, prediction head, loss) in place
    with :func:`torch.compile` (``compile_mode``: its ``mode``, default None). MASR's stream heads
    stay eager: they turn label strings into ids, which a compiled graph would guard on (one
    recompilation per batch), and cost little (``benchmarks/triplet_mining.py``). In place, so
    parameter names and checkpoints are those of the eager model.

    The encoder graph is compiled once per padded length (measured on CPU with torch 2.11: a
    guard on heads x output frames, from AOTAutograd, for either attention), so ``pad_multiple``
    bounds the compilations to ``max_frames / pad_multiple`` lengths; torch's recompile limit is
    raised to that number, above which torch would run new lengths eagerly."""
    if config.get("compile", False):
        import torch._dynamo

        lengths = -(-(config.get("max_frames") or 3000) // max(1, config.get("pad_multiple") or 1)) + 1
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, lengths)
        getattr(model, "ssl", model).compile(mode=config.get("compile_mode"))
    return model


def compiled_graphs():
    """Graphs ``torch.compile`` has built in this process (compilations and recompilations)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def seed_everything(seed):
    """Seed Python's, NumPy's and PyTorch's generators (``torch.manual_seed`` seeds every CUDA
    device too). Kept rather than ``speechbrain.utils.seed.seed_everything``, which does the same
    and also logs and sets ``SB_GLOBAL_SEED``: the configs call this one (``__set_seed``), and a
    resumed run restores the generators' states from its checkpoint instead of reseeding."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_valid_fn(config, device):
    """Mean loss (SSL, plus MASR's stream losses) and metrics over up to ``valid_batches`` validation
    batches (the same batches and masks every time)."""
    if not config.get("valid_dir"):
        return None
    dataset = FeatsDataset(config["valid_dir"], streams=metadata_streams(config["model"]),
                           max_frames=config.get("max_frames"))
    # a fixed shuffle: the same validation batches every time, not only the shortest utterances
    sampler = DynamicBucketBatchSampler(dataset.num_frames, config["max_batch_frames"], seed=config.get("seed", 0))
    limit = config.get("valid_batches", 20)

    def valid_fn(model):
        torch.manual_seed(config.get("seed", 0))
        sums, count = {}, 0
        sampler.load_state_dict({"epoch": 0, "batches_done": 0})
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_feats)
        for i, batch in enumerate(loader):
            if i == limit:
                break
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss, metrics = ssl_step(model, batch)
            for key, value in {"loss": loss, **metrics}.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}

    return valid_fn


def build_trainer(config, rank=0, world_size=1, device=None):
    """Everything the pretraining run needs, from a loaded config."""
    device = device or torch.device("cpu")
    seed_everything(config["seed"] + rank)
    model = config["model"]
    dataset = FeatsDataset(config["train_dir"], streams=metadata_streams(model), max_frames=config.get("max_frames"))
    weights = None
    if config.get("weighted_sampling", False):
        # a pretraining mix (masr.corpora.mix): draw corpora/languages with the weights of weights.tsv
        from masr.corpora.mix import utterance_weights

        by_utt = utterance_weights(config["train_dir"])
        weights = [by_utt[utt] for utt in dataset.utt_ids]
    batching = dict(num_buckets=config.get("num_buckets", 10), seed=config["seed"], rank=rank,
                    world_size=world_size, drop_last=False, weights=weights)
    if config.get("sharded", False):
        # each rank reads only its own shards of the features (masr.data.shards)
        sampler = ShardedBatchSampler(shard_of_items(dataset), dataset.num_frames, config["max_batch_frames"],
                                      shard_buffer=config.get("shard_buffer", 4), **batching)
    else:
        sampler = DynamicBucketBatchSampler(dataset.num_frames, config["max_batch_frames"], **batching)
    # fused AdamW (one kernel for all parameters) on a GPU; torch's default (foreach) elsewhere
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], betas=tuple(config.get("betas", (0.9, 0.98))),
                                  weight_decay=config.get("weight_decay", 0.01), fused=device.type == "cuda" or None)
    compile_model(model, config)
    collate = collate_feats
    if config.get("pad_multiple", 1) > 1:
        collate = functools.partial(collate_feats, pad_multiple=config["pad_multiple"])
    scheduler = WarmupDecay(optimizer, config["warmup_steps"], config["max_steps"],
                            decay=config.get("decay", "cosine"), min_ratio=config.get("min_lr_ratio", 0.0))
    return Trainer(
        model, optimizer, scheduler, dataset, sampler, collate, ssl_step, config["exp_dir"],
        max_steps=config["max_steps"], grad_accum=config.get("grad_accum", 1),
        clip_grad_norm=config.get("clip_grad_norm", 5.0), checkpoint_every=config.get("checkpoint_every", 500),
        keep_checkpoints=config.get("keep_checkpoints", 3), keep_steps=config.get("keep_steps", ()),
        log_every=config.get("log_every", 10),
        precision=config.get("precision", "auto"), device=device, rank=rank, world_size=world_size,
        num_workers=config.get("num_workers", 0), valid_fn=make_valid_fn(config, device),
        valid_every=config.get("valid_every", 0), init_from=config.get("init_from"),
        progress=config.get("progress", True), max_nonfinite_steps=config.get("max_nonfinite_steps", 0),
        allow_inexact_resume=config.get("allow_inexact_resume", False),
    )


#: Overrides that may change when a run is resumed: they do not change what is trained.
RESUMABLE_KEYS = {"exp_dir",  # a run folder that was moved or copied resumes where it now is
                  "progress", "log_every", "valid_every", "valid_batches", "checkpoint_every",
                  "keep_checkpoints", "keep_steps", "num_workers", "cpu_threads",
                  "compile", "compile_mode",  # the same model and updates, compiled or not
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
    (``--device auto``: CUDA if available), set the CPU threads (``cpu_threads``), join the DDP
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
    if device_type == "cpu":
        torch.set_num_threads(config.get("cpu_threads", torch.get_num_threads()))
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


def export_encoder(trainer):
    """``<exp_dir>/encoder.pt``: the SSL encoder of the newest checkpoint in one self-contained file,
    which downstream stages and ``masr.infer`` read from any folder."""
    from masr.downstream.pretrained import ENCODER_FILE, newest_checkpoint, save_encoder, unwrap_ssl

    save_encoder(unwrap_ssl(trainer._unwrapped()).cpu(), os.path.join(trainer.exp_dir, ENCODER_FILE),
                 checkpoint=newest_checkpoint(trainer.exp_dir))


def main(argv=None):
    parser = add_training_arguments(
        make_parser("Self-supervised pretraining (BEST-RQ, w2v-BERT, ...) from a HyperPyYAML config."))
    args, config = parse_arguments(parser, argv)
    try:
        with training_run(args, config, argv) as (rank, world, device):
            trainer = build_trainer(config, rank, world, device)
            last = trainer.fit()
            if config.get("compile", False):
                trainer._log_line(f"torch.compile built {compiled_graphs()} graph(s) in this run")
            if rank == 0:
                export_encoder(trainer)
    except RunConfigMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TRAINING_ERRORS as e:
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 1
    if rank == 0 and last:
        print("final: " + " | ".join(f"{k} {v:.4g}" for k, v in last.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
