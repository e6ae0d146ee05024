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

import functools
import os
import sys

import torch

from masr.data.sampler import DynamicBucketBatchSampler
from masr.data.shards import ShardedBatchSampler, shard_of_items
from masr.ssl.encoder_file import ENCODER_FILE, save_encoder, unwrap_ssl
from masr.train.checkpoint import newest_checkpoint
from masr.train.inputs import check_input_settings, pretraining_input
from masr.train.run import (  # seed_everything: also what run folders' config.yaml written before run.py name
    TRAINING_ERRORS,
    RunConfigMismatch,
    add_training_arguments,
    error_text,
    seed_everything,
    training_run,
)
from masr.train.trainer import Trainer
from masr.utils.config import check_config_keys, make_parser, parse_arguments


#: Every key :func:`build_pretrain_trainer` and the run frame read: each is declared in the YAML
#: (no Python-side defaults). Keys a YAML uses only through ``!ref`` (``lr``, ``warmup_steps``,
#: ...) are read there. ``allow_inexact_resume`` comes from the command line.
CONFIG_KEYS = (
    "seed", "model", "train_dir", "valid_dir", "exp_dir", "init_from", "feature_source", "fbank_device",
    "max_batch_frames", "num_buckets", "max_frames", "num_workers", "weighted_sampling", "sharded", "shard_buffer",
    "max_steps", "grad_accum", "optimizer", "scheduler", "clip_grad_norm", "max_nonfinite_steps", "precision",
    "cpu_threads", "compile", "pad_multiple", "compile_mode",
    "log_every", "progress", "valid_every", "valid_batches", "checkpoint_every", "keep_checkpoints", "keep_steps",
)


def metadata_streams(model):
    """Streams a model needs from the data (``masr.model.MASR``); none for a plain SSL model."""
    model = model.module if hasattr(model, "module") else model
    return list(getattr(model, "metadata_streams", []))


def ssl_step(model, batch, featurize=None):
    """The pretraining objective on one batch: the model's loss (SSL, plus MASR's streams).
    ``featurize`` (:class:`masr.train.inputs.OnDeviceFbank`) first turns a batch of waveforms into
    filterbanks on the batch's device (``fbank_device: cuda``)."""
    if featurize is not None:
        batch = featurize(batch)
    streams = metadata_streams(model)
    if streams:
        out = model(batch["feats"], batch["lengths"], metadata={s: batch[s] for s in streams})
    else:
        out = model(batch["feats"], batch["lengths"])
    return out.loss, out.metrics


def compile_model(model, max_frames=None, pad_multiple=1, mode=None):
    """Compile the SSL model's forward (encoder, prediction head, loss) in place with
    :func:`torch.compile` (``mode``: its mode; None: torch's default); ``compile: true`` in a
    pretraining config. MASR's stream heads stay eager: they turn label strings into ids, which a
    compiled graph would guard on (one recompilation per batch), and cost little
    (``benchmarks/triplet_mining.py``). In place, so parameter names and checkpoints are those of
    the eager model.

    The encoder graph is compiled once per padded length (measured on CPU with torch 2.11: a
    guard on heads x output frames, from AOTAutograd, for either attention), so ``pad_multiple``
    bounds the compilations to ``max_frames / pad_multiple`` lengths (``max_frames`` None: 3000);
    torch's recompile limit is raised to that number, above which torch would run new lengths
    eagerly."""
    import torch._dynamo

    lengths = -(-(max_frames or 3000) // max(1, pad_multiple or 1)) + 1
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, lengths)
    getattr(model, "ssl", model).compile(mode=mode)
    return model


