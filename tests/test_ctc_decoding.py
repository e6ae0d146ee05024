"""masr.downstream.ctc_decoding: greedy decoding, CTC prefix beam search and batch decoding."""

import torch

from masr.downstream import ctc_decoding
from masr.downstream.ctc_decoding import CTCBeamDecoder, collapse, ctc_greedy, ctc_prefix_beam_search
from masr.downstream.tokenizer import BLANK, CTCTokenizer, train_tokenizer

#: 5 scripts: Latin, Cyrillic, Devanagari, Arabic, kana, Hangul
MULTILINGUAL = ["dobar dan hvala", "добар дан хвала", "भूमिका खिलाड़ी उपचार", "اوپر درج ادبی",
                "ともかく かし アップデート", "한다면 그러 회의", "dan dobar"]


def test_greedy_collapses_repeats_and_drops_blanks():
    path = torch.tensor([0, 2, 2, 0, 2, 3, 3, 3, 0, 0, 1, 1])
    noise = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    logits = torch.nn.functional.one_hot(path, 4).float() * 5 + noise
    assert ctc_greedy(logits) == [2, 2, 3, 1]
    assert ctc_greedy(logits, length=6) == [2, 2, 3]
    assert collapse([0, 0, 0]) == [] and collapse([]) == [] and collapse([1, 1, 1]) == [1]


def test_prefix_beam_search_agrees_with_greedy_on_peaked_outputs():
    g = torch.Generator().manual_seed(1)
    path = torch.randint(0, 6, (30,), generator=g)
    logits = torch.nn.functional.one_hot(path, 6).float() * 8 + torch.randn(30, 6, generator=g)
    log_probs = torch.log_softmax(logits, -1)
    assert ctc_prefix_beam_search(log_probs, beam_size=4) == ctc_greedy(log_probs) == collapse(path.tolist())
    assert ctc_prefix_beam_search(log_probs, beam_size=1) == ctc_greedy(log_probs)


def test_prefix_beam_search_finds_a_better_labelling_than_greedy():
    # 3 frames over {blank, a, b}: the best path is "_ _ _" (0.4^3 = 0.064), but the paths of "a" add up to more
    probs = torch.tensor([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25], [0.4, 0.35, 0.25]])
    assert ctc_greedy(probs.log()) == []
    assert ctc_prefix_beam_search(probs.log(), beam_size=3) == [1]
    # brute force: the most probable labelling over all 27 paths
    totals = {}
    for a in range(3):
        for b in range(3):
            for c in range(3):
                key = tuple(collapse([a, b, c]))
                totals[key] = totals.get(key, 0.0) + float(probs[0, a] * probs[1, b] * probs[2, c])
    assert max(totals, key=totals.get) == (1,)


#: The project's own prefix beam search (before SpeechBrain's) on log_softmax(4 * randn(60, 8)) of
#: torch.Generator().manual_seed(0), beam 4 (beam 2 gave the greedy hypothesis, less probable).
TODAYS_BEAM_SEED0 = [4, 5, 7, 5, 6, 5, 2, 3, 5, 6, 1, 6, 4, 2, 6, 7, 3, 7, 3, 6, 2, 7, 4, 1, 6, 4, 6, 4, 7, 1, 4, 3,
                     4, 6, 1, 6, 5, 3, 5, 2, 1, 6, 3, 6, 4, 5, 3, 6]


def _log_p(log_probs, ids):
    """log P(labelling) under CTC (the forward algorithm of torch's ctc_loss)."""
    if not ids:
        return float(log_probs[:, BLANK].sum())
    return -float(torch.nn.functional.ctc_loss(log_probs[:, None], torch.tensor([ids]), torch.tensor([len(log_probs)]),
                                               torch.tensor([len(ids)]), reduction="sum"))


def test_library_beam_search_gives_todays_hypotheses_on_a_fixed_case():
    lp = [torch.log_softmax(torch.randn(60, 8, generator=torch.Generator().manual_seed(s)) * 4, -1) for s in range(3)]
    assert ctc_prefix_beam_search(lp[0], beam_size=4) == TODAYS_BEAM_SEED0
    assert ctc_greedy(lp[0]) != TODAYS_BEAM_SEED0  # the case is one where the beam matters
    # beam 2: today's search kept the greedy hypothesis; the library's finds the beam-4 one, more probable
    assert ctc_prefix_beam_search(lp[0], beam_size=2) == TODAYS_BEAM_SEED0
    assert _log_p(lp[0], TODAYS_BEAM_SEED0) > _log_p(lp[0], ctc_greedy(lp[0]))
    for x in lp[1:]:  # seeds 1 and 2: today's beam 2 and 4 hypotheses were the greedy ones
        for beam in (2, 4):
            assert ctc_prefix_beam_search(x, beam_size=beam) == ctc_greedy(x)
    # with a length: the padding frames are not decoded
    padded = torch.cat([lp[0], torch.log_softmax(torch.randn(7, 8) * 4, -1)])
    assert CTCBeamDecoder(8, beam_size=4).best_ids(padded, length=60) == TODAYS_BEAM_SEED0


def test_decode_batch_beam_detokenises_like_greedy(tmp_path):
    train_tokenizer(MULTILINGUAL, str(tmp_path / "tok"), vocab_size=80, model_type="unigram")
    tok = CTCTokenizer(str(tmp_path / "tok" / "sp.model"))
    texts = ["dan dobar", "добар дан хвала"]
    paths = [[0] + [x for i in tok.encode(t) for x in (i, i, 0)] for t in texts]
    length = max(map(len, paths))
    logits = torch.stack([torch.nn.functional.one_hot(torch.tensor(p + [0] * (length - len(p))), tok.num_outputs)
                          for p in paths]).float() * 6
    lengths = torch.tensor([len(p) for p in paths])
    assert ctc_decoding.decode_batch(logits, lengths, tok, beam_size=1) == texts
    assert ctc_decoding.decode_batch(logits, lengths, tok, beam_size=3) == texts
