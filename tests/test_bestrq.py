"""masr.ssl.bestrq: the BEST-RQ objective and the SSL interface."""

import pytest
import torch
import torch.nn.functional as F

import masr.ssl.bestrq as bestrq_module
from masr.ssl.bestrq import BestRQ
from tests.helpers.ssl_checks import assert_embedding_ignores_padding


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(input_dim=20, d_model=32, num_layers=2, nhead=2, d_ffn=64, kernel_size=3, codebook_size=32,
                 num_codebooks=2, dropout=0.0)
    args.update(kw)
    return BestRQ(**args)


def test_loss_and_gradient_only_at_masked_valid_frames(monkeypatch):
    model = tiny()
    lengths = torch.tensor([120, 64])
    fixed = torch.zeros(2, 30, dtype=torch.bool)
    fixed[0, 3:9] = True
    fixed[1, 10:14] = True
    monkeypatch.setattr(bestrq_module, "span_mask", lambda *a, **k: fixed)
    captured = {}
    model.encoder.register_forward_hook(lambda m, i, o: captured.setdefault("frames", o))
    out = model(torch.randn(2, 120, 20), lengths)
    captured["frames"].retain_grad()
    out.loss.backward()
    grad = captured["frames"].grad.abs().sum(dim=-1)  # (B, T')
    n = grad.shape[1]
    assert torch.equal(grad > 0, fixed[:, :n])
    assert abs(float(out.metrics["masked_fraction"]) - 10 / (29 + 15)) < 1e-6


def test_loss_equals_cross_entropy_on_masked_targets(monkeypatch):
    """The head, applied to the masked frames only, gives the loss of the head applied to every
    frame and then restricted to the masked ones."""
    model = tiny().eval()
    feats, lengths = torch.randn(2, 100, 20), torch.tensor([100, 70])
    fixed = torch.zeros(2, 25, dtype=torch.bool)
    fixed[:, 5:12] = True
    monkeypatch.setattr(bestrq_module, "span_mask", lambda *a, **k: fixed)
    captured = {}
    model.encoder.register_forward_hook(lambda m, i, o: captured.setdefault("frames", o))
    torch.manual_seed(5)
    out = model(feats, lengths)
    frames = captured["frames"]
    n = frames.shape[1]
    targets, _ = model.targets(model._normalise(feats, lengths), lengths)
    logits = model.head(frames).view(2, n, 2, 32)[fixed[:, :n]].reshape(-1, 32)
    expected = F.cross_entropy(logits, targets[:, :n][fixed[:, :n]].reshape(-1))
    assert torch.allclose(out.loss, expected, atol=1e-6)
    assert 0.0 <= float(out.metrics["accuracy"]) <= 1.0
    assert abs(float(out.metrics["masked_fraction"]) - 14 / (24 + 16)) < 1e-6  # usable: target frames that also have an encoder frame


def test_masking_replaces_input_frames_with_noise(monkeypatch):
    model = tiny().eval()
    fixed = torch.zeros(1, 25, dtype=torch.bool)
    fixed[0, 2:4] = True
    monkeypatch.setattr(bestrq_module, "span_mask", lambda *a, **k: fixed)
    seen = {}
    model.subsampling.register_forward_pre_hook(lambda m, args: seen.update(x=args[0].clone()))
    feats = torch.randn(1, 100, 20) * 5 + 3
    model(feats, torch.tensor([100]))
    x, clean = seen["x"][0], model._normalise(feats, torch.tensor([100]))[0]
    assert torch.equal(x[:8], clean[:8]) and torch.equal(x[16:], clean[16:])  # target frames 2-3 = inputs 8..15
    assert x[8:16].std() < 0.2 and not torch.allclose(x[8:16], clean[8:16])  # N(0, 0.1^2) noise


@pytest.mark.parametrize("attention", ["relpos_xl", "rope_sdpa"])
def test_embedding_ignores_padding(attention):
    assert_embedding_ignores_padding(tiny(attention=attention))


def test_cmvn_from_file_is_saved_with_the_model(tmp_path):
    from masr.features.cmvn import CMVNStats

    stats = CMVNStats(20)
    stats.add(torch.randn(50, 20).numpy() * 3 + 1)
    stats.save(tmp_path / "cmvn.ark")
    model = tiny(cmvn=str(tmp_path / "cmvn.ark"))
    assert torch.allclose(model.state_dict()["cmvn.mean"], torch.tensor(stats.mean, dtype=torch.float32))


def test_learns_on_a_repeated_batch():
    model = tiny(dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    feats, lengths = torch.randn(4, 120, 20), torch.tensor([120, 100, 80, 120])
    torch.manual_seed(0)
    first = model(feats, lengths).loss.item()
    for _ in range(60):
        torch.manual_seed(0)
        loss = model(feats, lengths).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
