"""Pretraining from audio shards with filterbanks on the fly (masr.train.inputs): exact resume with
weighted sampling, 2-process DDP with sharded reading, batched filterbanks equal to the workers'."""

import json
import os

import pytest
import torch
import torch.multiprocessing as mp

from masr.data.datadir import DataDirError, read_kaldi_map
from masr.train import distributed
from masr.train.checkpoint import list_checkpoints
from masr.train.inputs import check_input_settings, pretraining_input
from masr.train.pretrain import build_pretrain_trainer, ssl_step
from tests.helpers.ddp import free_port, join_cpu_group
from tests.helpers.dumps import make_audio_dump_dir, make_dump_dir
from tests.helpers.runs import trainer_config

WEIGHTS = {("cv", "hrv"): 0.6, ("cv", "srp"): 0.3, ("cv", "swe"): 0.1}


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_audio_dump_dir(str(tmp_path_factory.mktemp("audio") / "dump"), num_utts=24, shard_utts=3,
                               weights=WEIGHTS)


def config(dump, exp_dir, **kw):
    return trainer_config(dump, exp_dir, **{"feature_source": "audio_shards", "weighted_sampling": True, **kw})


class Killed(Exception):
    """Stands for the process being killed mid-run."""


def test_killed_and_resumed_run_equals_straight_run(dump, tmp_path):
    straight = build_pretrain_trainer(config(dump, str(tmp_path / "a")))
    straight.fit()
    run = build_pretrain_trainer(config(dump, str(tmp_path / "b")))
    step_fn, calls = run.step_fn, []

    def dying_step(model, batch):  # dies during step 6, after the step-4 checkpoint
        calls.append(batch["utt"])
        if len(calls) == 5 * 2 + 1:
            raise Killed
        return step_fn(model, batch)

    run.step_fn = dying_step
    with pytest.raises(Killed):
        run.fit()
    assert [s for s, _ in list_checkpoints(str(tmp_path / "b" / "checkpoints"))] == [4]
    resumed = build_pretrain_trainer(config(dump, str(tmp_path / "b")))  # fresh model, RNG and sampler
    seen, resumed_step = [], resumed.step_fn
    resumed.step_fn = lambda model, batch: (seen.append(batch["utt"]), resumed_step(model, batch))[1]
    resumed.fit()
    assert resumed.step == straight.step == 8
    assert seen[:2] == calls[8:10]  # the weighted sampler went on with the batches of step 5
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_weighted_sampling_draws_the_mix_weights(dump, tmp_path):
    trainer = build_pretrain_trainer(config(dump, str(tmp_path)))
    langs = read_kaldi_map(os.path.join(dump, "utt2lang"))
    counts = {lang: sum(v == lang for v in langs.values()) for lang in ("hrv", "srp", "swe")}
    by_utt = dict(zip(trainer.dataset.utt_ids, trainer.sampler.weights))
    for utt, weight in by_utt.items():
        assert weight == pytest.approx(WEIGHTS["cv", langs[utt]] / counts[langs[utt]])


def test_batched_filterbanks_give_the_same_step_as_the_workers(dump):
    """fbank_device: cuda computes the filterbanks of the padded batch in one go on the device (here
    the CPU stands in for it); the loss equals that of the per-utterance filterbanks."""
    model = trainer_config(dump, "unused")["model"].eval()
    workers, collate_w, none = pretraining_input(dump, [], "audio_shards", "cpu", None, pad_multiple=8)
    waves, collate_b, featurize = pretraining_input(dump, [], "audio_shards", "cuda", None, pad_multiple=8)
    assert none is None and featurize is not None
    indices = [0, 5, 9, 17]
    a = collate_w([workers[i] for i in indices])
    b = featurize(collate_b([waves[i] for i in indices]))
    assert torch.equal(a["lengths"], b["lengths"]) and a["feats"].shape == b["feats"].shape
    assert (a["feats"] - b["feats"]).abs().max() < 1e-4
    torch.manual_seed(0)
    loss_a, _ = ssl_step(model, a)
    torch.manual_seed(0)
    loss_b, _ = ssl_step(model, collate_b([waves[i] for i in indices]), featurize=featurize)
    assert torch.allclose(loss_a, loss_b, atol=1e-5)


def test_settings_are_checked_and_a_mismatched_dump_is_named(dump, tmp_path):
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="feature_source must be one of"):
        check_input_settings("flac", "cpu", cpu)
    with pytest.raises(ValueError, match="fbank_device: cuda, but training runs on cpu"):
        check_input_settings("audio_shards", "cuda", cpu)
    with pytest.raises(ValueError, match="needs feature_source: audio_shards"):
        check_input_settings("feats", "cuda", torch.device("cuda"))
    with pytest.raises(DataDirError, match="no 'feats.scp' but 'audio.scp': it holds audio shards"):
        build_pretrain_trainer(config(dump, str(tmp_path / "x"), feature_source="feats"))
    feats = make_dump_dir(str(tmp_path / "feats"), num_utts=6)
    with pytest.raises(DataDirError, match="no 'audio.scp' but 'feats.scp': it holds stored features"):
        pretraining_input(feats, [], "audio_shards", "cpu", None)


def _sharded_worker(rank, world, port, dump, exp_dir, out_dir):
    rank, world, device = join_cpu_group(rank, world, port)
    trainer = build_pretrain_trainer(config(dump, exp_dir, max_steps=6, grad_accum=1, sharded=True,
                                            checkpoint_every=3), rank, world, device)
    seen, step_fn = [], trainer.step_fn

    def recording_step(model, batch):
        seen.append([trainer.epoch, batch["utt"]])
        return step_fn(model, batch)

    trainer.step_fn = recording_step
    trainer.fit()
    torch.save(trainer._unwrapped().state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)
    distributed.cleanup()


@pytest.mark.slow
def test_sharded_ddp_ranks_read_only_their_own_audio_shards(dump, tmp_path):
    mp.spawn(_sharded_worker, args=(2, free_port(), dump, str(tmp_path / "exp"), str(tmp_path)), nprocs=2,
             join=True)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 6
    tar_of = {u: e.rsplit(":", 1)[0] for u, e in read_kaldi_map(os.path.join(dump, "audio.scp")).items()}
    for epoch in {epoch for s in seen for epoch, _ in s}:
        tars = [{tar_of[u] for e, utts in s if e == epoch for u in utts} for s in seen]
        assert tars[0] and tars[1] and not tars[0] & tars[1], epoch   # no tar shard read by both ranks
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for key in a:
        assert torch.equal(a[key], b[key]), key   # gradients were averaged: identical weights


def test_dataloader_workers_compute_the_same_batches(dump, tmp_path):
    """num_workers > 0: the filterbanks are computed in worker processes; the run is the same."""
    one = build_pretrain_trainer(config(dump, str(tmp_path / "a"), max_steps=2))
    one.fit()
    two = build_pretrain_trainer(config(dump, str(tmp_path / "b"), max_steps=2, num_workers=2))
    two.fit()
    for key, value in one.model.state_dict().items():
        assert torch.allclose(value, two.model.state_dict()[key], atol=1e-6), key

