"""Tests of masr.report.significance: paired bootstrap CIs of metric differences."""

import itertools
from collections import Counter

import numpy as np
import pytest

from masr.report import significance
from masr.report.significance import (METHOD, BootstrapResult, accuracy_statistic, align,
                                      format_ci, paired_bootstrap, ratio_statistic)


def acc(*seeds):
    """(S, N, 1) correctness array from one 0/1 list per seed."""
    return np.array(seeds, dtype=float)[..., None]


# --------------------------------------------------------------------------------------------------
# exhaustive reference: every one of the N**N equally likely resamples, plain Python
# --------------------------------------------------------------------------------------------------

def corpus_metric(rows, kind):
    """Metric of one seed on a list of per-utterance statistics (plain Python)."""
    if kind == "accuracy":
        return sum(r[0] for r in rows) / len(rows)
    return sum(r[0] for r in rows) / sum(r[1] for r in rows)  # errors / reference units


def exact_distribution(stats_a, stats_b, kind):
    """Exact bootstrap distribution {difference: probability} by enumerating all resamples."""
    seeds, n = len(stats_a), len(stats_a[0])
    dist = Counter()
    for draw in itertools.product(range(n), repeat=n):
        mean_a = sum(corpus_metric([stats_a[s][i] for i in draw], kind) for s in range(seeds)) / seeds
        mean_b = sum(corpus_metric([stats_b[s][i] for i in draw], kind) for s in range(seeds)) / seeds
        dist[round(mean_a - mean_b, 9)] += 1 / n ** n
    return dict(dist)


def exact_quantile(dist, q):
    """Smallest value whose cumulative probability reaches q."""
    total = 0.0
    for value in sorted(dist):
        total += dist[value]
        if total >= q - 1e-12:
            return value
    return max(dist)


EXHAUSTIVE_CASES = {
    "accuracy, 1 seed": (
        [[[1], [1], [0]]], [[[0], [1], [1]]], "accuracy", accuracy_statistic),
    "wer, 1 seed": (
        [[[1, 4], [0, 3], [3, 5]]], [[[2, 4], [1, 3], [1, 5]]], "wer", ratio_statistic),
    "wer, 2 seeds": (
        [[[1, 4], [0, 3], [3, 5]], [[0, 4], [2, 3], [1, 5]]],
        [[[2, 4], [1, 3], [1, 5]], [[2, 4], [0, 3], [2, 5]]], "wer", ratio_statistic),
    # 5**5 = 3125 resamples; here the 95 % bounds (-0.1, +0.05) are inner values, not the extremes
    "wer, 2 seeds, 5 utterances": (
        [[[0, 3], [0, 3], [0, 3], [6, 8], [0, 3]], [[2, 3], [1, 3], [2, 3], [4, 8], [2, 3]]],
        [[[2, 3], [0, 3], [1, 3], [3, 8], [0, 3]], [[1, 3], [1, 3], [1, 3], [6, 8], [2, 3]]],
        "wer", ratio_statistic),
}


@pytest.mark.parametrize("confidence", [0.95, 0.5])
@pytest.mark.parametrize("case", list(EXHAUSTIVE_CASES))
def test_matches_exhaustive_enumeration(case, confidence):
    stats_a, stats_b, kind, statistic = EXHAUSTIVE_CASES[case]
    dist = exact_distribution(stats_a, stats_b, kind)
    assert sum(dist.values()) == pytest.approx(1.0)
    r = paired_bootstrap(np.array(stats_a), np.array(stats_b), statistic, num_samples=200000,
                         seed=3, confidence=confidence, return_replicates=True)
    # point estimate: the difference on the full set, computed by hand
    seeds = len(stats_a)
    full_a = sum(corpus_metric(s, kind) for s in stats_a) / seeds
    full_b = sum(corpus_metric(s, kind) for s in stats_b) / seeds
    assert r.difference == pytest.approx(full_a - full_b, abs=1e-12)
    assert (r.metric_a, r.metric_b) == (pytest.approx(full_a), pytest.approx(full_b))
    # the replicates take exactly the enumerated values, with the enumerated frequencies
    observed = Counter(np.round(r.replicates, 9).tolist())
    assert set(observed) <= set(dist)
    for value, prob in dist.items():
        assert observed[value] / r.num_samples == pytest.approx(prob, abs=0.005), value
    # and the percentile interval is the exact distribution's quantiles (2.5 % / 97.5 % for 95 %)
    tail = (1 - confidence) / 2
    assert r.low == pytest.approx(exact_quantile(dist, tail), abs=1e-9)
    assert r.high == pytest.approx(exact_quantile(dist, 1 - tail), abs=1e-9)
    assert r.significant == (r.low > 0 or r.high < 0)


