"""Tests for masr.nnet.conformer: shapes, lengths, padding invariance, gradients, dropout."""

import math

import pytest
import torch

from masr.nnet import (
    ATTENTION_TYPES,
    ConformerEncoder,
    ConformerLayer,
    Conv2dSubsampling,
    RelPositionalEncoding,
    RoPESelfAttention,
    RotaryEmbedding,
    apply_rotary,
    make_pad_mask,
    num_parameters,
)
from masr.nnet import conformer as conformer_mod

FEAT_DIM = 40
D_MODEL = 32
TOL = 1e-5


def _model(dropout=0.1, seed=0, num_layers=2, attention="relpos_xl"):
    torch.manual_seed(seed)
    sub = Conv2dSubsampling(FEAT_DIM, D_MODEL, channels=16)
    enc = ConformerEncoder(
        D_MODEL, num_layers=num_layers, nhead=4, d_ffn=64, kernel_size=7, dropout=dropout,
        attention=attention,
    )
    return sub, enc


def _run(sub, enc, feats, lengths):
    x, out_lengths = sub(feats, lengths)
    return enc(x, out_lengths), out_lengths


def _padded_batch(utts, extra=0, seed=1):
    """Pad utterances (T_i, F) into (B, max T + extra, F) with random garbage."""
    g = torch.Generator().manual_seed(seed)
    t_max = max(u.size(0) for u in utts) + extra
    batch = 100.0 * torch.randn(len(utts), t_max, FEAT_DIM, generator=g)
    for i, u in enumerate(utts):
        batch[i, : u.size(0)] = u
    return batch, torch.tensor([u.size(0) for u in utts])


# --------------------------------------------------------------------------- shapes, lengths


