"""masr.model: MASR = SSL loss + lambda-weighted metadata-stream triplet losses."""

import os

import pytest
import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.losses import hard_triplet_loss
from masr.model import MASR, ssl_from_run
from masr.ssl.bestrq import BestRQ
from masr.train.checkpoint import load_model_weights
from masr.train.pretrain import build_pretrain_trainer
from masr.train.run import seed_everything
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import pretrain_config

LASR = {"name": "lang", "encoder": {"kind": "onehot"}, "proj_dim": None, "weight": 2.0, "margin": 0.3}
MASR_LANG = {"name": "lang", "encoder": {"kind": "lang2vec", "feature": "syntactic"}, "proj_dim": 16,
             "alpha": 0.5, "weight": 3.0, "margin": 0.2}
GEO = {"name": "geo", "encoder": {"kind": "geo"}, "proj_dim": 8, "weight": 1.0, "margin": 0.2}
TEXT = {"name": "text", "encoder": {"kind": "text", "dim": 16}, "proj_dim": 8, "weight": 1.0, "margin": 0.2}
# the paper's loss form: Eq. 2 summed within groups (5 here: 16 utterances = 3 groups of 5 + 1)
GROUPED = dict(MASR_LANG, mining_group_size=5, reduction="sum")
GROUPED_MEAN = dict(MASR_LANG, mining_group_size=5, reduction="mean")


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_dump_dir(str(tmp_path_factory.mktemp("dump")), num_utts=16)


def tiny_ssl(dump):
    seed_everything(0)
    return BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16,
                  dropout=0.0, cmvn=os.path.join(dump, "cmvn.ark"))


def batch_of(dump, streams):
    ds = FeatsDataset(dump, streams=streams)
    return collate_feats([ds[i] for i in range(len(ds))])


@pytest.mark.parametrize("streams", [[LASR], [MASR_LANG], [MASR_LANG, GEO], [MASR_LANG, TEXT], [GROUPED],
                                     [GROUPED_MEAN, dict(GEO, mining_group_size=4)]])
def test_total_loss_is_ssl_plus_weighted_stream_losses(dump, streams):
    model = MASR(tiny_ssl(dump), streams, train_dir=dump).eval()
    batch = batch_of(dump, model.metadata_streams)
    meta = {s: batch[s] for s in model.metadata_streams}
    torch.manual_seed(1)
    out = model(batch["feats"], batch["lengths"], metadata=meta)
    torch.manual_seed(1)
    ssl_out = model.ssl(batch["feats"], batch["lengths"])
    h = ssl_out.pooled()
    expected = ssl_out.loss
    for stream in model.streams:
        values = batch[stream.name]
        e = stream.encoder.encode(values) if stream.encoder.dim > 0 else None
        loss = hard_triplet_loss(stream.projection(h), stream.encoder.labels(values), stream.margin, meta=e,
                                 alpha=stream.alpha, reduction=stream.reduction,
                                 mining_group_size=stream.mining_group_size)
        expected = expected + stream.weight * loss
        assert torch.allclose(out.metrics[f"{stream.name}_triplet"], loss.detach(), atol=1e-6)
        assert 0.0 <= float(out.metrics[f"{stream.name}_active"]) <= 1.0
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert "accuracy" in out.metrics and "ssl_loss" in out.metrics


def test_lasr_has_no_projection_and_masr_reports_negatives_differing_from_lasr(dump):
    lasr = MASR(tiny_ssl(dump), [LASR], train_dir=dump)
    assert not any("streams" in name for name, _ in lasr.named_parameters())
    assert lasr.streams[0].encoder.dim == 0
    masr = MASR(tiny_ssl(dump), [MASR_LANG], train_dir=dump)
    batch = batch_of(dump, ["lang"])
    out = masr(batch["feats"], batch["lengths"], metadata={"lang": batch["lang"]})
    assert 0.0 <= float(out.metrics["lang_neg_differs_from_lasr"]) <= 1.0
    out.loss.backward()
    assert masr.streams[0].projection.weight.grad.abs().sum() > 0  # q = W h is trained
    assert masr.ssl.head.weight.grad.abs().sum() > 0


