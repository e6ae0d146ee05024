"""masr.ssl.w2vbert: the w2v-BERT objective (contrastive + diversity + MLM) behind the SSL interface."""

import math
import os

import pytest
import torch
import torch.nn.functional as F

import masr.ssl.w2vbert as w2vbert_module
from masr.ssl.w2vbert import GumbelVectorQuantizer, W2vBert, sample_negatives
from tests.helpers.ssl_checks import assert_embedding_ignores_padding

CONFIG = os.path.join(os.path.dirname(__file__), "..", "egs", "mini", "conf", "pretrain_w2vbert.yaml")
METRICS = {"contrastive_loss", "diversity_loss", "mlm_loss", "accuracy", "contrastive_accuracy", "codebook_perplexity",
           "masked_fraction", "temperature", "majority_baseline"}


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(input_dim=20, d_model=32, num_contrastive_layers=1, num_mlm_layers=1, nhead=2, d_ffn=64,
                kernel_size=3, num_groups=2, num_entries=16, codevector_dim=16, num_negatives=10, dropout=0.0)
    args.update(kw)
    return W2vBert(**args)


def fixed_mask(monkeypatch, mask):
    """Make the model mask exactly ``mask`` (its (B, T') span_mask), whatever the batch's T'."""

    def fake(lengths, max_len, *args, **kwargs):
        out = torch.zeros(len(lengths), max_len, dtype=torch.bool)
        out[:, : mask.shape[1]] = mask[:, :max_len]
        return out

    monkeypatch.setattr(w2vbert_module, "span_mask", fake)


def test_shapes_finite_loss_and_metrics():
    model = tiny()
    out = model(torch.randn(3, 100, 20), torch.tensor([100, 60, 81]))
    assert out.frames.shape == (3, 24, 32) and out.lengths.tolist() == [24, 14, 19]
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.metrics) == METRICS
    for key, value in out.metrics.items():
        assert value.ndim == 0 and not value.requires_grad and torch.isfinite(value), key
    expected = (out.metrics["contrastive_loss"] + 0.1 * out.metrics["diversity_loss"] + out.metrics["mlm_loss"])
    assert torch.allclose(out.loss.detach(), expected, atol=1e-5)
    assert bool((out.frames[1, 14:] == 0).all())
    assert 0.0 < float(out.metrics["masked_fraction"]) < 1.0
    perplexity = float(out.metrics["codebook_perplexity"])
    assert perplexity >= 1.0 and perplexity <= 2 * 16


def test_gradients_reach_every_parameter():
    model = tiny()
    model(torch.randn(2, 100, 20), torch.tensor([100, 72])).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mlm_targets_are_detached(monkeypatch):
    """With the contrastive and diversity terms off, nothing reaches the quantizer."""
    model = tiny(diversity_weight=0.0)
    monkeypatch.setattr(model, "contrastive_loss", lambda c, q, codes, mask: (c.sum() * 0.0, c.sum() * 0.0, 0))
    out = model(torch.randn(2, 100, 20), torch.tensor([100, 72]))
    out.loss.backward()
    assert out.loss > 0
    for name, p in model.quantizer.named_parameters():
        assert p.grad is None or not p.grad.any(), name
    assert model.head.weight.grad.abs().sum() > 0 and model.mask_emb.grad.abs().sum() > 0


def test_losses_and_gradients_only_at_masked_valid_frames(monkeypatch):
    model = tiny()
    lengths = torch.tensor([120, 64, 100])  # 29, 15, 24 frames
    mask = torch.zeros(3, 29, dtype=torch.bool)
    mask[0, 3:9] = True
    mask[0, 20:23] = True
    mask[1, 10:14] = True
    mask[2, 7] = True  # alone in its utterance: no contrastive term, still an MLM target
    fixed_mask(monkeypatch, mask)
    seen = {}
    model.mlm.register_forward_hook(lambda m, i, o: seen.setdefault("frames", o))
    model.context_proj.register_forward_hook(lambda m, i, o: seen.setdefault("context", o))
    model.quantizer.out_proj.register_forward_hook(lambda m, i, o: seen.setdefault("quantized", o))
    model.quantizer.weight_proj.register_forward_hook(lambda m, i, o: seen.setdefault("logits", o))
    out = model(torch.randn(3, 120, 20), lengths)
    for t in seen.values():
        t.retain_grad()
    out.loss.backward()
    grad = {k: v.grad.abs().sum(dim=-1) for k, v in seen.items()}  # (B, T')
    assert torch.equal(grad["frames"] > 0, mask)  # MLM: masked frames only
    contrastive = mask.clone()
    contrastive[2] = False
    assert torch.equal(grad["context"] > 0, contrastive)  # positives of utterances with >= 2 masked frames
    assert torch.equal(grad["quantized"] > 0, contrastive)  # positives and distractors: masked frames only
    valid = ~w2vbert_module.make_pad_mask(out.lengths, 29)
    assert torch.equal(grad["logits"] > 0, valid)  # diversity + straight-through: every valid frame, no padding
    assert abs(float(out.metrics["masked_fraction"]) - 14 / (29 + 15 + 24)) < 1e-6