# --------------------------------------------------------------------------------------------------
# hand-computed cases
# --------------------------------------------------------------------------------------------------

def test_point_estimate_hand_computed():
    # A: 3/4 correct, B: 1/4 correct -> +0.5
    r = paired_bootstrap(acc([1, 1, 0, 1]), acc([0, 1, 0, 0]), accuracy_statistic,
                         num_samples=500)
    assert r.difference == pytest.approx(0.5)
    assert (r.metric_a, r.metric_b) == (pytest.approx(0.75), pytest.approx(0.25))
    assert r.low <= r.difference <= r.high
    assert (r.num_samples, r.num_seeds, r.num_utterances) == (500, 1, 4)
    assert r.method == METHOD
    assert r.confidence == 0.95


def test_identical_models_give_exactly_zero_interval():
    rng = np.random.default_rng(7)
    words = rng.integers(1, 12, size=(3, 40))
    stats = np.stack([rng.integers(0, 5, size=(3, 40)), words], axis=-1)  # (S=3, N=40, K=2)
    r = paired_bootstrap(stats, stats.copy(), ratio_statistic, num_samples=1000)
    assert (r.difference, r.low, r.high) == (0.0, 0.0, 0.0)
    assert not r.significant


def test_all_correct_vs_all_wrong():
    r = paired_bootstrap(acc([1] * 5, [1] * 5), acc([0] * 5, [0] * 5), accuracy_statistic,
                         num_samples=1000)
    assert (r.difference, r.low, r.high, r.significant) == (1.0, 1.0, 1.0, True)
    r = paired_bootstrap(acc([0] * 5), acc([1] * 5), accuracy_statistic, num_samples=1000)
    assert (r.difference, r.low, r.high, r.significant) == (-1.0, -1.0, -1.0, True)


@pytest.mark.parametrize("chunk_elements", [None, 7])
def test_two_utterances_known_distribution(monkeypatch, chunk_elements):
    # per-utterance differences (1, 0): the resampled mean difference is 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4 -> 95 % percentile interval [0, 1], not significant
    if chunk_elements is not None:  # tiny chunks: 3 replicates each, the last one partial
        monkeypatch.setattr(significance, "_CHUNK_ELEMENTS", chunk_elements)
    r = paired_bootstrap(acc([1, 1]), acc([0, 1]), accuracy_statistic, num_samples=20000,
                         return_replicates=True)
    assert r.difference == 0.5
    assert (r.low, r.high, r.significant) == (0.0, 1.0, False)
    freq = {v: np.mean(r.replicates == v) for v in (0.0, 0.5, 1.0)}
    assert sum(freq.values()) == 1.0
    assert freq == {0.0: pytest.approx(0.25, abs=0.02), 0.5: pytest.approx(0.5, abs=0.02),
                    1.0: pytest.approx(0.25, abs=0.02)}


def test_ratio_statistic_is_corpus_level():
    # utterance 1: 1 error / 10 words, utterance 2: 1 error / 1 word
    # corpus WER = 2 / 11 (the mean of per-utterance rates would be 0.55)
    stats_a = np.array([[[1, 10], [1, 1]]])
    stats_b = np.array([[[0, 10], [1, 1]]])  # 1 / 11
    r = paired_bootstrap(stats_a, stats_b, ratio_statistic, num_samples=100)
    assert r.metric_a == pytest.approx(2 / 11)
    assert r.metric_b == pytest.approx(1 / 11)
    assert r.difference == pytest.approx(1 / 11)
    np.testing.assert_allclose(ratio_statistic(np.array([[1.0, 10.0], [3.0, 4.0]]) / 2),
                               [0.1, 0.75])
    # accuracy as a ratio of (correct, 1) per utterance agrees with accuracy_statistic
    correct = acc([1, 0, 1, 1], [0, 0, 1, 1])
    as_ratio = np.concatenate([correct, np.ones_like(correct)], axis=-1)
    r1 = paired_bootstrap(correct, acc([0, 0, 1, 0], [1, 0, 0, 0]), accuracy_statistic,
                          num_samples=300)
    r2 = paired_bootstrap(as_ratio, np.concatenate([acc([0, 0, 1, 0], [1, 0, 0, 0]),
                                                    np.ones_like(correct)], axis=-1),
                          ratio_statistic, num_samples=300)
    assert (r1.difference, r1.low, r1.high) == pytest.approx((r2.difference, r2.low, r2.high))