def compiled_graphs():
    """Graphs ``torch.compile`` has built in this process (compilations and recompilations)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def make_valid_fn(config, device):
    """Mean loss (SSL, plus MASR's stream losses) and metrics over up to ``valid_batches`` validation
    batches (the same batches and masks every time)."""
    if not config["valid_dir"]:
        return None
    dataset, collate, featurize = pretraining_input(
        config["valid_dir"], metadata_streams(config["model"]), config["feature_source"], config["fbank_device"],
        config["max_frames"], config["pad_multiple"])
    step = functools.partial(ssl_step, featurize=featurize.to(device) if featurize is not None else None)
    # a fixed shuffle: the same validation batches every time, not only the shortest utterances
    sampler = DynamicBucketBatchSampler(dataset.num_frames, config["max_batch_frames"], seed=config["seed"])
    limit = config["valid_batches"]

    def valid_fn(model):
        torch.manual_seed(config["seed"])
        sums, count = {}, 0
        sampler.load_state_dict({"epoch": 0, "batches_done": 0})
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
        for i, batch in enumerate(loader):
            if i == limit:
                break
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss, metrics = step(model, batch)
            for key, value in {"loss": loss, **metrics}.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}

    return valid_fn


def build_pretrain_trainer(config, rank=0, world_size=1, device=None):
    """Everything the pretraining run needs, from a loaded config (every key of :data:`CONFIG_KEYS`)."""
    check_config_keys(config, CONFIG_KEYS)
    device = device or torch.device("cpu")
    check_input_settings(config["feature_source"], config["fbank_device"], device)
    seed_everything(config["seed"] + rank)
    model = config["model"]
    dataset, collate, featurize = pretraining_input(
        config["train_dir"], metadata_streams(model), config["feature_source"], config["fbank_device"],
        config["max_frames"], config["pad_multiple"])
    step_fn = functools.partial(ssl_step, featurize=featurize.to(device) if featurize is not None else None)
    weights = None
    if config["weighted_sampling"]:
        # a pretraining mix (masr.corpora.mix): draw corpora/languages with the weights of weights.tsv
        from masr.corpora.mix import utterance_weights

        by_utt = utterance_weights(config["train_dir"])
        weights = [by_utt[utt] for utt in dataset.utt_ids]
    batching = dict(num_buckets=config["num_buckets"], seed=config["seed"], rank=rank,
                    world_size=world_size, drop_last=False, weights=weights)
    if config["sharded"]:
        # each rank reads only its own shards of the features (masr.data.shards)
        sampler = ShardedBatchSampler(shard_of_items(dataset), dataset.num_frames, config["max_batch_frames"],
                                      shard_buffer=config["shard_buffer"], **batching)
    else:
        sampler = DynamicBucketBatchSampler(dataset.num_frames, config["max_batch_frames"], **batching)
    # fused AdamW (one kernel for all parameters) on a GPU; torch's default (foreach) elsewhere
    optimizer = config["optimizer"](model.parameters(), fused=device.type == "cuda" or None)
    scheduler = config["scheduler"](optimizer)
    if config["compile"]:
        compile_model(model, config["max_frames"], config["pad_multiple"], config["compile_mode"])
    return Trainer(
        model, optimizer, scheduler, dataset, sampler, collate, step_fn, config["exp_dir"],
        max_steps=config["max_steps"], grad_accum=config["grad_accum"], clip_grad_norm=config["clip_grad_norm"],
        checkpoint_every=config["checkpoint_every"], keep_checkpoints=config["keep_checkpoints"],
        keep_steps=config["keep_steps"], log_every=config["log_every"], precision=config["precision"],
        device=device, rank=rank, world_size=world_size, num_workers=config["num_workers"],
        valid_fn=make_valid_fn(config, device), valid_every=config["valid_every"], init_from=config["init_from"],
        progress=config["progress"], max_nonfinite_steps=config["max_nonfinite_steps"],
        allow_inexact_resume=config.get("allow_inexact_resume", False),  # --allow-inexact-resume (no YAML key)
    )


def export_encoder(trainer):
    """``<exp_dir>/encoder.pt``: the SSL encoder of the newest checkpoint in one self-contained file,
    which downstream stages and ``masr.infer`` read from any folder."""
    save_encoder(unwrap_ssl(trainer._unwrapped()).cpu(), os.path.join(trainer.exp_dir, ENCODER_FILE),
                 checkpoint=newest_checkpoint(trainer.exp_dir))


def main(argv=None):
    parser = add_training_arguments(
        make_parser("Self-supervised pretraining (BEST-RQ, w2v-BERT, ...) from a HyperPyYAML config."))
    args, config = parse_arguments(parser, argv, required=CONFIG_KEYS)
    try:
        with training_run(args, config, argv) as (rank, world, device):
            trainer = build_pretrain_trainer(config, rank, world, device)
            last = trainer.fit()
            if config["compile"]:
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