@pytest.mark.parametrize("train", [True, False])
def test_padding_content_and_amount_do_not_change_the_loss(monkeypatch, train):
    model = tiny().train(train)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, 2:8] = True
    mask[1, 5:9] = True
    fixed_mask(monkeypatch, mask)
    feats, lengths = torch.randn(2, 120, 20), torch.tensor([120, 70])
    garbage = feats.clone()
    garbage[1, 70:] = 1e3 * torch.randn(50, 20)
    longer = torch.cat([feats, 1e3 * torch.randn(2, 40, 20)], dim=1)  # more padding: 39 frames, not 29
    results = []
    for x in (feats, garbage) + (() if train else (longer,)):  # Gumbel noise depends on the shape
        torch.manual_seed(11)
        model.quantizer.num_updates.zero_()
        results.append(model(x, lengths))
    for other in results[1:]:
        assert torch.allclose(other.loss, results[0].loss, atol=1e-5)
        for key in METRICS:
            assert torch.allclose(other.metrics[key], results[0].metrics[key], atol=1e-5), key


def test_negatives_are_other_masked_frames_of_the_same_utterance():
    mask = torch.zeros(4, 12, dtype=torch.bool)
    mask[0, [1, 2, 3, 7, 8]] = True  # 5 masked frames: indices 0..4
    mask[1, 4] = True  # alone: index 5
    mask[2, [0, 11]] = True  # 2 masked frames: indices 6, 7
    negatives, keep = sample_negatives(mask, 4000, torch.Generator().manual_seed(0))
    assert keep.tolist() == [True] * 5 + [False] + [True] * 2
    for i in range(5):
        others = [j for j in range(5) if j != i]
        counts = torch.bincount(negatives[i], minlength=8)
        assert set(negatives[i].unique().tolist()) == set(others)
        assert (counts[others].float() / 4000 - 0.25).abs().max() < 0.04  # uniform over the other four
    assert (negatives[6] == 7).all() and (negatives[7] == 6).all()


def test_contrastive_loss_is_infonce_with_cosine_similarity():
    model = tiny(num_negatives=6, contrastive_temp=0.1)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 2:7] = True
    mask[1, [1, 4, 5]] = True
    context, quantized = torch.randn(2, 10, 32), torch.randn(2, 10, 32)
    codes = torch.arange(20).view(2, 10, 1).repeat(1, 1, 2)
    codes[1, 5] = codes[1, 4]  # same code as frame (1, 4): never a distractor of it
    torch.manual_seed(3)
    loss, accuracy, count = model.contrastive_loss(context, quantized, codes, mask)
    torch.manual_seed(3)
    negatives, _ = sample_negatives(mask, 6)
    c, q, code = F.normalize(context[mask], dim=-1), F.normalize(quantized[mask], dim=-1), codes[mask]
    expected, correct = [], []
    for i in range(8):
        sims = [c[i] @ q[i]] + [c[i] @ q[j] if not torch.equal(code[j], code[i]) else torch.tensor(-math.inf)
                                for j in negatives[i].tolist()]
        logits = torch.stack(sims) / 0.1
        expected.append(-torch.log_softmax(logits, dim=0)[0])
        correct.append(float(logits.argmax() == 0))
    assert int(count) == 8
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-5)
    assert abs(float(accuracy) - sum(correct) / 8) < 1e-6


def test_temperature_anneals_and_is_saved():
    model = tiny(temp_start=2.0, temp_end=0.5, temp_decay_steps=10)
    feats, lengths = torch.randn(2, 60, 20), torch.tensor([60, 50])
    temps = [float(model(feats, lengths).metrics["temperature"]) for _ in range(4)]
    assert [round(t, 5) for t in temps] == [round(2.0 * 0.25 ** (k / 10), 5) for k in range(4)]
    assert int(model.quantizer.num_updates) == 4
    model.eval()
    model(feats, lengths)  # evaluation does not advance the schedule
    assert int(model.state_dict()["quantizer.num_updates"]) == 4
    fresh = tiny(temp_start=2.0, temp_end=0.5, temp_decay_steps=10)
    assert float(fresh.temperature) == 2.0
    fresh.load_state_dict(model.state_dict())
    assert float(fresh.temperature) == float(model.temperature) == pytest.approx(2.0 * 0.25 ** 0.4)
    fresh.quantizer.num_updates.fill_(25)
    assert float(fresh.temperature) == pytest.approx(0.5)