def test_make_pad_mask():
    mask = make_pad_mask(torch.tensor([2, 0, 4]), max_len=5)
    expected = torch.tensor(
        [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool
    )
    assert torch.equal(mask, expected)
    assert make_pad_mask(torch.tensor([3, 1])).shape == (2, 3)


def test_output_lengths_match_conv_arithmetic():
    lengths = torch.arange(0, 200)
    conv = lambda n: torch.div(n - 3, 2, rounding_mode="floor") + 1  # noqa: E731
    expected = conv(conv(lengths).clamp(min=0)).clamp(min=0)
    assert torch.equal(Conv2dSubsampling.output_lengths(lengths), expected)
    assert int(Conv2dSubsampling.output_lengths(torch.tensor([6]))) == 0
    assert int(Conv2dSubsampling.output_lengths(torch.tensor([7]))) == 1


@pytest.mark.parametrize("t", [7, 8, 10, 11, 15, 16, 63, 100, 101])
def test_subsampling_shapes(t):
    sub = Conv2dSubsampling(FEAT_DIM, D_MODEL)
    assert sub.channels == D_MODEL  # default
    y, lengths = sub(torch.randn(2, t, FEAT_DIM), torch.tensor([t, t]))
    expected = int(Conv2dSubsampling.output_lengths(torch.tensor(t)))
    assert expected >= 1
    assert y.shape == (2, expected, D_MODEL)
    assert lengths.tolist() == [expected, expected]


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_too_short_batch_raises_and_short_utterance_gives_zero_length(attention):
    sub, enc = _model(attention=attention)
    with pytest.raises(ValueError, match="at least 7"):
        sub(torch.randn(1, 6, FEAT_DIM), torch.tensor([6]))
    sub.eval(), enc.eval()
    feats = torch.randn(3, 30, FEAT_DIM)
    y, lengths = _run(sub, enc, feats, torch.tensor([30, 6, 0]))
    assert lengths.tolist() == [6, 0, 0]
    assert torch.isfinite(y).all()
    assert (y[1:] == 0).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        ConformerLayer(D_MODEL, 4, 64, kernel_size=8)
    with pytest.raises(ValueError, match="relpos_xl, rope_sdpa"):
        ConformerEncoder(D_MODEL, 1, 4, 64, attention="rope")
    with pytest.raises(ValueError, match="even head dimension"):
        RotaryEmbedding(5)
    with pytest.raises(ValueError, match="input_dim"):
        Conv2dSubsampling(6, D_MODEL)


def test_num_parameters():
    sub, enc = _model()
    assert num_parameters(sub) == sum(p.numel() for p in sub.parameters())
    assert num_parameters(enc) > 0


# --------------------------------------------------------------------------- padding


def test_subsampling_ignores_padded_input_frames():
    """A valid output frame only sees valid input frames (values and gradients)."""
    torch.manual_seed(0)
    sub = Conv2dSubsampling(FEAT_DIM, D_MODEL, channels=8)
    for length in [7, 8, 9, 10, 11, 12, 13, 14, 37]:
        t = length + 9
        feats = torch.randn(1, t, FEAT_DIM, requires_grad=True)
        lengths = torch.tensor([length])
        y, out_len = sub(feats, lengths)
        n = int(out_len)
        assert n >= 1
        y[0, :n].pow(2).sum().backward()
        # the valid outputs see exactly input frames 0 .. 4(n-1)+6 <= length-1
        last = 4 * (n - 1) + 6
        assert last <= length - 1
        assert (feats.grad[0, last + 1 :] == 0).all()
        assert (feats.grad[0, last] != 0).any()
        garbage = feats.detach().clone()
        garbage[0, length:] = 1e3 * torch.randn(t - length, FEAT_DIM)
        y2, _ = sub(garbage, lengths)
        assert torch.equal(y2[0, :n], y[0, :n].detach())
        assert (y2[0, n:] == 0).all()


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_padding_invariance(attention, device):
    # on a GPU, cuDNN convolutions use TF32 by default: the same frames agree to ~1e-3, not 1e-5
    tol = TOL if device.type == "cpu" else 1e-3
    sub, enc = _model(attention=attention)
    sub.to(device).eval(), enc.to(device).eval()
    torch.manual_seed(3)
    utts = [torch.randn(t, FEAT_DIM).to(device) for t in [131, 57, 7, 100, 24, 3]]
    for extra in [0, 13]:
        feats, lengths = _padded_batch([u.cpu() for u in utts], extra=extra, seed=extra)
        feats, lengths = feats.to(device), lengths.to(device)
        with torch.no_grad():
            y, out_lengths = _run(sub, enc, feats, lengths)
        assert out_lengths.tolist() == Conv2dSubsampling.output_lengths(lengths.cpu()).tolist()
        for i, u in enumerate(utts):
            n = int(out_lengths[i])
            assert (y[i, n:] == 0).all()
            if u.size(0) < 7:
                assert n == 0
                continue
            with torch.no_grad():
                alone, alone_len = _run(sub, enc, u.unsqueeze(0), torch.tensor([u.size(0)], device=device))
            assert int(alone_len) == n and alone.size(1) == n
            torch.testing.assert_close(y[i, :n], alone[0], rtol=0, atol=tol)


def test_padding_invariance_detects_leaky_conv(monkeypatch):
    """Sanity check of the test itself: without zeroing padded frames before the depthwise
    convolution (as in SpeechBrain's ConvolutionModule), padding leaks into valid frames."""
    sub, enc = _model(num_layers=1)
    sub.eval(), enc.eval()
    monkeypatch.setattr(
        conformer_mod._ConvModule,
        "forward",
        lambda self, x, pad_mask: self.dropout(
            self.pointwise_out(
                torch.nn.functional.silu(
                    self.norm_mid(
                        self.depthwise(
                            torch.nn.functional.glu(
                                self.pointwise_in(self.norm_in(x)), dim=-1
                            ).transpose(1, 2)
                        ).transpose(1, 2)
                    )
                )
            )
        ),
    )
    torch.manual_seed(4)
    u = torch.randn(40, FEAT_DIM)
    feats, lengths = _padded_batch([u, torch.randn(80, FEAT_DIM)])
    with torch.no_grad():
        y, out_lengths = _run(sub, enc, feats, lengths)
        alone, _ = _run(sub, enc, u.unsqueeze(0), torch.tensor([40]))
    n = int(out_lengths[0])
    assert (y[0, :n] - alone[0]).abs().max() > 1e-3


# --------------------------------------------------------------------------- positions


def test_relative_positional_encoding_is_signed():
    d, t = 8, 5
    pe = RelPositionalEncoding(d)(torch.zeros(1, t, d))[0]
    assert pe.shape == (2 * t - 1, d)
    inv_freq = torch.exp(torch.arange(0, d, 2).float() * -(math.log(10000.0) / d))
    for m in range(2 * t - 1):
        r = t - 1 - m  # relative position (query - key) of row m
        torch.testing.assert_close(pe[m, 0::2], torch.sin(r * inv_freq))
        torch.testing.assert_close(pe[m, 1::2], torch.cos(r * inv_freq))


def test_attention_is_direction_aware():
    """With a symmetric depthwise kernel, only the position term of the attention can tell
    left from right. SpeechBrain's RelPosEncXL (same embedding for r and -r) makes the layer
    commute with time reversal; RelPositionalEncoding does not."""
    from speechbrain.nnet.attention import RelPosEncXL

    torch.manual_seed(5)
    layer = ConformerLayer(D_MODEL, 4, 64, kernel_size=7, dropout=0.0).eval()
    with torch.no_grad():
        w = layer.conv.depthwise.weight
        w.copy_(0.5 * (w + w.flip(-1)))
    x = torch.randn(1, 12, D_MODEL)

    def reversal_gap(pos_enc):
        pos = pos_enc(x)
        with torch.no_grad():
            return (layer(x, None, pos) - layer(x.flip(1), None, pos).flip(1)).abs().max()

    assert reversal_gap(RelPosEncXL(D_MODEL)) < 1e-5
    assert reversal_gap(RelPositionalEncoding(D_MODEL)) > 1e-3


def test_padding_gradient_does_not_reach_valid_frames_through_rope_attention():
    """Padded frames change neither the values nor the gradients of valid frames."""
    torch.manual_seed(8)
    att = RoPESelfAttention(D_MODEL, 4)
    x = torch.randn(1, 9, D_MODEL, requires_grad=True)
    mask = make_pad_mask(torch.tensor([6]), 9)
    y = att(x, mask, RotaryEmbedding(D_MODEL // 4)(9, x.device))
    y[0, :6].sum().backward()
    assert (x.grad[0, 6:] == 0).all()
    assert (x.grad[0, :6] != 0).any()


def test_rotary_scores_depend_only_on_relative_position():
    """<R_s q, R_t k> is the same for (s, t) and (s + m, t + m): RoPE attention is relative."""
    torch.manual_seed(9)
    cos, sin = RotaryEmbedding(16)(40, torch.device("cpu"))
    q, k = torch.randn(16), torch.randn(16)
    at = lambda v, t: apply_rotary(v.view(1, 1, 1, 16), cos[t:t + 1], sin[t:t + 1]).view(16)  # noqa: E731
    for s, t in [(0, 5), (3, 1), (7, 7)]:
        score = at(q, s) @ at(k, t)
        for shift in (1, 11, 30):
            torch.testing.assert_close(at(q, s + shift) @ at(k, t + shift), score, rtol=1e-5, atol=1e-5)
    assert (at(q, 0) @ at(k, 5) - at(q, 5) @ at(k, 0)).abs() > 1e-3  # direction matters


def test_rope_sdpa_equals_explicit_softmax_attention(device):
    """The fused kernel computes softmax(QK^T / sqrt(d) + mask) V on the rotated q, k."""
    torch.manual_seed(10)
    att = RoPESelfAttention(D_MODEL, 4).to(device).eval()
    lengths = torch.tensor([11, 4], device=device)
    x = torch.randn(2, 11, D_MODEL).to(device)
    mask = make_pad_mask(lengths, 11)
    rope = RotaryEmbedding(D_MODEL // 4)(11, x.device)
    with torch.no_grad():
        y = att(x, mask, rope)
        q, k, v = att.qkv(x).view(2, 11, 3, 4, D_MODEL // 4).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D_MODEL // 4)
        scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
        ref = att.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 11, D_MODEL))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_rope_attention_is_direction_aware():
    """As for relpos_xl (test above): with a symmetric depthwise kernel the layer does not
    commute with time reversal, because rotary positions tell left from right."""
    torch.manual_seed(5)
    layer = ConformerLayer(D_MODEL, 4, 64, kernel_size=7, dropout=0.0, attention="rope_sdpa").eval()
    with torch.no_grad():
        w = layer.conv.depthwise.weight
        w.copy_(0.5 * (w + w.flip(-1)))
        x = torch.randn(1, 12, D_MODEL)
        rope = RotaryEmbedding(D_MODEL // 4)(12, x.device)
        assert (layer(x, None, rope) - layer(x.flip(1), None, rope).flip(1)).abs().max() > 1e-3


def test_attention_types_have_their_own_parameters():
    names = lambda att: {n.split(".", 2)[2] for n, _ in _model(attention=att)[1].named_parameters()  # noqa: E731
                         if ".attention." in n}
    assert names("rope_sdpa") == {"attention.qkv.weight", "attention.qkv.bias", "attention.out.weight",
                                  "attention.out.bias"}
    assert "attention.pos_bias_u" in names("relpos_xl")


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_gradient_reaches_all_parameters(attention):
    sub, enc = _model(dropout=0.1, attention=attention)
    sub.train(), enc.train()
    torch.manual_seed(6)
    feats, lengths = _padded_batch([torch.randn(t, FEAT_DIM) for t in [50, 31, 4]])
    y, _ = _run(sub, enc, feats, lengths)
    (y * torch.randn_like(y)).sum().backward()
    for name, p in list(sub.named_parameters()) + list(enc.named_parameters()):
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert (p.grad != 0).any(), name


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_eval_is_deterministic_and_train_uses_dropout(attention):
    sub, enc = _model(dropout=0.1, attention=attention)
    torch.manual_seed(7)
    feats, lengths = _padded_batch([torch.randn(t, FEAT_DIM) for t in [60, 45]])
    sub.eval(), enc.eval()
    with torch.no_grad():
        a, _ = _run(sub, enc, feats, lengths)
        b, _ = _run(sub, enc, feats, lengths)
    assert torch.equal(a, b)
    sub.train(), enc.train()
    with torch.no_grad():
        c, out_lengths = _run(sub, enc, feats, lengths)
        d, _ = _run(sub, enc, feats, lengths)
    assert (c - d).abs().max() > 1e-3
    assert (c[1, int(out_lengths[1]) :] == 0).all()
