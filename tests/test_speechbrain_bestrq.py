"""benchmarks/speechbrain_bestrq.py: SpeechBrain 1.1.2's BEST-RQ recipe model, built for speed
comparisons (tiny sizes here; the recipe size only on the meta device)."""

import doctest
import os
import random
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import speechbrain_bestrq  # noqa: E402
from speechbrain_bestrq import RECIPE, build_speechbrain_bestrq, num_parameters, pad_feats  # noqa: E402

TINY = dict(input_dim=20, d_model=32, num_layers=2, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)


def tiny(**kw):
    torch.manual_seed(0)
    random.seed(0)
    return build_speechbrain_bestrq(**{**TINY, **kw})


def test_docstring_example():
    failures, attempted = doctest.testmod(speechbrain_bestrq)
    assert attempted > 0 and failures == 0


@pytest.mark.parametrize("streaming", [True, False])
def test_tiny_loss_is_a_finite_scalar_and_reaches_every_parameter(streaming):
    model = tiny()
    model.streaming = streaming
    for _ in range(3):  # streaming steps draw their chunking at random
        model.zero_grad(set_to_none=True)
        loss = model(torch.randn(2, 100, 20), torch.tensor([100, 100]))
        assert loss.shape == () and torch.isfinite(loss)
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert missing == []
    encoder = model.wrapper.transformer.encoder
    assert all(p.grad.abs().sum() > 0 for p in encoder.parameters())
    assert model.Quantizer.P.grad is None and not model.Quantizer.P.requires_grad


def test_two_lengths_padding_and_mask_within_the_shortest(monkeypatch):
    model = tiny()
    model.streaming = False
    lengths = torch.tensor([103, 41])
    seen = {}
    real_compute_mask = speechbrain_bestrq.compute_mask

    def spy(shape, sample_lens, mask_prob, mask_length):
        seen["sample_lens"] = sample_lens
        seen["mask"] = real_compute_mask(shape, sample_lens, mask_prob, mask_length)
        return seen["mask"]

    monkeypatch.setattr(speechbrain_bestrq, "compute_mask", spy)
    encoder = model.wrapper.transformer.encoder
    encoder.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    feats = torch.randn(2, 103, 20)
    feats_before = feats.clone()
    loss = model(feats, lengths)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.equal(feats, feats_before)  # the input is not masked in place
    assert seen["sample_lens"] == [103, 41]
    # masks: whole 40 ms frames (spans of 4 starting at multiples of 4) inside the shortest utterance
    mask = seen["mask"]
    assert len(mask) % 4 == 0 and int(mask.max()) < 41
    assert torch.equal(mask.view(-1, 4) - mask.view(-1, 4)[:, :1], torch.arange(4).expand(len(mask) // 4, 4))
    assert (mask.view(-1, 4)[:, 0] % 4 == 0).all()
    # the encoder sees 104 / 4 = 26 frames and a key padding mask from the relative lengths
    padding = seen["src_key_padding_mask"]
    assert padding.shape == (2, 26)
    valid = (~padding).sum(1).tolist()
    assert valid[0] == 26 and abs(valid[1] - 41 / 4) <= 1
    assert seen["src_mask"] is None  # streaming off: full context


def test_eval_mode_equals_the_recipe_train_py_step():
    """The recipe's own statements (train.py compute_forward + compute_objectives, with the batch
    from brq_mask_collate_fn), run on the module's parts, give the module's loss."""
    from speechbrain.core import Stage
    from speechbrain.lobes.models.BESTRQ import brq_mask_collate_fn

    model = tiny().eval()
    lengths = [103, 57]
    feats_in = torch.randn(2, 103, 20)

    torch.manual_seed(1)
    random.seed(1)
    ours = model(feats_in, torch.tensor(lengths))

    torch.manual_seed(1)
    random.seed(1)
    samples = [{"id": str(i), "sig": torch.zeros(n)} for i, n in enumerate(lengths)]
    _, wav_lens, mask = brq_mask_collate_fn(samples, get_out_len_fn=lambda n: n, mask_prob=0.15, mask_length=4,
                                           n_mels=20)
    dynchunktrain_config = model.dynchunktrain_config_sampler(Stage.VALID)
    feats = model.normalize(feats_in, wav_lens, epoch=1)
    feats = pad_feats(feats, 4)
    mask_idx = mask[::4] // 4
    B, T, C = feats.shape
    targets = model.Quantizer(feats.view(B, feats.shape[1] // 4, -1)[:, mask_idx, :])
    noise = torch.normal(mean=0, std=0.1, size=(B, mask.shape[0], C))
    feats[:, mask, :] = noise
    src = model.CNN(feats)
    enc_out = model.wrapper(src, wav_lens, dynchunktrain_config=dynchunktrain_config)
    logits = model.linear(enc_out)
    logits = logits[:, mask_idx, :]
    B, T, C = logits.shape
    theirs = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
    assert dynchunktrain_config.chunk_size == 8 and dynchunktrain_config.left_context_size == 16
    torch.testing.assert_close(ours, theirs)


def test_mask_span_must_address_whole_40ms_frames():
    with pytest.raises(ValueError, match="multiple of 4"):
        build_speechbrain_bestrq(**TINY, mask_span=3)


def test_recipe_size_parameter_count():
    """SpeechBrain states 94M parameters for this model (Libri-Light BEST-RQ README); built on the
    meta device (no memory, under a second)."""
    with torch.device("meta"):
        model = build_speechbrain_bestrq(**{k: RECIPE[k] for k in ("d_model", "num_layers", "nhead", "d_ffn",
                                                                    "kernel_size", "codebook_size", "codebook_dim",
                                                                    "mask_prob", "mask_span")})
    n = num_parameters(model)
    assert n == RECIPE["num_parameters"] == 94_029_024
    assert 93.5e6 <= n <= 95.5e6
    transformer = model.wrapper.transformer
    assert transformer.custom_src_module.layers[0].w.in_features == RECIPE["cnn_input_size"] == 640
    assert model.Quantizer.P.shape == (RECIPE["quantizer_input"], RECIPE["codebook_dim"])
