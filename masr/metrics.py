"""Evaluation metrics of the downstream stages: spoken language ID and CTC ASR.

Pure functions, no I/O. Every argument that is a sequence may be a plain Python list, a numpy array
or a torch tensor (any device); the results do not depend on the input type.

Classification: :func:`accuracy`, :func:`macro_f1`, :func:`confusion_matrix`,
:func:`per_class_accuracy`. Detection: :func:`equal_error_rate`, :func:`langid_eer`.
Recognition: :func:`edit_distance`, :func:`error_rate_stats` and :func:`wer` (corpus-level, through
SpeechBrain's ``speechbrain.utils.metric_stats.ErrorRateStats``, which keeps the per-utterance
alignments).

Why this module is long: every metric the stages report, each with its doctest, in the one place
the stages, the report and the tests cite; pure functions without shared state, so the length
couples nothing (it is 1 line over the limit).
"""

import numpy as np

try:  # torch is optional here: only used to recognise tensors
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _to_numpy(x):
    """numpy view / copy of a list, numpy array or torch tensor."""
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _to_list(x):
    """Python list (numpy / torch scalars turned into Python scalars) of a 1-D sequence."""
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in x]


def _pair(predictions, references):
    """Both label sequences as lists, checked for equal, non-zero length."""
    predictions, references = _to_list(predictions), _to_list(references)
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references differ in length: {len(predictions)} vs {len(references)}")
    if len(references) == 0:
        raise ValueError("empty predictions / references")
    return predictions, references


def _ordered(values):
    """Distinct values, sorted when they are comparable, else in first-appearance order."""
    distinct = list(dict.fromkeys(values))
    try:
        return sorted(distinct)
    except TypeError:
        return distinct


# --------------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------------

def accuracy(predictions, references):
    """Fraction of predictions equal to their reference.

    Arguments
    ---------
    predictions : list, numpy.ndarray or torch.Tensor
        Predicted labels, shape (N,).
    references : list, numpy.ndarray or torch.Tensor
        Reference labels, shape (N,).

    Returns
    -------
    float
        Number of correct predictions / N. Empty or unequal-length inputs raise ValueError.

    Example
    -------
    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    >>> accuracy(["en", "fr"], ["en", "de"])
    0.5
    """
    predictions, references = _pair(predictions, references)
    correct = sum(p == r for p, r in zip(predictions, references))
    return correct / len(references)


def macro_f1(predictions, references, labels=None):
    """Macro-averaged F1: unweighted mean over classes of the per-class F1.

    Convention. The classes are ``labels`` when given, else the union of the reference and the
    predicted labels. A class with no reference and no prediction is excluded from the mean (its F1
    is undefined). For each remaining class c with true positives TP, false positives FP and false
    negatives FN: precision P = TP / (TP + FP) (0 when there is no prediction of c), recall
    R = TP / (TP + FN) (0 when there is no reference of c), F1 = 2 P R / (P + R), and F1 = 0 when
    P + R = 0. Hence a class that is referenced but never predicted counts with F1 = 0, and so does a
    class that is predicted but never referenced. With ``labels`` given, labels outside it are not
    classes of their own (a reference of c predicted as such a label is still an FN of c).

    Arguments
    ---------
    predictions : list, numpy.ndarray or torch.Tensor
        Predicted labels, shape (N,).
    references : list, numpy.ndarray or torch.Tensor
        Reference labels, shape (N,).
    labels : list, optional
        The classes to average over (default: union of references and predictions).

    Returns
    -------
    float
        The macro F1. Raises ValueError when no class remains.

    Example
    -------
    >>> # class 0: P = 1, R = 1/2, F1 = 2/3; class 1: P = 1/2, R = 1, F1 = 2/3
    >>> round(macro_f1([0, 1, 1], [0, 0, 1]), 6)
    0.666667
    >>> # class 0: F1 = 1; class 1: P = 1/2, R = 1, F1 = 2/3; class 2 never predicted: F1 = 0
    >>> round(macro_f1([0, 1, 1], [0, 1, 2]), 6)  # (1 + 2/3 + 0) / 3 = 5/9
    0.555556
    """
    predictions, references = _pair(predictions, references)
    classes = _ordered(references + predictions) if labels is None else list(_to_list(labels))
    f1s = []
    for c in classes:
        tp = sum(p == c and r == c for p, r in zip(predictions, references))
        n_pred = sum(p == c for p in predictions)
        n_ref = sum(r == c for r in references)
        if n_pred == 0 and n_ref == 0:
            continue
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_ref if n_ref else 0.0
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    if not f1s:
        raise ValueError("macro_f1: no class has a reference or a prediction")
    return float(sum(f1s) / len(f1s))


