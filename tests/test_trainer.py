"""masr.train.trainer: exact resume, scheduler stepping, checkpoints, initialisation."""

import os

import pytest
import torch

from masr.train.checkpoint import list_checkpoints
from masr.train.pretrain import build_pretrain_trainer
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import trainer_config as config


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_dump_dir(str(tmp_path_factory.mktemp("dump")), num_utts=24)


class Killed(Exception):
    """Stands for the process being killed mid-run."""


def test_killed_and_resumed_run_equals_straight_run(dump, tmp_path):
    straight = build_pretrain_trainer(config(dump, str(tmp_path / "a")))
    straight.fit()

    run = build_pretrain_trainer(config(dump, str(tmp_path / "b")))
    step_fn, calls = run.step_fn, []

    def dying_step(model, batch):  # the process dies during step 6, after the step-4 checkpoint
        calls.append(1)
        if len(calls) == 5 * 2 + 1:
            raise Killed
        return step_fn(model, batch)

    run.step_fn = dying_step
    with pytest.raises(Killed):
        run.fit()
    assert [s for s, _ in list_checkpoints(str(tmp_path / "b" / "checkpoints"))] == [4]

    resumed = build_pretrain_trainer(config(dump, str(tmp_path / "b")))  # a new process: fresh model and RNG
    resumed.fit()
    assert resumed.step == straight.step == 8
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    log = (tmp_path / "b" / "train_log.txt").read_text()
    assert "resumed from" in log and "step-00000004" in log


def test_scheduler_is_stepped_once_per_optimizer_step(dump, tmp_path):
    trainer = build_pretrain_trainer(config(dump, str(tmp_path), max_steps=6, grad_accum=2, warmup_steps=3, decay="linear",
                                   min_lr_ratio=0.0))
    seen = []
    step = trainer.optimizer.step

    def record(*a, **k):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*a, **k)

    trainer.optimizer.step = record
    trainer.fit()
    base = 3e-3
    expected = [base / 3, base * 2 / 3, base, base, base * 2 / 3, base / 3]  # warmup 3, linear decay to step 6
    assert seen == pytest.approx(expected)


def test_keeps_the_last_k_checkpoints_and_ignores_unfinished_ones(dump, tmp_path):
    os.makedirs(tmp_path / "checkpoints" / "step-00000099.tmp")  # a save interrupted earlier
    trainer = build_pretrain_trainer(config(dump, str(tmp_path), max_steps=12, checkpoint_every=2, keep_checkpoints=2))
    trainer.fit()
    assert [s for s, _ in list_checkpoints(str(tmp_path / "checkpoints"))] == [10, 12]
    state = torch.load(tmp_path / "checkpoints" / "step-00000012" / "state.pt", weights_only=False)
    assert set(state) == {"model", "optimizer", "scheduler", "trainer"}
    assert state["trainer"]["step"] == 12
    assert os.path.isfile(tmp_path / "checkpoints" / "step-00000012" / "rng.rank0.pt")


def test_logs_and_tensorboard(dump, tmp_path):
    trainer = build_pretrain_trainer(config(dump, str(tmp_path), max_steps=4))
    last = trainer.fit()
    for key in ("loss", "accuracy", "lr", "frames_per_second", "audio_seconds_per_second", "grad_norm"):
        assert key in last
    log = (tmp_path / "train_log.txt").read_text()
    assert "step 2 | epoch" in log and "step 4 | epoch" in log and "saved" in log
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard"))


def test_init_from_another_run_reports_new_parameters(dump, tmp_path):
    build_pretrain_trainer(config(dump, str(tmp_path / "base"), max_steps=4)).fit()
    trained = torch.load(tmp_path / "base" / "checkpoints" / "step-00000004" / "state.pt", weights_only=False)["model"]
    c = config(dump, str(tmp_path / "cont"), max_steps=1, init_from=str(tmp_path / "base" / "checkpoints" / "step-00000004"))
    c["model"].extra_head = torch.nn.Linear(32, 3)  # e.g. a MASR projection the base run lacks
    trainer = build_pretrain_trainer(c)
    trainer._resume_or_init()
    assert torch.equal(trainer.model.state_dict()["head.weight"], trained["head.weight"])
    log = (tmp_path / "cont" / "train_log.txt").read_text()
    assert "initialised from" in log and "extra_head.weight" in log


def test_precision_choices(dump, tmp_path):
    with pytest.raises(ValueError, match="bf16 autocast is for CUDA"):
        build_pretrain_trainer(config(dump, str(tmp_path), precision="bf16"))
    assert build_pretrain_trainer(config(dump, str(tmp_path), precision="auto")).autocast_dtype is None
