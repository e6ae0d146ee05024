"""masr.downstream.pretrained: the SSL encoder of a pretraining run, and one-file encoders."""

import os
import re

import pytest
import torch

from masr.downstream.pretrained import encoder_from_run, load_encoder
from masr.ssl.encoder_file import encoder_from_spec, encoder_spec, save_encoder, unwrap_ssl
from masr.train.checkpoint import newest_checkpoint
from masr.model import MASR
from masr.ssl.bestrq import BestRQ
from masr.train.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import make_pretrain_run


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_dump_dir(str(tmp_path_factory.mktemp("dump")), num_utts=16)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, dump):
    return make_pretrain_run(str(tmp_path_factory.mktemp("exp") / "tiny_bestrq"), dump)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 90, 20, generator=g), torch.tensor([90, 70, 45])


def test_encoder_from_run_has_the_weights_of_the_newest_checkpoint(run_dir):
    encoder = encoder_from_run(run_dir)
    assert isinstance(encoder, BestRQ) and not encoder.training
    state, _ = load_checkpoint(newest_checkpoint(run_dir))
    own = encoder.state_dict()
    assert set(own) == set(state["model"])
    for name, value in own.items():
        assert torch.equal(value, state["model"][name]), name
    # the trained weights, not a fresh initialisation
    name = next(n for n, _ in encoder.named_parameters())
    fresh = encoder_from_spec(encoder_spec(encoder)).state_dict()[name]
    assert not torch.equal(own[name], fresh)


def test_encoder_from_run_takes_a_given_checkpoint(run_dir, tmp_path):
    state, _ = load_checkpoint(newest_checkpoint(run_dir))
    name = next(n for n, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name] + 1.0
    other = save_checkpoint(str(tmp_path / "elsewhere"), 7, state)
    encoder = encoder_from_run(run_dir, checkpoint=other)
    assert torch.equal(encoder.state_dict()[name], state["model"][name])


def test_newest_checkpoint_takes_the_last_finished_one(tmp_path):
    for step in (1, 3):
        save_checkpoint(str(tmp_path / "run" / "checkpoints"), step, {"model": {}})
    os.makedirs(tmp_path / "run" / "checkpoints" / "step-00000005.tmp")  # unfinished: ignored
    assert newest_checkpoint(str(tmp_path / "run")) == str(tmp_path / "run" / "checkpoints" / "step-00000003")


def test_newest_checkpoint_names_the_run_without_checkpoints(tmp_path):
    run = tmp_path / "untrained_run"
    os.makedirs(run / "checkpoints" / "step-00000002.tmp")
    with pytest.raises(FileNotFoundError, match=re.escape(str(run))):
        newest_checkpoint(str(run))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing_here"))):
        newest_checkpoint(str(tmp_path / "nothing_here"))


def test_save_and_load_encoder_round_trip_gives_identical_embeddings(run_dir, tmp_path):
    encoder = encoder_from_run(run_dir)
    path = str(tmp_path / "encoder.pt")
    save_encoder(encoder, path)
    copy = load_encoder(path)
    assert type(copy) is type(encoder) and not copy.training
    feats, lengths = batch()
    with torch.no_grad():
        assert torch.equal(copy.embed(feats, lengths), encoder.embed(feats, lengths))
        assert torch.equal(copy.embed(feats, lengths, layer=1), encoder.embed(feats, lengths, layer=1))
    # a run folder is loaded as its newest checkpoint
    with torch.no_grad():
        assert torch.equal(load_encoder(run_dir).embed(feats, lengths), encoder.embed(feats, lengths))


