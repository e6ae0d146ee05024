"""masr.downstream.ctc: the frames CTC needs, the loss and the long-target filter."""

import pytest
import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.downstream.ctc import CTCDataset, ctc_loss, min_ctc_frames
from tests.helpers.dumps import make_dump_dir


def test_min_ctc_frames_counts_a_blank_between_repeats():
    assert min_ctc_frames([1, 1, 1]) == 5 and min_ctc_frames([1, 2, 1]) == 3


def test_ctc_loss_matches_the_per_utterance_definition():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 4, generator=g)
    lengths, targets = torch.tensor([6, 4]), [[1, 2, 2], [3]]
    per_utt = [torch.nn.functional.ctc_loss(torch.log_softmax(logits[b, :lengths[b]], -1), torch.tensor(targets[b]),
                                            lengths[b:b + 1], torch.tensor([len(targets[b])]), reduction="sum")
               for b in range(2)]
    expected = (per_utt[0] / 3 + per_utt[1] / 1) / 2
    assert ctc_loss(logits, lengths, targets) == pytest.approx(float(expected), rel=1e-5)
    # an impossible alignment gives 0, not inf
    assert float(ctc_loss(logits[:1, :2], torch.tensor([2]), [[1, 1, 1]])) == 0.0


class _Tok:
    """One CTC output per character (a = 1, b = 2, ...), spaces dropped."""

    def encode(self, text):
        return [ord(c) - ord("a") + 1 for c in text if c != " "]


def test_targets_longer_than_the_encoder_output_are_dropped(tmp_path):
    dump = make_dump_dir(str(tmp_path / "d"), num_utts=12, min_frames=10, max_frames=60, seed=3)
    data = FeatsDataset(dump)
    texts = {u: "ab" * (i + 1) for i, u in enumerate(data.utt_ids)}  # 2 .. 24 tokens
    kept = CTCDataset(data, texts, _Tok(), torch.nn.Module())
    out = {u: ((n - 1) // 2 - 1) // 2 for u, n in zip(data.utt_ids, data.num_frames)}  # 4x subsampling
    expected = [u for u in data.utt_ids if len(texts[u]) > out[u]]
    assert expected and len(expected) < len(data)  # the case is tested both ways
    assert [d[0] for d in kept.dropped] == expected
    assert kept.utt_ids == [u for u in data.utt_ids if u not in expected]
    assert kept.num_frames == [n for u, n in zip(data.utt_ids, data.num_frames) if u not in expected]
    item = kept[0]
    assert item["utt"] == kept.utt_ids[0] and item["targets"] == _Tok().encode(texts[item["utt"]])
    assert collate_feats([kept[0], kept[1]])["targets"] == [kept.targets[0], kept.targets[1]]