def test_grouped_stream_mines_lasr_reference_within_the_same_groups(dump):
    model = MASR(tiny_ssl(dump), [GROUPED], train_dir=dump).eval()
    stream = model.streams[0]
    assert stream.mining_group_size == 5
    batch = batch_of(dump, ["lang"])
    torch.manual_seed(1)
    out = model(batch["feats"], batch["lengths"], metadata={"lang": batch["lang"]})
    torch.manual_seed(1)
    h = model.ssl(batch["feats"], batch["lengths"]).pooled()
    labels = stream.encoder.labels(batch["lang"])
    _, masr = hard_triplet_loss(stream.projection(h), labels, 0.2, meta=stream.encoder.encode(batch["lang"]),
                                alpha=0.5, mining_group_size=5, return_info=True)
    _, lasr = hard_triplet_loss(h, labels, 0.2, mining_group_size=5, return_info=True)
    has_neg = masr["has_negative"]
    assert has_neg.any()
    assert all(k < 0 or k // 5 == i // 5 for i, k in enumerate(lasr["neg_index"].tolist()))
    expected = ((lasr["neg_index"] != masr["neg_index"]) & has_neg).float().sum() / has_neg.float().sum()
    assert torch.allclose(out.metrics["lang_neg_differs_from_lasr"], expected)
    assert torch.allclose(out.metrics["lang_active"], masr["active"].float().sum() / has_neg.float().sum())


def test_invalid_stream_options_name_the_stream(dump):
    for bad in (0, -16, 16.5, "16", True):
        with pytest.raises(ValueError, match="stream 'lang': mining_group_size must be a positive int or null"):
            MASR(tiny_ssl(dump), [dict(MASR_LANG, mining_group_size=bad)], train_dir=dump)
    with pytest.raises(ValueError, match="stream 'geo': reduction"):
        MASR(tiny_ssl(dump), [MASR_LANG, dict(GEO, reduction="avg")], train_dir=dump)
    model = MASR(tiny_ssl(dump), [dict(MASR_LANG, mining_group_size=None)], train_dir=dump)
    assert model.streams[0].mining_group_size is None


def test_label_ids_are_fixed_from_the_training_data(dump):
    a = MASR(tiny_ssl(dump), [LASR], train_dir=dump)
    b = MASR(tiny_ssl(dump), [LASR], train_dir=dump)
    for values in (["swe", "hrv"], ["hrv", "srp", "swe"]):  # any encounter order
        assert torch.equal(a.streams[0].encoder.labels(values), b.streams[0].encoder.labels(values))
    assert a.streams[0].encoder.labels(["hrv", "srp", "swe"]).tolist() == [0, 1, 2]


def test_continues_from_an_ssl_run(dump, tmp_path):
    seed_everything(0)
    config = pretrain_config(dump, str(tmp_path / "base"), tiny_ssl(dump), max_steps=2, checkpoint_every=2)
    build_pretrain_trainer(config).fit()
    ckpt = str(tmp_path / "base" / "checkpoints" / "step-00000002")
    model = MASR(tiny_ssl(dump), [MASR_LANG], train_dir=dump)
    missing, unexpected = load_model_weights(model, ckpt)
    trained = torch.load(os.path.join(ckpt, "state.pt"), weights_only=False)["model"]
    assert torch.equal(model.ssl.head.weight, trained["head.weight"])
    assert missing == ["streams.0.projection.weight", "streams.0.projection.bias"] and unexpected == []


def test_ssl_from_run_rebuilds_the_architecture(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(
        "model: !new:masr.ssl.bestrq.BestRQ\n  input_dim: 20\n  d_model: 24\n  num_layers: 1\n  nhead: 2\n"
        "  d_ffn: 48\n  kernel_size: 3\n  codebook_size: 8\ntrain_dir: !PLACEHOLDER\n")
    (run / "overrides.yaml").write_text("train_dir: somewhere\n")
    model = ssl_from_run(str(run))
    assert isinstance(model, BestRQ) and model.d_model == 24
    with pytest.raises(FileNotFoundError, match="masr.train.pretrain run"):
        ssl_from_run(str(tmp_path / "nothing"))
