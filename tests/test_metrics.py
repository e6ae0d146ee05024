"""Tests of masr.metrics on small hand-computed cases."""

import numpy as np
import pytest
import torch

from masr.metrics import (accuracy, confusion_matrix, edit_distance, equal_error_rate, langid_eer,
                          macro_f1, per_class_accuracy, wer)

PRED3 = [0, 0, 1, 1, 2, 2, 0]
REF3 = [0, 1, 1, 1, 2, 0, 0]


def test_accuracy():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    # PRED3 vs REF3: correct at positions 0, 2, 3, 4, 6 -> 5 / 7
    assert accuracy(PRED3, REF3) == pytest.approx(5 / 7)
    with pytest.raises(ValueError):
        accuracy([1], [1, 2])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_macro_f1_three_classes():
    # PRED3 = [0, 0, 1, 1, 2, 2, 0], REF3 = [0, 1, 1, 1, 2, 0, 0]
    # class 0: TP = 2 (pos 0, 6), predicted 3 times, referenced 3 times -> P = 2/3, R = 2/3, F1 = 2/3
    # class 1: TP = 2 (pos 2, 3), predicted 2 times, referenced 3 times -> P = 1, R = 2/3, F1 = 4/5
    # class 2: TP = 1 (pos 4), predicted 2 times, referenced 1 time -> P = 1/2, R = 1, F1 = 2/3
    # macro F1 = (2/3 + 4/5 + 2/3) / 3 = (32/15) / 3 = 32/45
    assert macro_f1(PRED3, REF3) == pytest.approx(32 / 45)
    assert macro_f1(PRED3, REF3, labels=[0, 1, 2]) == pytest.approx(32 / 45)


def test_macro_f1_never_predicted_and_absent_classes():
    pred = ["a", "a", "b", "b"]
    ref = ["a", "c", "b", "b"]
    # a: P = 1/2, R = 1, F1 = 2/3; b: P = 1, R = 1, F1 = 1; c never predicted: P = 0, R = 0 -> F1 = 0
    assert macro_f1(pred, ref) == pytest.approx((2 / 3 + 1 + 0) / 3)
    # "d" has no reference and no prediction -> excluded, same value
    assert macro_f1(pred, ref, labels=["a", "b", "c", "d"]) == pytest.approx((2 / 3 + 1 + 0) / 3)
    # restricting the classes: only a and b averaged
    assert macro_f1(pred, ref, labels=["a", "b"]) == pytest.approx((2 / 3 + 1) / 2)
    # a class predicted but never referenced also gets F1 = 0
    assert macro_f1([0, 1], [0, 0]) == pytest.approx((2 / 3 + 0) / 2)  # 0: P=1, R=1/2
    with pytest.raises(ValueError):
        macro_f1([0], [0], labels=[5])


def test_confusion_matrix():
    cm = confusion_matrix(PRED3, REF3, labels=[0, 1, 2])
    # rows = reference, cols = prediction
    expected = np.array([[2, 0, 1],   # ref 0: pred 0 (pos 0, 6), pred 2 (pos 5)
                         [1, 2, 0],   # ref 1: pred 0 (pos 1), pred 1 (pos 2, 3)
                         [0, 0, 1]])  # ref 2: pred 2 (pos 4)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == len(REF3)
    # label order defines row / column order
    np.testing.assert_array_equal(confusion_matrix(PRED3, REF3, labels=[2, 1, 0]),
                                  expected[::-1, ::-1])
    with pytest.raises(ValueError):
        confusion_matrix([3], [0], labels=[0, 1])


def test_per_class_accuracy():
    # ref 0 at pos 0, 5, 6 -> preds 0, 2, 0 -> 2/3; ref 1 at 1, 2, 3 -> 0, 1, 1 -> 2/3; ref 2 -> 1
    out = per_class_accuracy(PRED3, REF3)
    assert list(out) == [0, 1, 2]
    assert out[0] == pytest.approx(2 / 3) and out[1] == pytest.approx(2 / 3) and out[2] == 1.0