def test_encoder_from_spec_rebuilds_the_same_architecture(run_dir):
    encoder = encoder_from_run(run_dir)
    spec = encoder_spec(encoder)
    assert spec["class"] == "masr.ssl.bestrq.BestRQ"
    assert spec["hparams"]["d_model"] == 32 and spec["hparams"]["num_layers"] == 2
    assert spec["hparams"]["cmvn"] is None  # the statistics travel in the state dict
    copy = encoder_from_spec(spec)
    assert type(copy) is BestRQ and copy.hparams == encoder.hparams
    assert {k: v.shape for k, v in copy.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}
    copy.load_state_dict(encoder.state_dict())
    feats, lengths = batch(1)
    with torch.no_grad():
        assert torch.equal(copy.eval().embed(feats, lengths), encoder.embed(feats, lengths))


def test_encoder_spec_needs_recorded_hparams():
    model = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)
    model.hparams = None
    with pytest.raises(ValueError, match="BestRQ did not record its constructor arguments"):
        encoder_spec(model)


def test_unwrap_ssl_takes_the_encoder_out_of_masr(dump):
    ssl = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)
    wrapped = MASR(ssl, [{"name": "lang", "encoder": {"kind": "onehot"}, "proj_dim": None}], train_dir=dump)
    assert unwrap_ssl(wrapped) is ssl
    assert unwrap_ssl(ssl) is ssl


MASR_RUN = """\
baseline_dir: !PLACEHOLDER
train_dir: !PLACEHOLDER
model: !new:masr.model.MASR
  ssl: !apply:masr.model.ssl_from_run [!ref <baseline_dir>]
  train_dir: !ref <train_dir>
  streams:
  - {name: lang, encoder: {kind: onehot}, proj_dim: 8, weight: 1.0, margin: 0.2}
"""


def test_encoder_from_a_masr_run_is_the_unwrapped_ssl_encoder(run_dir, dump, tmp_path):
    from masr.model import ssl_from_run

    masr_run = tmp_path / "continue_masr"
    os.makedirs(masr_run)
    (masr_run / "config.yaml").write_text(MASR_RUN)
    (masr_run / "overrides.yaml").write_text(f"baseline_dir: {run_dir}\ntrain_dir: {dump}\n")
    model = ssl_from_run(str(masr_run))
    assert isinstance(model, MASR)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_checkpoint(str(masr_run / "checkpoints"), 4, {"model": model.state_dict()})
    encoder = encoder_from_run(str(masr_run))
    assert isinstance(encoder, BestRQ) and not encoder.training
    assert set(encoder.state_dict()) == set(model.ssl.state_dict())
    for name, value in model.ssl.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], value), name


def test_a_finished_run_is_read_from_its_encoder_file_from_any_folder(tmp_path, monkeypatch):
    # the run's config names paths relative to where it was trained; encoder.pt needs none of them
    from masr.ssl.encoder_file import ENCODER_FILE
    from tests.helpers.dumps import make_dump_dir
    from tests.helpers.runs import make_pretrain_run

    monkeypatch.chdir(tmp_path)
    make_dump_dir("dump")
    make_pretrain_run("exp/run", "dump")
    assert (tmp_path / "exp" / "run" / ENCODER_FILE).is_file()
    here = encoder_from_run("exp/run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    moved = encoder_from_run(str(tmp_path / "exp" / "run"))
    for (name, a), (_, b) in zip(here.state_dict().items(), moved.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_rope_sdpa_encoder_round_trips_with_its_attention(tmp_path):
    torch.manual_seed(0)
    encoder = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16,
                     attention="rope_sdpa").eval()
    save_encoder(encoder, str(tmp_path / "encoder.pt"))
    copy = load_encoder(str(tmp_path / "encoder.pt"))
    assert copy.hparams["attention"] == "rope_sdpa"
    feats, lengths = batch(2)
    with torch.no_grad():
        assert torch.equal(copy.embed(feats, lengths), encoder.embed(feats, lengths))


def test_an_encoder_saved_before_attention_existed_loads_as_relpos_xl():
    spec = encoder_spec(BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3,
                               codebook_size=16))
    del spec["hparams"]["attention"]
    assert encoder_from_spec(spec).encoder.attention_type == "relpos_xl"