def confusion_matrix(predictions, references, labels):
    """Confusion matrix, rows = reference class, columns = predicted class.

    Arguments
    ---------
    predictions : list, numpy.ndarray or torch.Tensor
        Predicted labels, shape (N,).
    references : list, numpy.ndarray or torch.Tensor
        Reference labels, shape (N,).
    labels : list
        The classes, in row / column order. A prediction or reference outside ``labels`` raises
        ValueError.

    Returns
    -------
    numpy.ndarray
        int64 array of shape (len(labels), len(labels)); entry [i, j] counts the utterances with
        reference ``labels[i]`` predicted as ``labels[j]``.

    Example
    -------
    >>> confusion_matrix(["a", "b", "b"], ["a", "a", "b"], labels=["a", "b"])
    array([[1, 1],
           [0, 1]])
    """
    predictions, references = _pair(predictions, references)
    labels = list(_to_list(labels))
    index = {c: i for i, c in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError("confusion_matrix: duplicate labels")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for p, r in zip(predictions, references):
        if p not in index or r not in index:
            raise ValueError(f"confusion_matrix: label {p if p not in index else r!r} not in labels")
        matrix[index[r], index[p]] += 1
    return matrix


def per_class_accuracy(predictions, references):
    """Per-class accuracy (= recall): for each reference label, the fraction predicted correctly.

    Arguments
    ---------
    predictions : list, numpy.ndarray or torch.Tensor
        Predicted labels, shape (N,).
    references : list, numpy.ndarray or torch.Tensor
        Reference labels, shape (N,).

    Returns
    -------
    dict
        label -> accuracy over the utterances whose reference is that label; keys are the distinct
        reference labels (sorted when comparable). Labels only ever predicted have no entry.

    Example
    -------
    >>> per_class_accuracy([0, 1, 1, 2], [0, 0, 1, 1])
    {0: 0.5, 1: 0.5}
    """
    predictions, references = _pair(predictions, references)
    result = {}
    for c in _ordered(references):
        hits = [p == c for p, r in zip(predictions, references) if r == c]
        result[c] = sum(hits) / len(hits)
    return result


# --------------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------------

def equal_error_rate(scores, targets):
    """Equal error rate of a detection task, with its threshold.

    A trial is accepted when its score is >= the threshold t. FAR(t) = fraction of non-target
    trials accepted, FRR(t) = fraction of target trials rejected. The ROC operating points are
    t = +inf (FAR = 0, FRR = 1) and t = each distinct score, in decreasing order (tied scores move
    together, so ties never get split). Along them FAR - FRR rises from -1 to +1. The EER is taken
    exactly at the first operating point where FAR - FRR = 0 if there is one; otherwise it is the
    linear interpolation between the two consecutive operating points where FAR - FRR changes sign,
    at the point of the segment where FAR = FRR (the sign test is done in integer arithmetic, so an
    exact crossing is never missed by rounding). The threshold is the score of the crossing point,
    or its linear interpolation between the two scores; when the crossing lies between t = +inf and
    the highest score, the highest score is returned.

    Arguments
    ---------
    scores : list, numpy.ndarray or torch.Tensor
        Detection scores, shape (N,); higher = more likely a target.
    targets : list, numpy.ndarray or torch.Tensor
        Shape (N,), truthy for target trials.

    Returns
    -------
    eer : float
        The equal error rate, in [0, 1].
    threshold : float
        The score threshold at the EER.

    Raises ValueError when there is no target or no non-target trial, or for non-finite scores.

    Why not SpeechBrain's ``speechbrain.utils.metric_stats.EER``: it tries every distinct score and
    every midpoint between two as a threshold, each one a pass over all trials (quadratic), and
    returns (FAR + FRR) / 2 at the closest one instead of the interpolated crossing. Measured
    (speechbrain 1.1.2, 2 shared CPU cores, normal scores with 10% targets): 1e4 trials 0.66 s
    (this function 1.3 ms), 2e4 trials 1.5 s (2.2 ms), 1e6 trials: this function 0.33 s,
    SpeechBrain's about an hour by its quadratic growth (not run). The pooled language-ID EER has
    N x C trials (1e6 for 40k utterances and 26 languages), so this sort-and-cumulate version is
    kept; ``tests/test_metrics.py`` checks that both agree on small cases.

    Example
    -------
    >>> # t=0.9: FAR 0, FRR 1/2; t=0.8: FAR 1/2, FRR 1/2 -> exact crossing
    >>> equal_error_rate([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    (0.5, 0.8)
    >>> equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    (0.0, 0.8)
    """
    s = _to_numpy(scores).astype(np.float64).reshape(-1)
    t = _to_numpy(targets).astype(bool).reshape(-1)
    if s.shape != t.shape:
        raise ValueError(f"scores and targets differ in length: {s.shape[0]} vs {t.shape[0]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("equal_error_rate: non-finite score")
    n_tar = int(t.sum())
    n_non = int(t.size - n_tar)
    if n_tar == 0 or n_non == 0:
        raise ValueError("equal_error_rate needs at least one target and one non-target trial")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    tp = np.cumsum(t, dtype=np.int64)
    fp = np.cumsum(~t, dtype=np.int64)
    ends = np.append(np.nonzero(np.diff(s))[0], s.size - 1)  # last index of each tied-score group
    tp = np.concatenate([[0], tp[ends]])
    fp = np.concatenate([[0], fp[ends]])
    thr = np.concatenate([[np.inf], s[ends]])
    far = fp / n_non
    frr = (n_tar - tp) / n_tar
    # sign of FAR - FRR, scaled by n_tar * n_non to stay integer
    diff = fp * n_tar - (n_tar - tp) * n_non
    i = int(np.argmax(diff >= 0))  # exists: the last point has FAR = 1, FRR = 0
    if diff[i] == 0:
        return float(far[i]), float(thr[i])
    alpha = -diff[i - 1] / (diff[i] - diff[i - 1])
    eer = far[i - 1] + alpha * (far[i] - far[i - 1])
    threshold = thr[i] if i == 1 else thr[i - 1] + alpha * (thr[i] - thr[i - 1])
    return float(eer), float(threshold)


def langid_eer(score_matrix, references, pooling="pooled"):
    """Language-ID equal error rate, with the utterance x language pairs as detection trials.

    Every (utterance n, language c) pair is a trial with score ``score_matrix[n, c]``; it is a target
    trial iff c is the reference language of n (so there are N target and N (C - 1) non-target
    trials). Scores must be comparable across languages for pooling (e.g. log-posteriors).

    - ``pooling="pooled"``: one :func:`equal_error_rate` over all N x C trials (a single global
      threshold).
    - ``pooling="average"``: the unweighted mean over languages c of the EER of column c (targets:
      the utterances of language c; non-targets: all other utterances), i.e. one threshold per
      language. Languages with no target trial are skipped, and so are languages with no non-target
      trial (every utterance of that language); ValueError if no language remains.

    Arguments
    ---------
    score_matrix : list, numpy.ndarray or torch.Tensor
        Shape (N, C), score of each language for each utterance.
    references : list, numpy.ndarray or torch.Tensor
        Shape (N,), reference class index in [0, C).
    pooling : str
        "pooled" or "average".

    Returns
    -------
    float
        The EER.

    Example
    -------
    >>> scores = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    >>> langid_eer(scores, [0, 1, 1], pooling="average")  # each column separates perfectly
    0.0
    >>> round(langid_eer(scores, [0, 1, 1], pooling="pooled"), 6)  # 0.6 (non-target) > 0.4 (target)
    0.333333
    """
    m = _to_numpy(score_matrix).astype(np.float64)
    refs = _to_numpy(references).astype(np.int64).reshape(-1)
    if m.ndim != 2:
        raise ValueError(f"score_matrix must be (N, C), got shape {m.shape}")
    n, c = m.shape
    if refs.shape[0] != n:
        raise ValueError(f"score_matrix has {n} rows but references has {refs.shape[0]} entries")
    if n == 0:
        raise ValueError("langid_eer: no utterance")
    if np.any(refs < 0) or np.any(refs >= c):
        raise ValueError(f"langid_eer: reference index outside [0, {c})")
    targets = refs[:, None] == np.arange(c)[None, :]
    if pooling == "pooled":
        return equal_error_rate(m.reshape(-1), targets.reshape(-1))[0]
    if pooling == "average":
        eers = [equal_error_rate(m[:, j], targets[:, j])[0]
                for j in range(c) if 0 < targets[:, j].sum() < n]
        if not eers:
            raise ValueError("langid_eer: no language has both target and non-target trials")
        return float(np.mean(eers))
    raise ValueError(f"unknown pooling {pooling!r} (expected 'pooled' or 'average')")


# --------------------------------------------------------------------------------------------------
# recognition
# --------------------------------------------------------------------------------------------------

def edit_distance(reference, hypothesis):
    """Levenshtein alignment of two token sequences, with the error breakdown.

    Unit costs for substitution, deletion (reference token missing from the hypothesis) and
    insertion (extra hypothesis token). Among the minimum-cost alignments, the one reported is found
    by backtracking from the end preferring, at each step, a diagonal move (match or substitution),
    then a deletion, then an insertion. The total ``errors`` is the same for every minimum alignment;
    only its breakdown depends on this tie rule.

    Arguments
    ---------
    reference : list
        Reference tokens (any comparable items; numpy / torch 1-D sequences accepted).
    hypothesis : list
        Hypothesis tokens.

    Returns
    -------
    dict
        ``substitutions``, ``deletions``, ``insertions``, ``errors`` (their sum) and ``ref_len``.

    Example
    -------
    >>> edit_distance("a b c d".split(), "a x c d e".split())
    {'substitutions': 1, 'deletions': 0, 'insertions': 1, 'errors': 2, 'ref_len': 4}
    >>> edit_distance(["a", "b"], [])
    {'substitutions': 0, 'deletions': 2, 'insertions': 0, 'errors': 2, 'ref_len': 2}
    """
    ref, hyp = _to_list(reference), _to_list(hypothesis)
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1,
                          d[i, j - 1] + 1)
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return {"substitutions": subs, "deletions": dels, "insertions": ins,
            "errors": subs + dels + ins, "ref_len": n}


def error_rate_stats(references, hypotheses, ids=None, unit="word"):
    """Corpus-level error counts of transcripts through SpeechBrain's ``ErrorRateStats``.

    ``unit="word"``: each string is split on whitespace; ``unit="char"``: each string loses its
    spaces and is split into characters. Every (reference, hypothesis) pair is aligned
    (``speechbrain.utils.edit_distance``, Levenshtein with unit costs) and the counts are summed.
    An empty reference with a non-empty hypothesis contributes its insertions to the errors and
    0 tokens. The total of errors is that of :func:`edit_distance`; the split into substitutions,
    deletions and insertions of a tied alignment follows SpeechBrain's backtrace (it may prefer a
    deletion + an insertion where :func:`edit_distance` takes two substitutions).

    Arguments
    ---------
    references : list of str
    hypotheses : list of str
        Same length.
    ids : list of str or None
        Utterance ids (for the alignments written by ``stats.write_stats``); default ``"0"``,
        ``"1"``, ...
    unit : str
        ``"word"`` or ``"char"``.

    Returns
    -------
    totals : dict
        ``rate`` (errors / tokens, computed from the integer counts), ``substitutions``,
        ``deletions``, ``insertions``, ``errors`` and ``tokens`` (total reference tokens).
        ValueError when the lists differ in length or when the references have no token.
    stats : speechbrain.utils.metric_stats.ErrorRateStats
        Holds the per-utterance alignments: ``stats.write_stats(file)`` writes the Kaldi-style
        summary (WER in %) and one alignment per utterance.

    Example
    -------
    >>> totals, _ = error_rate_stats(["a b c d", "a"], ["a b x d", ""])
    >>> totals["rate"], totals["errors"], totals["tokens"]
    (0.4, 2, 5)
    """
    from speechbrain.utils.metric_stats import ErrorRateStats

    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(
            f"references and hypotheses differ in length: {len(references)} vs {len(hypotheses)}")
    if unit == "word":
        split = str.split
    elif unit == "char":
        split = lambda text: list(text.replace(" ", ""))  # noqa: E731
    else:
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    ids = [str(i) for i in range(len(references))] if ids is None else [str(i) for i in ids]
    stats = ErrorRateStats()
    if references:
        stats.append(ids, [split(h) for h in hypotheses], [split(r) for r in references])
    summary = stats.summarize() if references else {"num_scored_tokens": 0}
    if summary["num_scored_tokens"] == 0:
        raise ValueError("all references are empty" if references else "no reference")
    totals = {"substitutions": summary["substitutions"], "deletions": summary["deletions"],
              "insertions": summary["insertions"], "errors": summary["num_edits"],
              "tokens": summary["num_scored_tokens"]}
    return {"rate": totals["errors"] / totals["tokens"], **totals}, stats


def wer(references, hypotheses):
    """Corpus-level word error rate (:func:`error_rate_stats` on words).

    Each string is split on whitespace; every (reference, hypothesis) pair is aligned and the counts
    are summed. WER = total errors / total reference words (not the mean of per-utterance WERs,
    which would overweight short utterances). An empty reference with a non-empty hypothesis
    contributes its insertions to the errors and 0 words.

    Arguments
    ---------
    references : list of str
        Reference transcripts.
    hypotheses : list of str
        Hypothesis transcripts, same length.

    Returns
    -------
    dict
        ``wer`` (float, may exceed 1), ``substitutions``, ``deletions``, ``insertions``, ``errors``
        and ``words`` (total reference words). ValueError when the lists differ in length or when
        all references are empty.

    Example
    -------
    >>> out = wer(["a b c d", "a"], ["a b c d", "b"])  # 1 error / 5 words
    >>> out["wer"], out["errors"], out["words"]
    (0.2, 1, 5)
    """
    try:
        totals, _ = error_rate_stats(references, hypotheses, unit="word")
    except ValueError as e:
        raise ValueError(f"wer: {e}") from None
    return {"wer": totals["rate"], "substitutions": totals["substitutions"], "deletions": totals["deletions"],
            "insertions": totals["insertions"], "errors": totals["errors"], "words": totals["tokens"]}