def test_eer_exact_crossing():
    # scores [0.9, 0.8, 0.7, 0.6], targets [T, F, T, F]; 2 targets, 2 non-targets; accept score >= t
    # t = inf: FAR 0, FRR 1; t = 0.9: FAR 0, FRR 1/2; t = 0.8: FAR 1/2 (0.8 accepted), FRR 1/2 (0.7
    # rejected) -> FAR == FRR exactly at t = 0.8 -> EER = 0.5
    eer, thr = equal_error_rate([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    assert eer == 0.5 and thr == 0.8


def test_eer_interpolated():
    # scores [0.9, 0.8, 0.7, 0.6, 0.5], targets [T, T, F, T, F]; 3 targets, 2 non-targets
    # t = 0.8: FAR 0, FRR 1/3 (FAR - FRR = -1/3); t = 0.7: FAR 1/2, FRR 1/3 (FAR - FRR = +1/6)
    # sign change: alpha = (1/3) / (1/3 + 1/6) = 2/3 of the way -> FAR = 2/3 * 1/2 = 1/3 = FRR
    # threshold = 0.8 + 2/3 * (0.7 - 0.8)
    eer, thr = equal_error_rate([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0])
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.8 - 0.2 / 3)
    # same trials in another order give the same answer
    eer2, thr2 = equal_error_rate([0.6, 0.5, 0.9, 0.7, 0.8], [1, 0, 1, 0, 1])
    assert eer2 == pytest.approx(eer) and thr2 == pytest.approx(thr)


def test_eer_extremes():
    # perfectly separated: at t = 0.8 FAR = 0, FRR = 0
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == (0.0, 0.8)
    # reversed (all non-targets above all targets): FAR - FRR = 0 only at t = 0.8, FAR = FRR = 1
    assert equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == (1.0, 0.8)


def test_eer_ties():
    # one target and one non-target tied: t = inf (FAR 0, FRR 1) -> t = 0.5 (FAR 1, FRR 0);
    # the crossing is halfway -> EER 0.5 (tied scores are never split)
    assert equal_error_rate([0.5, 0.5], [1, 0]) == (0.5, 0.5)
    # 0.9 T, then a tie at 0.5 of 1 T and 1 F, then 0.1 F: t = 0.9: FAR 0, FRR 1/2 (diff -1/2);
    # t = 0.5: FAR 1/2, FRR 0 (diff +1/2) -> halfway: EER = 1/4, threshold 0.7
    eer, thr = equal_error_rate([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert eer == pytest.approx(0.25) and thr == pytest.approx(0.7)


def test_eer_errors():
    with pytest.raises(ValueError):
        equal_error_rate([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        equal_error_rate([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError):
        equal_error_rate([0.1, 0.2], [0, 1, 1])


def test_langid_eer_pooled_vs_average():
    scores = [[0.9, 0.1],
              [0.6, 0.4],
              [0.3, 0.7]]
    refs = [0, 1, 1]
    # average: language 0 column [0.9 T, 0.6 F, 0.3 F] separates -> 0; language 1 column
    # [0.1 F, 0.4 T, 0.7 T] separates -> 0; mean 0
    assert langid_eer(scores, refs, pooling="average") == 0.0
    # pooled: targets 0.9, 0.4, 0.7; non-targets 0.1, 0.6, 0.3. Decreasing: .9T .7T .6F .4T .3F .1F
    # t = 0.7: FAR 0, FRR 1/3; t = 0.6: FAR 1/3, FRR 1/3 -> EER 1/3
    assert langid_eer(scores, refs, pooling="pooled") == pytest.approx(1 / 3)
    assert langid_eer(scores, refs) == pytest.approx(1 / 3)  # default pooled


def test_langid_eer_skips_language_without_targets():
    # 3 languages, language 2 never referenced -> skipped in the average
    scores = [[0.9, 0.2, 0.5],
              [0.3, 0.8, 0.5],
              [0.6, 0.7, 0.5],
              [0.1, 0.4, 0.5]]
    refs = [0, 1, 1, 0]
    # lang 0 column: 0.9 T, 0.6 F, 0.3 F, 0.1 T -> t=0.9: FAR 0, FRR 1/2; t=0.6: FAR 1/2, FRR 1/2
    #   -> EER 1/2
    # lang 1 column: 0.8 T, 0.7 T, 0.4 F, 0.2 F -> separated -> 0
    assert langid_eer(scores, refs, pooling="average") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        langid_eer(scores, refs, pooling="max")


def _ed(ref, hyp):
    return edit_distance(ref.split(), hyp.split())


def test_edit_distance_single_errors():
    assert _ed("a b c d", "a x c d") == dict(substitutions=1, deletions=0, insertions=0, errors=1,
                                             ref_len=4)
    assert _ed("a b c d", "a c d") == dict(substitutions=0, deletions=1, insertions=0, errors=1,
                                           ref_len=4)
    assert _ed("a b c d", "a b c d e") == dict(substitutions=0, deletions=0, insertions=1, errors=1,
                                               ref_len=4)
    assert _ed("a b c d", "a b c d")["errors"] == 0


def test_edit_distance_combined():
    assert _ed("a b c d", "a x c d e") == dict(substitutions=1, deletions=0, insertions=1, errors=2,
                                               ref_len=4)
    # b -> x, d deleted, g inserted (the all-substitution alignment costs 4)
    assert _ed("a b c d e f", "a x c e f g") == dict(substitutions=1, deletions=1, insertions=1,
                                                     errors=3, ref_len=6)
    # "a b c d" vs "a x d e": {b -> x, c deleted, e inserted} and {b -> x, c -> d, d -> e} both cost
    # 3; the tie rule prefers substitutions
    assert _ed("a b c d", "a x d e") == dict(substitutions=3, deletions=0, insertions=0, errors=3,
                                             ref_len=4)


def test_edit_distance_empty():
    assert _ed("a b c", "") == dict(substitutions=0, deletions=3, insertions=0, errors=3, ref_len=3)
    assert _ed("", "a b") == dict(substitutions=0, deletions=0, insertions=2, errors=2, ref_len=0)
    assert _ed("", "") == dict(substitutions=0, deletions=0, insertions=0, errors=0, ref_len=0)


def test_edit_distance_tie_rule():
    # "a b" vs "b a": 2 substitutions or delete a + insert a (both cost 2) -> substitutions preferred
    assert _ed("a b", "b a") == dict(substitutions=2, deletions=0, insertions=0, errors=2, ref_len=2)


def test_wer_corpus_level():
    refs = ["a b c d", "a", "x y"]
    hyps = ["a b c d", "b", "x y z"]
    # errors: 0, 1 (sub), 1 (ins); words: 4 + 1 + 2 = 7 -> corpus WER 2/7
    out = wer(refs, hyps)
    assert out == dict(wer=pytest.approx(2 / 7), substitutions=1, deletions=0, insertions=1,
                       errors=2, words=7)
    # the mean of per-utterance WERs differs: (0 + 1 + 1/2) / 3 = 1/2
    mean_per_utt = np.mean([wer([r], [h])["wer"] for r, h in zip(refs, hyps)])
    assert mean_per_utt == pytest.approx(0.5)
    assert out["wer"] != pytest.approx(mean_per_utt)


def test_wer_empty_references():
    # empty reference with a non-empty hypothesis counts insertions, 0 words
    out = wer(["a b", ""], ["a b", "c d"])
    assert out["insertions"] == 2 and out["words"] == 2 and out["wer"] == 1.0
    # whitespace tokenisation
    assert wer(["  a   b "], ["a\tb"])["wer"] == 0.0
    with pytest.raises(ValueError):
        wer(["", " "], ["a", ""])
    with pytest.raises(ValueError):
        wer(["a"], ["a", "b"])


@pytest.mark.parametrize("convert", [list, np.asarray, torch.tensor])
def test_input_types_agree(convert):
    pred, ref = convert(PRED3), convert(REF3)
    assert accuracy(pred, ref) == pytest.approx(5 / 7)
    assert macro_f1(pred, ref) == pytest.approx(32 / 45)
    np.testing.assert_array_equal(confusion_matrix(pred, ref, labels=[0, 1, 2]),
                                  confusion_matrix(PRED3, REF3, labels=[0, 1, 2]))
    out = per_class_accuracy(pred, ref)
    assert list(out) == [0, 1, 2] and all(type(k) is int for k in out)
    assert out == per_class_accuracy(PRED3, REF3)
    eer = equal_error_rate(convert([0.9, 0.8, 0.7, 0.6, 0.5]), convert([True, True, False, True, False]))
    assert eer[0] == pytest.approx(1 / 3) and eer[1] == pytest.approx(0.8 - 0.2 / 3)
    scores = convert([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    assert langid_eer(scores, convert([0, 1, 1])) == pytest.approx(1 / 3)
    assert langid_eer(scores, convert([0, 1, 1]), pooling="average") == 0.0
    assert edit_distance(convert([1, 2, 3, 4]), convert([1, 5, 3, 4, 6]))["errors"] == 2


# --------------------------------------------------------------------------------------------------
# cross-checks against SpeechBrain
# --------------------------------------------------------------------------------------------------

def _sb_eer(scores, targets):
    from speechbrain.utils.metric_stats import EER

    s, t = torch.tensor(np.asarray(scores, dtype=np.float64)), torch.tensor(np.asarray(targets, dtype=bool))
    return EER(s[t], s[~t])[0]


def test_eer_agrees_with_speechbrain():
    # exact crossings: both give the same EER
    for scores, targets in (([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]), ([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]),
                            ([0.9, 0.7, 0.6, 0.4, 0.3, 0.1], [1, 1, 0, 1, 0, 0])):
        assert equal_error_rate(scores, targets)[0] == pytest.approx(_sb_eer(scores, targets))
    # continuous scores: SpeechBrain takes (FAR + FRR) / 2 at the closest of its thresholds, masr interpolates
    # the crossing; they differ by less than one trial's step
    rng = np.random.default_rng(0)
    targets = rng.random(300) < 0.2
    scores = rng.normal(size=300) + targets
    step = 1 / min(targets.sum(), (~targets).sum())
    assert abs(equal_error_rate(scores, targets)[0] - _sb_eer(scores, targets)) < step
    # pooled language-ID EER: the (utterance, language) cells as trials
    m = rng.normal(size=(60, 4))
    refs = rng.integers(0, 4, size=60)
    m[np.arange(60), refs] += 1.5
    cells = refs[:, None] == np.arange(4)[None]
    assert abs(langid_eer(m, refs) - _sb_eer(m.reshape(-1), cells.reshape(-1))) < 1 / 60
    scores, refs = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], [0, 1, 1]  # the hand-computed case above
    cells = np.array(refs)[:, None] == np.arange(2)[None]
    assert langid_eer(scores, refs) == pytest.approx(_sb_eer(np.ravel(scores), cells.reshape(-1)))


def test_wer_totals_are_those_of_edit_distance():
    import random

    from masr.metrics import error_rate_stats

    rng = random.Random(1)
    for _ in range(300):
        refs = [" ".join(rng.choice("abc") for _ in range(rng.randint(0, 7))) for _ in range(3)]
        hyps = [" ".join(rng.choice("abc") for _ in range(rng.randint(0, 7))) for _ in range(3)]
        if not any(r.split() for r in refs):
            with pytest.raises(ValueError):
                wer(refs, hyps)
            continue
        out = wer(refs, hyps)
        eds = [edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps)]
        assert out["errors"] == sum(e["errors"] for e in eds) and out["words"] == sum(e["ref_len"] for e in eds)
        assert out["substitutions"] + out["deletions"] + out["insertions"] == out["errors"]
        assert out["wer"] == out["errors"] / out["words"]
        chars, _ = error_rate_stats(refs, hyps, unit="char")
        ced = [edit_distance(list(r.replace(" ", "")), list(h.replace(" ", ""))) for r, h in zip(refs, hyps)]
        if any(e["ref_len"] for e in ced):
            assert chars["errors"] == sum(e["errors"] for e in ced)
