"""Two-process DDP pretraining on CPU (gloo): ranks see different data, end with identical weights."""

import json
import os

import torch
import torch.multiprocessing as mp

from masr.train import distributed
from masr.train.pretrain import build_pretrain_trainer
from tests.helpers.ddp import free_port, join_cpu_group
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import trainer_config as config


def _worker(rank, world, port, dump, exp_dir, out_dir):
    rank, world, device = join_cpu_group(rank, world, port)
    trainer = build_pretrain_trainer(config(dump, exp_dir, max_steps=4, grad_accum=2, checkpoint_every=2), rank, world, device)
    seen, step_fn = [], trainer.step_fn

    def recording_step(model, batch):
        seen.append(batch["utt"])
        return step_fn(model, batch)

    trainer.step_fn = recording_step
    trainer.fit()
    torch.save(trainer._unwrapped().state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)
    distributed.cleanup()


def test_two_gloo_processes(tmp_path):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=32)
    mp.spawn(_worker, args=(2, free_port(), dump, str(tmp_path / "exp"), str(tmp_path)), nprocs=2, join=True)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 4 * 2  # same number of micro-batches on both ranks
    utts = [{u for batch in s for u in batch} for s in seen]
    first_epoch = [set(u for b in s[:3] for u in b) for s in seen]
    assert not (first_epoch[0] & first_epoch[1])  # different data within an epoch
    assert utts[0] != utts[1]
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for key in a:
        assert torch.equal(a[key], b[key]), key  # gradients were averaged: identical weights
    init = config(dump, str(tmp_path / "x"))["model"].state_dict()
    assert not torch.equal(a["head.weight"], init["head.weight"])  # and they did train
    assert (tmp_path / "exp" / "checkpoints" / "step-00000004" / "rng.rank1.pt").exists()


def _sharded_worker(rank, world, port, dump, exp_dir, out_dir):
    rank, world, device = join_cpu_group(rank, world, port)
    trainer = build_pretrain_trainer(config(dump, exp_dir, max_steps=6, grad_accum=1, sharded=True), rank, world, device)
    seen, step_fn = [], trainer.step_fn

    def recording_step(model, batch):
        seen.append([trainer.epoch, batch["utt"]])
        return step_fn(model, batch)

    trainer.step_fn = recording_step
    trainer.fit()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)
    distributed.cleanup()


def test_sharded_ranks_read_only_their_own_shards(tmp_path):
    from masr.data.datadir import read_kaldi_map

    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=32, shard_utts=4)   # 8 shards
    mp.spawn(_sharded_worker, args=(2, free_port(), dump, str(tmp_path / "exp"), str(tmp_path)), nprocs=2,
             join=True)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 6
    ark_of = {u: e.rsplit(":", 1)[0] for u, e in read_kaldi_map(f"{dump}/feats.scp").items()}
    epochs = {epoch for s in seen for epoch, _ in s}
    for epoch in epochs:
        arks = [{ark_of[u] for e, utts in s if e == epoch for u in utts} for s in seen]
        assert arks[0] and arks[1] and not arks[0] & arks[1], epoch   # no ark read by both ranks


def _resume_worker(rank, world, port, dump, exp_dir, out_dir, max_steps):
    rank, world, device = join_cpu_group(rank, world, port)
    trainer = build_pretrain_trainer(config(dump, exp_dir, max_steps=max_steps, grad_accum=1, checkpoint_every=2,
                                   keep_checkpoints=5), rank, world, device)
    trainer.fit()
    torch.save(trainer._unwrapped().state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    distributed.cleanup()


def test_ranks_agree_on_the_checkpoint_when_one_cannot_read_the_newest(tmp_path):
    """A checkpoint without a manifest (written before manifests) whose RNG file of rank 1 is
    damaged: rank 1 alone would fall back to step 2 while rank 0 takes step 4 (then they would wait
    for each other forever). They agree on step 2 and train on together."""
    dump, exp = make_dump_dir(str(tmp_path / "dump"), num_utts=32), str(tmp_path / "exp")
    mp.spawn(_resume_worker, args=(2, free_port(), dump, exp, str(tmp_path), 4), nprocs=2, join=True)
    newest = os.path.join(exp, "checkpoints", "step-00000004")
    os.remove(os.path.join(newest, "manifest.json"))
    with open(os.path.join(newest, "rng.rank1.pt"), "wb") as f:
        f.write(b"not a torch file")
    mp.spawn(_resume_worker, args=(2, free_port(), dump, exp, str(tmp_path), 6), nprocs=2, join=True)
    log = open(os.path.join(exp, "train_log.txt")).read()
    assert "resumed from " + os.path.join(exp, "checkpoints", "step-00000002") in log
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for key in a:
        assert torch.equal(a[key], b[key]), key
