"""masr.ssl.masking: span masking rates and padding."""

import pytest
import torch

from masr.ssl.masking import span_mask


@pytest.mark.parametrize("prob, span", [(0.04, 10), (0.01, 40), (0.065, 10)])
def test_masked_fraction_matches_the_expected_rate(prob, span):
    g = torch.Generator().manual_seed(0)
    lengths = torch.full((64,), 2000)
    mask = span_mask(lengths, 2000, prob, span, min_spans=0, generator=g)
    expected = 1 - (1 - prob) ** span  # ignoring the cut at the end (span << length)
    assert abs(mask.float().mean().item() - expected) < 0.02


def test_never_masks_padding_and_every_utterance_gets_a_span():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 1, 300, 30])
    mask = span_mask(lengths, 300, 0.001, 10, min_spans=1, generator=g)
    for i, n in enumerate(lengths.tolist()):
        assert not mask[i, n:].any()
        assert mask[i, :n].any()


def test_spans_are_contiguous_runs_of_the_span_length():
    g = torch.Generator().manual_seed(2)
    mask = span_mask(torch.tensor([1000]), 1000, 0.002, 7, min_spans=0, generator=g)[0].int()
    edges = torch.diff(torch.cat([torch.tensor([0]), mask, torch.tensor([0])]))
    runs = (torch.nonzero(edges == -1).flatten() - torch.nonzero(edges == 1).flatten()).tolist()
    assert runs and all(r >= 7 for r in runs[:-1])  # overlapping spans merge into longer runs