def test_quantizer_eval_is_deterministic_argmax_and_training_is_straight_through():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(16, num_groups=2, num_entries=8, codevector_dim=8, output_dim=12)
    x = torch.randn(2, 30, 16)
    logits = q.weight_proj(x).view(2, 30, 2, 8)

    def expected(codes):  # the selected entries, concatenated, projected
        entries = torch.stack([q.codevectors[g, codes[..., g]] for g in range(2)], dim=2)
        return q.out_proj(entries.reshape(2, 30, 8))

    q.eval()
    torch.manual_seed(1)
    a = q(x)
    torch.manual_seed(2)
    b = q(x)
    assert torch.equal(a["quantized"], b["quantized"]) and torch.equal(a["codes"], logits.argmax(-1))
    assert torch.equal(a["ids"], a["codes"]) and int(q.num_updates) == 0
    assert torch.allclose(a["quantized"], expected(a["ids"]), atol=1e-6)

    q.train()
    torch.manual_seed(1)
    t = q(x)
    assert torch.equal(t["ids"], logits.argmax(-1))  # MLM targets stay the noise-free argmax
    assert not torch.equal(t["codes"], t["ids"])  # Gumbel sampling at temperature 2
    assert torch.allclose(t["quantized"], expected(t["codes"]), atol=1e-6)  # hard in the forward pass
    t["quantized"].sum().backward()
    assert q.weight_proj.weight.grad.abs().sum() > 0  # soft in the backward pass


def test_diversity_loss_matches_the_batch_averaged_softmax():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(16, num_groups=2, num_entries=8, codevector_dim=8).eval()
    x = torch.randn(2, 10, 16)
    pad = w2vbert_module.make_pad_mask(torch.tensor([10, 6]), 10)
    out = q(x, pad)
    probs = torch.softmax(q.weight_proj(x).view(2, 10, 2, 8), dim=-1)[~pad].mean(0)
    perplexity = torch.exp(-(probs * probs.log()).sum(-1)).sum()
    assert torch.allclose(out["perplexity"], perplexity, atol=1e-4)
    assert torch.allclose(out["diversity"], (16 - perplexity) / 16, atol=1e-5)
    x[1, 6:] = 1e3  # padding does not count
    assert torch.allclose(q(x, pad)["diversity"], out["diversity"])


def test_embedding_ignores_padding():
    assert_embedding_ignores_padding(tiny())


def test_learns_on_a_repeated_batch():
    model = tiny(temp_decay_steps=40)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    feats, lengths = torch.randn(4, 120, 20), torch.tensor([120, 100, 80, 120])
    torch.manual_seed(0)
    first = model(feats, lengths)
    for _ in range(40):
        torch.manual_seed(0)
        out = model(feats, lengths)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.loss.item() < 0.6 * first.loss.item()
    assert out.metrics["contrastive_loss"] < first.metrics["contrastive_loss"]
    assert out.metrics["mlm_loss"] < first.metrics["mlm_loss"]


def test_config_trains_with_the_pretraining_stage(tmp_path):
    from masr.nnet.conformer import num_parameters
    from masr.train.pretrain import build_pretrain_trainer
    from masr.utils.config import load_config
    from tests.helpers.dumps import make_dump_dir

    full = load_config(CONFIG, {"train_dir": str(tmp_path / "none"), "exp_dir": str(tmp_path / "x"),
                                "model": {"cmvn": None}})
    assert 2.0e6 < num_parameters(full["model"]) < 3.0e6
    assert full["model"].quantizer.temp_decay_steps == full["max_steps"]

    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=12, dim=20)
    small = {"input_dim": 20, "d_model": 32, "num_contrastive_layers": 1, "num_mlm_layers": 1, "nhead": 2,
             "d_ffn": 64, "kernel_size": 3, "num_entries": 16, "codevector_dim": 16, "num_negatives": 10}
    config = load_config(CONFIG, {"train_dir": dump, "exp_dir": str(tmp_path / "exp"), "max_steps": 3,
                                  "max_batch_frames": 400, "warmup_steps": 1, "log_every": 1, "progress": False,
                                  "valid_every": 0, "model": small})
    trainer = build_pretrain_trainer(config)
    last = trainer.fit()
    assert trainer.step == 3 and math.isfinite(last["loss"])
    assert {"contrastive_loss", "mlm_loss", "temperature"} <= set(last)
    assert int(trainer.model.quantizer.num_updates) == 3
    assert (tmp_path / "exp" / "train_log.txt").exists()
