"""Paired bootstrap confidence intervals for the difference of a metric between two models.

The results tables compare a row (model A) with a reference row (model B) on the *same* test
utterances; each model was trained with several seeds (runs). :func:`paired_bootstrap` gives a
confidence interval of ``metric(A) - metric(B)`` by resampling test utterances, the variation that
a table of test-set numbers hides; the variation over seeds enters through the average over seeds.

Design: every metric is a function of **per-utterance sufficient statistics averaged over the
utterances** of a (resampled) test set, shape (..., K) -> (...):

- accuracy: K = 1, the statistic is 1 for a correct utterance, 0 otherwise;
  :func:`accuracy_statistic` returns the mean, i.e. correct / N.
- WER / CER: K = 2, (word or character errors, reference words or characters);
  :func:`ratio_statistic` returns mean errors / mean reference units = sum errors / sum reference
  units, the corpus-level rate (not the mean of per-utterance rates). The same ratio with
  (correct, 1) per utterance is accuracy too.

Method (:data:`METHOD`): each bootstrap replicate draws N utterance indices with replacement; the
*same* draw is used for both models and for every seed, so the pairing of the two models on an
utterance (and of seed s of A with seed s of B) is kept. On the resampled set the metric of each
seed of each model is computed, averaged over seeds, and the replicate's value is
``mean_A - mean_B``. The point estimate is the same difference on the full test set, the interval is
the percentile interval of the replicates (2.5 % and 97.5 % for 95 %), and the difference is
flagged significant when that interval excludes 0. Replicates are drawn in chunks as a count matrix
(replicates, N) -- how many times each utterance was drawn -- multiplied by the statistics (N, K):
exact, vectorised, and memory bounded.

:func:`align` turns per-utterance dicts (one per seed) of two models into the aligned arrays and
refuses test sets that differ; :func:`format_ci` writes a result for a percent table, e.g.
``+3.2 [+0.4, +6.1]*``.
"""

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

#: How the interval is computed, for table footnotes (also ``BootstrapResult.method``).
METHOD = ("paired bootstrap over test utterances (same resample for both models and all seeds), "
          "seeds averaged, percentile CI")

#: Upper bound on the elements of one chunk's (replicates, N) count matrix.
_CHUNK_ELEMENTS = 1 << 22


def accuracy_statistic(means):
    """Accuracy from per-utterance correctness (K = 1) averaged over utterances.

    Arguments
    ---------
    means : numpy.ndarray
        Shape (..., 1): mean over the utterances of the 0/1 correctness (K = 1).

    Returns
    -------
    numpy.ndarray
        Shape (...): the accuracy, a fraction in [0, 1].

    Example
    -------
    >>> accuracy_statistic(np.array([[0.75], [0.5]]))
    array([0.75, 0.5 ])
    """
    means = np.asarray(means, dtype=float)
    if means.shape[-1:] != (1,):
        raise ValueError(f"accuracy_statistic expects K = 1 statistic (correct 0/1), got shape "
                         f"{means.shape}")
    return means[..., 0]


