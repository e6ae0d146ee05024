"""masr.downstream.asr_scoring: WER / CER (as the project computed them before SpeechBrain's
ErrorRateStats), per-language scores and the per-utterance alignments."""

import pytest

from masr.downstream.asr_scoring import cer, score
from masr.metrics import edit_distance, wer


def _todays_rates(refs, hyps):
    """WER and CER as the project computed them before SpeechBrain's ErrorRateStats: masr.metrics.edit_distance
    of each pair, summed."""
    w = [edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps)]
    c = [edit_distance(list(r.replace(" ", "")), list(h.replace(" ", ""))) for r, h in zip(refs, hyps)]
    return (sum(x["errors"] for x in w) / sum(x["ref_len"] for x in w),
            sum(x["errors"] for x in c) / sum(x["ref_len"] for x in c))


@pytest.mark.parametrize("refs,hyps", [
    (["the cat sat", "on the mat", "ともかく"], ["the bat sat down", "on mat", "ともかくか"]),
    (["a b c", "d e"], ["", "d e"]),  # an empty hypothesis: all deletions
    (["", "a b"], ["x y", "a b"]),  # an empty reference: insertions, no word
    (["", "a"], ["", ""]),
    (["a b c d", "a b"], ["a x d e", "b a"]),  # tied alignments
    (["добар дан хвала", "한다면 그러 회의"], ["добар дан", "한다면그러 회의 회"]),
])
def test_wer_and_cer_agree_with_todays_numbers(refs, hyps):
    todays_wer, todays_cer = _todays_rates(refs, hyps)
    assert wer(refs, hyps)["wer"] == todays_wer  # same integer counts, same division: exactly equal
    assert cer(refs, hyps)["cer"] == todays_cer


def test_wer_and_cer_agree_with_todays_numbers_on_random_cases():
    import random

    rng = random.Random(0)
    words = ["a", "b", "ab", "ba", "c"]
    for _ in range(200):
        refs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(4)]
        hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(4)]
        if not any(r.split() for r in refs):
            continue
        assert (wer(refs, hyps)["wer"], cer(refs, hyps)["cer"]) == _todays_rates(refs, hyps)


def test_score_writes_per_utterance_alignments(tmp_path):
    refs = {"u2": "p q", "u1": "x y z", "u3": ""}
    hyps = {"u2": "p r", "u1": "", "u3": "w"}
    langs = {"u1": "aaa", "u2": "bbb", "u3": "bbb"}
    out = score(refs, hyps, langs, details_dir=str(tmp_path), set_name="test")
    assert out == score(refs, hyps, langs)  # writing the details changes no number
    assert out["overall"]["wer"] == pytest.approx(5 / 5) and out["overall"]["cer"] == pytest.approx(5 / 5)
    wer_text = (tmp_path / "wer_details.test.txt").read_text()
    cer_text = (tmp_path / "cer_details.test.txt").read_text()
    assert wer_text.startswith("%WER 100.00 [ 5 / 5, 1 ins, 3 del, 1 sub ]")
    assert cer_text.startswith("%WER 100.00 [ 5 / 5, 1 ins, 3 del, 1 sub ]")  # SpeechBrain's header says WER
    assert [line.split(",")[0] for line in wer_text.splitlines() if line.startswith("u")] == ["u1", "u2", "u3"]
    assert "p ; q\n= ; S\np ; r\n" in wer_text  # reference, operations, hypothesis
    assert "  x   ;   y   ;   z  \n  D   ;   D   ;   D  \n" in wer_text



def test_wer_and_cer_hand_computed():
    refs = ["the cat sat", "on the mat", "ともかく"]
    hyps = ["the bat sat down", "on mat", "ともかくか"]
    # words: sub cat->bat, ins down | del the | sub ともかく -> ともかくか  => 4 errors / 7 words
    w = wer(refs, hyps)
    assert (w["substitutions"], w["deletions"], w["insertions"], w["words"]) == (2, 1, 1, 7)
    # chars without spaces: thecatsat/thebatsatdown: 1 sub + 4 ins; onthemat/onmat: 3 del; +1 ins  => 9 / 21
    c = cer(refs, hyps)
    assert (c["substitutions"], c["deletions"], c["insertions"], c["chars"]) == (1, 3, 5, 21)
    assert c["cer"] == pytest.approx(9 / 21)
    assert cer(["a b"], ["ab"])["cer"] == 0.0  # spaces do not count
    assert cer(["abc"], [""])["cer"] == 1.0
    with pytest.raises(ValueError):
        cer([" "], ["a"])


def test_score_averages_over_languages_and_pools_overall():
    refs = {"a1": "x y z w", "a2": "x", "b1": "p q"}
    hyps = {"a1": "x y z w", "a2": "x", "b1": "p r"}
    langs = {"a1": "aaa", "a2": "aaa", "b1": "bbb"}
    out = score(refs, hyps, langs)
    assert out["per_language"]["aaa"] == {"wer": 0.0, "cer": 0.0, "num_words": 5, "num_utts": 2}
    assert out["per_language"]["bbb"]["wer"] == 0.5 and out["per_language"]["bbb"]["cer"] == 0.5
    assert out["average"] == {"wer": 0.25, "cer": 0.25}
    assert out["overall"]["wer"] == pytest.approx(1 / 7) and out["overall"]["cer"] == pytest.approx(1 / 7)