def test_ratio_statistic_rejects_zero_reference_units():
    empty = np.array([[[0, 0], [0, 0]]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        paired_bootstrap(empty, empty, ratio_statistic, num_samples=10)
    assert np.isnan(ratio_statistic(np.array([1.0, 0.0])))


def test_seeds_averaged_with_the_same_resample():
    # seed 1: A right on utterance 0 only, seed 2: A right on utterance 1 only; B always wrong.
    # Per seed the difference varies with the resample, but the two seeds are anti-correlated:
    # under the SAME resample (c0, c1 draws) their average is (c0 + c1) / 4 = 0.5 always.
    # Independent resamples per seed would spread it over [0, 1].
    a, b = acc([1, 0], [0, 1]), acc([0, 0], [0, 0])
    r = paired_bootstrap(a, b, accuracy_statistic, num_samples=5000, return_replicates=True)
    assert r.num_seeds == 2
    assert (r.difference, r.low, r.high, r.significant) == (0.5, 0.5, 0.5, True)
    assert np.all(r.replicates == 0.5)
    # each seed alone does vary
    alone = paired_bootstrap(a[:1], b[:1], accuracy_statistic, num_samples=5000)
    assert (alone.low, alone.high) == (0.0, 1.0)


def test_seed_average_of_metrics():
    # seed accuracies A: 1.0, 0.5; B: 0.5, 0.0 -> means 0.75 and 0.25
    r = paired_bootstrap(acc([1, 1], [1, 0]), acc([1, 0], [0, 0]), accuracy_statistic,
                         num_samples=100)
    assert (r.metric_a, r.metric_b, r.difference) == (0.75, 0.25, 0.5)


def test_confidence_level_and_narrower_interval():
    rng = np.random.default_rng(1)
    a = acc(*(rng.random((2, 60)) < 0.7).astype(int))
    b = acc(*(rng.random((2, 60)) < 0.5).astype(int))
    wide = paired_bootstrap(a, b, accuracy_statistic, num_samples=4000, confidence=0.95)
    narrow = paired_bootstrap(a, b, accuracy_statistic, num_samples=4000, confidence=0.5)
    assert wide.low <= narrow.low <= narrow.high <= wide.high
    assert narrow.confidence == 0.5


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    a = acc(*(rng.random((3, 50)) < 0.6).astype(int))
    b = acc(*(rng.random((3, 50)) < 0.5).astype(int))
    r1 = paired_bootstrap(a, b, accuracy_statistic, num_samples=2000, seed=5,
                          return_replicates=True)
    r2 = paired_bootstrap(a, b, accuracy_statistic, num_samples=2000, seed=5,
                          return_replicates=True)
    r3 = paired_bootstrap(a, b, accuracy_statistic, num_samples=2000, seed=6,
                          return_replicates=True)
    assert r1 == r2
    np.testing.assert_array_equal(r1.replicates, r2.replicates)
    assert not np.array_equal(r1.replicates, r3.replicates)
    assert r1.replicates is not None and r1.replicates.shape == (2000,)
    assert paired_bootstrap(a, b, accuracy_statistic, num_samples=10).replicates is None


def test_as_dict():
    r = paired_bootstrap(acc([1, 0]), acc([0, 0]), accuracy_statistic, num_samples=50)
    d = r.as_dict()
    assert "replicates" not in d
    assert d["method"] == METHOD
    assert set(d) == {"difference", "low", "high", "significant", "metric_a", "metric_b",
                      "confidence", "num_samples", "num_seeds", "num_utterances", "method"}


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

def test_different_seed_counts_rejected():
    with pytest.raises(ValueError, match=r"different numbers of seeds \(2 vs 1\)"):
        paired_bootstrap(acc([1, 0], [1, 1]), acc([0, 1]), accuracy_statistic)


@pytest.mark.parametrize("a, b, match", [
    (acc([1, 0, 1]), acc([1, 0]), r"different numbers of utterances \(3 vs 2\)"),
    (np.ones((1, 2, 2)), np.ones((1, 2, 1)), r"different numbers of statistics"),
    (np.ones((2, 3)), np.ones((2, 3)), r"shape \(seeds, utterances, statistics\)"),
    (np.ones((1, 0, 1)), np.ones((1, 0, 1)), r"empty"),
    (np.array([[[np.nan]]]), np.ones((1, 1, 1)), r"NaN"),
    (np.array([[["a"]]]), np.ones((1, 1, 1)), r"numeric"),
])
def test_bad_shapes_rejected(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, accuracy_statistic, num_samples=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_samples": 0}, "num_samples"), ({"num_samples": 2.5}, "num_samples"),
    ({"confidence": 1.0}, "confidence"), ({"confidence": 0}, "confidence"),
])
def test_bad_parameters_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(acc([1, 0]), acc([0, 0]), accuracy_statistic, **kwargs)


def test_statistic_shape_checked():
    with pytest.raises(ValueError, match="statistic must map"):
        paired_bootstrap(acc([1, 0]), acc([0, 0]), lambda m: m, num_samples=10)
    with pytest.raises(ValueError, match="K = 1"):
        paired_bootstrap(np.ones((1, 2, 2)), np.ones((1, 2, 2)), accuracy_statistic)
    with pytest.raises(ValueError, match="K = 2"):
        paired_bootstrap(acc([1, 0]), acc([0, 0]), ratio_statistic)


# --------------------------------------------------------------------------------------------------
# align
# --------------------------------------------------------------------------------------------------

def test_align_orders_and_stacks():
    a = [{"u2": (1, 4), "u1": (0, 3)}, {"u1": (2, 3), "u2": (0, 4)}]
    b = [{"u1": (1, 3), "u2": (1, 4)}, {"u2": (2, 4), "u1": (0, 3)}]
    utts, sa, sb = align(a, b)
    assert utts == ["u1", "u2"]
    assert sa.shape == sb.shape == (2, 2, 2)
    np.testing.assert_array_equal(sa[0], [[0, 3], [1, 4]])
    np.testing.assert_array_equal(sb[1], [[0, 3], [2, 4]])
    # one dict is one seed; scalars are K = 1
    utts, sa, sb = align({"x": 1, "y": 0}, {"y": 1, "x": 1})
    assert sa.shape == (1, 2, 1)
    assert sb[0, :, 0].tolist() == [1.0, 1.0]
    r = paired_bootstrap(sa, sb, accuracy_statistic, num_samples=20)
    assert r.difference == -0.5


def test_align_names_missing_utterances():
    with pytest.raises(ValueError, match=r"model B \(seed index 0\) lacks 2 utterance\(s\) of "
                                         r"model A \(seed index 0\): u2, u3"):
        align({"u1": 1, "u2": 0, "u3": 1}, {"u1": 1})
    with pytest.raises(ValueError, match=r"model A \(seed index 0\) lacks 1 utterance\(s\) of "
                                         r"model B \(seed index 1\): extra"):
        align([{"u1": 1}], [{"u1": 1}, {"u1": 0, "extra": 1}])
    with pytest.raises(ValueError, match=r"model A \(seed index 1\) lacks 1 utterance"):
        align([{"u1": 1, "u2": 1}, {"u1": 0}], [{"u1": 1, "u2": 1}])
    many = {f"u{i}": 1 for i in range(8)}
    with pytest.raises(ValueError, match=r"lacks 7 utterance\(s\).*and 2 more"):
        align(many, {"u0": 1})


def test_align_rejects_bad_statistics():
    with pytest.raises(ValueError, match="same number of statistics"):
        align({"u1": (1, 2), "u2": 1}, {"u1": (1, 2), "u2": (1, 2)})
    with pytest.raises(ValueError, match="different numbers of statistics"):
        align({"u1": (1, 2)}, {"u1": 1})
    with pytest.raises(ValueError, match="no runs"):
        align([], {"u1": 1})
    with pytest.raises(ValueError, match="no utterances"):
        align({}, {"u1": 1})


def test_align_then_different_seed_counts_rejected():
    _, sa, sb = align([{"u": 1}, {"u": 0}], [{"u": 1}])
    with pytest.raises(ValueError, match="different numbers of seeds"):
        paired_bootstrap(sa, sb, accuracy_statistic)


# --------------------------------------------------------------------------------------------------
# format_ci
# --------------------------------------------------------------------------------------------------

def result(difference, low, high, significant):
    return BootstrapResult(difference=difference, low=low, high=high, significant=significant,
                           metric_a=0.5, metric_b=0.5, confidence=0.95, num_samples=10,
                           num_seeds=1, num_utterances=3)


def test_format_ci():
    assert format_ci(result(0.032, 0.004, 0.061, True)) == "+3.2 [+0.4, +6.1]*"
    assert format_ci(result(-0.0123, -0.051, 0.02, False)) == "-1.2 [-5.1, +2.0]"
    assert format_ci(result(-0.0001, -0.0004, 0.0, False)) == "+0.0 [+0.0, +0.0]"  # no -0.0
    assert format_ci(result(0.5, 0.25, 0.75, True), digits=2, scale=1) == "+0.50 [+0.25, +0.75]*"
    assert format_ci(result(0.5, 0.25, 0.75, True).as_dict()) == "+50.0 [+25.0, +75.0]*"
    with pytest.raises(ValueError, match="non-finite"):
        format_ci(result(float("nan"), 0.0, 0.0, False))


def test_format_ci_of_a_bootstrap():
    r = paired_bootstrap(acc([1] * 4), acc([0] * 4), accuracy_statistic, num_samples=10)
    assert format_ci(r) == "+100.0 [+100.0, +100.0]*"
