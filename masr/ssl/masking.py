"""Span masking of frame sequences (BEST-RQ, wav2vec 2.0 / w2v-BERT style)."""

import torch

from masr.nnet.conformer import make_pad_mask


def span_mask(lengths, max_len, mask_prob, span, min_spans=1, generator=None):
    """Sample spans to mask inside each utterance's valid frames.

    Every valid frame starts a span of ``span`` frames with probability ``mask_prob``
    (spans may overlap and are cut at the utterance end), so the expected masked fraction of a
    long utterance is ``1 - (1 - mask_prob) ** span``. Each utterance gets at least
    ``min_spans`` span starts, so every utterance contributes to the loss.

    Arguments
    ---------
    lengths : torch.LongTensor
        (B,) valid frames.
    max_len : int
        Time dimension of the mask.
    mask_prob : float
        Probability that a frame starts a span.
    span : int
        Span length in frames.
    min_spans : int
        Minimum span starts per utterance with at least one frame.
    generator : torch.Generator or None
        Random source (default: torch's global one, which checkpoints save and restore).

    Returns
    -------
    torch.BoolTensor
        (B, max_len), True at masked frames; never True at padding.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> m = span_mask(torch.tensor([50, 20]), 50, mask_prob=0.05, span=5, generator=g)
    >>> m.shape, bool(m[1, 20:].any()), bool(m.any(dim=1).all())
    (torch.Size([2, 50]), False, True)
    """
    device = lengths.device
    batch = lengths.shape[0]
    valid = ~make_pad_mask(lengths, max_len)
    starts = (torch.rand(batch, max_len, generator=generator, device=device) < mask_prob) & valid
    if min_spans > 0:
        # add random starts where an utterance got fewer than min_spans
        scores = torch.rand(batch, max_len, generator=generator, device=device).masked_fill(~valid, -1.0)
        top = scores.topk(min(min_spans, max_len), dim=1).indices
        forced = torch.zeros_like(starts).scatter_(1, top, True) & valid
        need = starts.sum(dim=1, keepdim=True) < min_spans
        starts = starts | (forced & need)
    # a frame is masked if a span started within the previous `span` frames: differences of a
    # running count, in integers (a float convolution may round 0 to a tiny non-zero value)
    started = starts.long().cumsum(dim=1)
    before = torch.nn.functional.pad(started, (span, 0))[:, :max_len]  # count up to frame t - span
    return (started > before) & valid