def ratio_statistic(means):
    """Corpus-level rate: mean errors / mean reference units (K = 2), e.g. WER or CER.

    The ratio of means equals sum of errors / sum of reference units over the same utterances.
    A zero denominator gives NaN (which :func:`paired_bootstrap` refuses).

    Arguments
    ---------
    means : numpy.ndarray
        Shape (..., 2): (errors, reference units) averaged over the utterances.

    Returns
    -------
    numpy.ndarray
        Shape (...): errors / reference units (a fraction; WER 0.25 = 25 %).

    Example
    -------
    >>> ratio_statistic(np.array([[1.0, 4.0], [3.0, 4.0]]))  # 2 sets, (errors, words) each
    array([0.25, 0.75])
    """
    means = np.asarray(means, dtype=float)
    if means.shape[-1:] != (2,):
        raise ValueError(f"ratio_statistic expects K = 2 statistics (errors, reference units), got "
                         f"shape {means.shape}")
    num, den = means[..., 0], means[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Outcome of :func:`paired_bootstrap`; metric values are fractions (not percent).

    Attributes
    ----------
    difference : float
        Point estimate: metric of A minus metric of B on the full test set (each averaged over
        seeds).
    low, high : float
        Percentile confidence interval of the difference.
    significant : bool
        True when the interval excludes 0 (``low > 0`` or ``high < 0``).
    metric_a, metric_b : float
        The two models' metrics on the full test set, averaged over seeds.
    confidence : float
        Confidence level of the interval (0.95).
    num_samples, num_seeds, num_utterances : int
        Bootstrap replicates, seeds per model, test utterances.
    method : str
        :data:`METHOD`.
    replicates : numpy.ndarray or None
        The replicate differences, shape (num_samples,), when requested.
    """

    difference: float
    low: float
    high: float
    significant: bool
    metric_a: float
    metric_b: float
    confidence: float
    num_samples: int
    num_seeds: int
    num_utterances: int
    method: str = METHOD
    replicates: np.ndarray = dataclasses.field(default=None, repr=False, compare=False)

    def as_dict(self):
        """Plain-Python dict of the result (without the replicates), e.g. for JSON."""
        out = dataclasses.asdict(self)
        out.pop("replicates")
        return out


def _check_stats(stats_a, stats_b):
    """Both statistics as float arrays of the same (S, N, K) shape, finite."""
    arrays = []
    for name, stats in (("stats_a", stats_a), ("stats_b", stats_b)):
        arr = np.asarray(stats)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                       or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(float)
        if arr.ndim != 3:
            raise ValueError(f"{name} must have shape (seeds, utterances, statistics), got shape "
                             f"{arr.shape} (one seed of accuracy: correct[None, :, None])")
        if 0 in arr.shape:
            raise ValueError(f"{name} is empty: shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
        arrays.append(arr)
    a, b = arrays
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"the two models have different numbers of seeds ({a.shape[0]} vs {b.shape[0]}); seeds "
            f"are paired by index, so give both models the same seeds (e.g. drop the extra runs)")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two models were scored on different numbers of utterances "
                         f"({a.shape[1]} vs {b.shape[1]}); the test sets must be identical "
                         f"(see align())")
    if a.shape[2] != b.shape[2]:
        raise ValueError(f"the two models have different numbers of statistics per utterance "
                         f"({a.shape[2]} vs {b.shape[2]})")
    return a, b


def _seed_metrics(statistic, means, name, expected_shape):
    """statistic(means) as a float array of ``expected_shape``, all finite."""
    values = np.asarray(statistic(means), dtype=float)
    if values.shape != expected_shape:
        raise ValueError(f"statistic must map (..., K) to (...): got shape {values.shape} for "
                         f"input shape {means.shape}")
    if not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(f"statistic of {name} is NaN or infinite in {bad} case(s) (e.g. a "
                         f"resample with no reference words); the metric is undefined there")
    return values


def paired_bootstrap(stats_a, stats_b, statistic, num_samples=10000, seed=0, confidence=0.95,
                     return_replicates=False):
    """Paired bootstrap confidence interval of ``metric(A) - metric(B)`` over test utterances.

    Each replicate draws N utterances with replacement, the same draw for both models and for all
    seeds; per seed the metric is computed on the resampled set, averaged over the seeds of each
    model, and the replicate is the difference of the two averages. The point estimate is that
    difference on the full test set; the interval is the percentile interval of the replicates; the
    difference is significant when the interval excludes 0. See :data:`METHOD`.

    Arguments
    ---------
    stats_a, stats_b : array_like
        Shape (S, N, K): S seeds (runs) of each model, N test utterances, K per-utterance sufficient
        statistics; the same utterances in the same order for both models (see :func:`align`), seed
        s of A paired with seed s of B. Accuracy: K = 1, correct 0/1. WER / CER: K = 2, (errors,
        reference words / characters). Different seed counts raise ValueError.
    statistic : callable
        Maps statistics averaged over utterances, shape (..., K), to the metric, shape (...):
        :func:`accuracy_statistic`, :func:`ratio_statistic` or a custom function.
    num_samples : int
        Number of bootstrap replicates.
    seed : int
        Seed of ``numpy.random.default_rng``; the result is deterministic for a given seed.
    confidence : float
        Confidence level in (0, 1); 0.95 gives the (2.5 %, 97.5 %) percentile interval.
    return_replicates : bool
        Keep the replicate differences in ``result.replicates`` (shape (num_samples,)).

    Returns
    -------
    BootstrapResult
        ``difference``, ``low``, ``high``, ``significant``, ``metric_a``, ``metric_b``,
        ``confidence``, ``num_samples``, ``num_seeds``, ``num_utterances``, ``method``; metric
        values are fractions (WER 0.25 = 25 %). For error rates a negative difference means A is
        better.

    Example
    -------
    >>> correct_a = np.array([[1, 1, 1, 0], [1, 1, 0, 1]])[..., None]  # (S=2, N=4, K=1)
    >>> correct_b = np.array([[1, 0, 1, 0], [0, 1, 0, 1]])[..., None]
    >>> r = paired_bootstrap(correct_a, correct_b, accuracy_statistic, num_samples=2000)
    >>> r.difference, r.num_seeds, r.num_utterances
    (0.25, 2, 4)
    >>> bool(r.low <= r.difference <= r.high), r.significant
    (True, False)
    >>> errors_words = np.array([[[1, 4], [0, 3], [2, 5]]])  # (S=1, N=3, K=2): WER
    >>> r = paired_bootstrap(errors_words, errors_words, ratio_statistic, num_samples=100)
    >>> r.difference, r.low, r.high, r.significant
    (0.0, 0.0, 0.0, False)
    """
    a, b = _check_stats(stats_a, stats_b)
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
            or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    num_samples = int(num_samples)
    if not (isinstance(confidence, (int, float, np.floating)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    num_seeds, n, k = a.shape

    # point estimate on the full test set
    metric_a = float(np.mean(_seed_metrics(statistic, a.mean(axis=1), "model A", (num_seeds,))))
    metric_b = float(np.mean(_seed_metrics(statistic, b.mean(axis=1), "model B", (num_seeds,))))
    difference = metric_a - metric_b

    # utterance-major, seeds and statistics flattened: (N, S*K), both models side by side
    both = np.concatenate([a.transpose(1, 0, 2).reshape(n, num_seeds * k),
                           b.transpose(1, 0, 2).reshape(n, num_seeds * k)], axis=1)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(num_samples, _CHUNK_ELEMENTS // n))
    replicates = np.empty(num_samples)
    for start in range(0, num_samples, chunk):
        r = min(chunk, num_samples - start)
        draws = rng.integers(0, n, size=(r, n))  # N utterance indices per replicate
        rows = np.arange(r)[:, None] * n
        counts = np.bincount((draws + rows).ravel(), minlength=r * n).reshape(r, n)
        means = (counts.astype(float) @ both) / n  # (r, 2*S*K): resampled means
        means = means.reshape(r, 2, num_seeds, k)
        values = _seed_metrics(statistic, means, "a bootstrap replicate", (r, 2, num_seeds))
        seed_avg = values.mean(axis=2)  # (r, 2)
        replicates[start:start + r] = seed_avg[:, 0] - seed_avg[:, 1]

    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.percentile(replicates, [tail, 100.0 - tail]))
    return BootstrapResult(
        difference=float(difference), low=low, high=high, significant=bool(low > 0 or high < 0),
        metric_a=metric_a, metric_b=metric_b, confidence=float(confidence),
        num_samples=num_samples, num_seeds=num_seeds, num_utterances=n, method=METHOD,
        replicates=replicates if return_replicates else None)


def _as_runs(runs, name):
    """A list of utterance -> statistics dicts (one per seed) from a dict or a list of dicts."""
    if isinstance(runs, Mapping):
        runs = [runs]
    runs = list(runs)
    if not runs:
        raise ValueError(f"{name}: no runs (seeds)")
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise ValueError(f"{name}[{i}] must be a dict utterance id -> statistics, got "
                             f"{type(run).__name__}")
        if not run:
            raise ValueError(f"{name}[{i}] has no utterances")
    return runs


def _missing(ids, reference, limit=5):
    """Sorted ids of ``reference`` absent from ``ids``, as a short message."""
    gone = sorted(set(reference) - set(ids), key=str)
    shown = ", ".join(str(u) for u in gone[:limit])
    more = f" and {len(gone) - limit} more" if len(gone) > limit else ""
    return len(gone), shown + more


def align(runs_a, runs_b):
    """Aligned (S, N, K) statistics of two models from per-utterance dicts, one dict per seed.

    Every run (seed) of both models must cover exactly the same utterances; otherwise a ValueError
    names the utterances missing on one side. Utterances are ordered by id.

    Arguments
    ---------
    runs_a, runs_b : dict or list of dict
        Per seed, utterance id -> statistics: a number (K = 1, e.g. correct 0/1) or a sequence of K
        numbers (e.g. (word errors, reference words)). A single dict is one seed.

    Returns
    -------
    utts : list
        The N utterance ids, sorted.
    stats_a, stats_b : numpy.ndarray
        Shape (S_a, N, K) and (S_b, N, K), float.

    Example
    -------
    >>> a = [{"u1": 1, "u2": 0}, {"u2": 1, "u1": 1}]  # 2 seeds, accuracy
    >>> b = [{"u1": 0, "u2": 0}, {"u1": 1, "u2": 0}]
    >>> utts, sa, sb = align(a, b)
    >>> utts, sa.shape, sa[1, :, 0].tolist()
    (['u1', 'u2'], (2, 2, 1), [1.0, 1.0])
    >>> align({"u1": (1, 3), "u2": (0, 2)}, {"u1": (2, 3)})[1].shape
    Traceback (most recent call last):
    ...
    ValueError: model B (seed index 0) lacks 1 utterance(s) of model A (seed index 0): u2; the test sets must be identical
    """
    runs = {"model A": _as_runs(runs_a, "runs_a"), "model B": _as_runs(runs_b, "runs_b")}
    ref_name, ref_run = "model A", runs["model A"][0]
    for name, model_runs in runs.items():
        for i, run in enumerate(model_runs):
            for x_name, x_i, x_run, y_name, y_i, y_run in (
                    (name, i, run, ref_name, 0, ref_run), (ref_name, 0, ref_run, name, i, run)):
                count, shown = _missing(x_run, y_run)
                if count:
                    raise ValueError(
                        f"{x_name} (seed index {x_i}) lacks {count} utterance(s) of {y_name} "
                        f"(seed index {y_i}): {shown}; the test sets must be identical")
    utts = sorted(ref_run, key=str)

    def stack(model_runs, name):
        rows = []
        for i, run in enumerate(model_runs):
            vals = [np.atleast_1d(np.asarray(run[u], dtype=float)) for u in utts]
            sizes = {v.shape for v in vals}
            if len(sizes) != 1 or len(next(iter(sizes))) != 1:
                raise ValueError(f"{name} (seed index {i}): every utterance needs the same number "
                                 f"of statistics, got shapes {sorted(sizes)}")
            rows.append(np.stack(vals))
        if len({r.shape for r in rows}) != 1:
            raise ValueError(f"{name}: seeds have different numbers of statistics per utterance")
        return np.stack(rows)

    stats_a, stats_b = stack(runs["model A"], "model A"), stack(runs["model B"], "model B")
    if stats_a.shape[2] != stats_b.shape[2]:
        raise ValueError(f"the models have different numbers of statistics per utterance "
                         f"({stats_a.shape[2]} vs {stats_b.shape[2]})")
    return utts, stats_a, stats_b


def _signed(value, digits):
    """``value`` with an explicit sign and ``digits`` decimals; never ``-0.0``."""
    text = f"{value:+.{digits}f}"
    if float(text) == 0:
        text = f"{0.0:+.{digits}f}"
    return text


def format_ci(result, digits=1, scale=100):
    """Difference and confidence interval for a table, e.g. ``+3.2 [+0.4, +6.1]*``.

    Arguments
    ---------
    result : BootstrapResult or dict
        A result of :func:`paired_bootstrap` (or its :meth:`BootstrapResult.as_dict`).
    digits : int
        Decimals.
    scale : float
        Multiplier of the fractions: 100 for percent.

    Returns
    -------
    str
        ``difference [low, high]`` with signs, and ``*`` when significant (interval excludes 0).

    Example
    -------
    >>> r = BootstrapResult(difference=0.0321, low=0.004, high=0.0612, significant=True,
    ...                     metric_a=0.8, metric_b=0.7679, confidence=0.95, num_samples=10000,
    ...                     num_seeds=3, num_utterances=500)
    >>> format_ci(r)
    '+3.2 [+0.4, +6.1]*'
    >>> format_ci(dict(r.as_dict(), low=-0.0004, significant=False), digits=2)
    '+3.21 [-0.04, +6.12]'
    """
    if isinstance(result, Mapping):
        get = result.__getitem__
    else:
        def get(key):
            return getattr(result, key)
    values = [get(key) * scale for key in ("difference", "low", "high")]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"non-finite difference or interval: {values}")
    diff, low, high = (_signed(v, digits) for v in values)
    return f"{diff} [{low}, {high}]" + ("*" if get("significant") else "")
