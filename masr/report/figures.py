"""Figures of the results report (paper Figures 2-4), drawn from plain Python data.

Nothing here reads a results file: ``masr.report.results`` collects the numbers and calls these
functions, so each can be tested with small literals. Accuracies are fractions in [0, 1] and are
plotted as percentages.

- :func:`plot_lang2vec_types` (Figure 2): LangID test accuracy per lang2vec distance type, one bar per
  type (mean over seeds, error bar = sample std when there are several seeds), the baseline as a
  dashed horizontal line.
- :func:`relative_change` + :func:`plot_relative_change` (Figure 3): per-language relative change
  ``(acc_model - acc_base) / acc_base`` of the mean accuracies over seeds; languages with
  ``|change| <= threshold`` are omitted; languages whose mean baseline accuracy is 0 are omitted too
  and reported separately (the relative change is undefined there; no capped or infinite bar is
  drawn, the caller lists them with their absolute accuracy instead).
- :func:`sum_confusions`, :func:`confusion_submatrix`, :func:`row_normalise` +
  :func:`plot_confusions` (Figure 4): confusion matrices (seeds summed) restricted to a language
  group, with an extra ``other`` column for predictions outside the group so that each row is
  normalised by *all* utterances of its reference language (the diagonal is then the language's
  accuracy and every row sums to 1).

Figures are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot state, no
display needed) and saved atomically: to a temporary file in the destination folder, then
``os.replace`` (see :func:`masr.utils.fileio.atomic_open`).
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from masr.utils.fileio import atomic_open

#: Tolerance of the ``|change| <= threshold`` test, so that e.g. (0.5 - 0.4) / 0.4 counts as 0.25.
TOLERANCE = 1e-9

SEEN_COLOUR = "#4C72B0"
UNSEEN_COLOUR = "#DD8452"


def _mean(values):
    """Mean of a float or of a non-empty sequence of floats."""
    if np.isscalar(values):
        return float(values)
    values = list(values)
    if not values:
        raise ValueError("no value to average")
    return float(np.mean(values))


def _std(values):
    """Sample standard deviation (ddof=1) of a sequence; 0 for a float or a single value."""
    if np.isscalar(values) or len(values) < 2:
        return 0.0
    return float(np.std(list(values), ddof=1))


def _save(fig, path, dpi=120):
    """Write ``fig`` as PNG to ``path`` atomically (temporary file, then ``os.replace``)."""
    FigureCanvasAgg(fig)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})
    return str(path)


# --------------------------------------------------------------------------------------------------
# Figure 2: accuracy per lang2vec type
# --------------------------------------------------------------------------------------------------

def plot_lang2vec_types(types, baseline, path, baseline_label="baseline",
                        ylabel="LangID test accuracy (%)", title=None):
    """Bar chart of the accuracy of each lang2vec type, with the baseline as a dashed line.

    Arguments
    ---------
    types : dict
        Type name -> accuracies (fractions), one per seed; bars in the dict order. Error bars (sample
        std) are drawn for the types with several seeds.
    baseline : list of float or None
        The baseline's accuracies over seeds; its mean is the dashed line (no line when None/empty).
    path : str
        Output PNG.
    baseline_label : str
        Legend text of the dashed line.
    ylabel, title : str
        Axis label and optional title.

    Returns
    -------
    str
        ``path``.
    """
    if not types:
        raise ValueError("plot_lang2vec_types: no type to draw")
    names = list(types)
    means = np.array([_mean(types[n]) for n in names]) * 100
    stds = np.array([_std(types[n]) for n in names]) * 100
    fig = Figure(figsize=(max(4.0, 1.0 + 0.9 * len(names)), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    ax.bar(x, means, color=SEEN_COLOUR, width=0.6,
           yerr=stds if np.any(stds > 0) else None, capsize=4, label="continued pretraining")
    top = float(np.max(means + stds))
    for xi, m, s in zip(x, means, stds):
        ax.text(xi, m + s, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    if baseline is not None and len(baseline) > 0:
        b = _mean(baseline) * 100
        ax.axhline(b, color="black", linestyle="--", linewidth=1.2, label=baseline_label)
        top = max(top, b)
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(top * 1.15, 1.0))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Figure 3: relative change per language
# --------------------------------------------------------------------------------------------------

def relative_change(baseline, model, threshold=0.25):
    """Per-language relative change of the mean accuracy, split into kept / omitted languages.

    ``change = (mean(model) - mean(baseline)) / mean(baseline)``, means over seeds. A language is
    *kept* when ``|change| > threshold``, *omitted* when ``|change| <= threshold`` (with a 1e-9
    tolerance against rounding), *undefined* when its mean baseline accuracy is 0 (the relative
    change is then undefined or infinite: such languages are not plotted but listed, the choice of
    this module), and *missing* when only one of the two has it.

    Arguments
    ---------
    baseline : dict
        Language -> accuracy (float) or accuracies over seeds (list).
    model : dict
        Same for the compared model.
    threshold : float
        Languages within ``±threshold`` (a fraction: 0.25 = 25 %) are omitted.

    Returns
    -------
    dict
        ``kept``: list of ``(language, change)`` sorted by decreasing change (ties by language);
        ``omitted``: the languages within ``±threshold`` (sorted); ``undefined``: the languages with
        baseline accuracy 0, as ``(language, model accuracy)`` (sorted); ``missing``: the languages
        present on one side only (sorted).

    Example
    -------
    >>> base = {"bos": [0.4, 0.4], "hrv": 0.5, "srp": 0.2, "rus": 0.0, "ukr": 0.6}
    >>> masr = {"bos": [0.5, 0.5], "hrv": 0.1, "srp": 0.3, "rus": 0.2, "bul": 0.3}
    >>> out = relative_change(base, masr, threshold=0.25)
    >>> [(lang, round(c, 3)) for lang, c in out["kept"]]
    [('srp', 0.5), ('hrv', -0.8)]
    >>> out["omitted"], out["undefined"], out["missing"]
    (['bos'], [('rus', 0.2)], ['bul', 'ukr'])
    """
    kept, omitted, undefined = [], [], []
    for lang in sorted(set(baseline) & set(model)):
        b, m = _mean(baseline[lang]), _mean(model[lang])
        if b == 0:
            undefined.append((lang, m))
            continue
        change = (m - b) / b
        if abs(change) <= threshold + TOLERANCE:
            omitted.append(lang)
        else:
            kept.append((lang, change))
    kept.sort(key=lambda item: (-item[1], item[0]))
    missing = sorted(set(baseline) ^ set(model))
    return {"kept": kept, "omitted": omitted, "undefined": undefined, "missing": missing}


def plot_relative_change(kept, unseen, path, threshold=None,
                         ylabel="relative change of accuracy (%)", title=None):
    """Bars of the per-language relative change; languages unseen in pretraining hatched.

    Arguments
    ---------
    kept : list of (str, float)
        ``(language, relative change)`` in bar order (e.g. :func:`relative_change`'s ``kept``).
    unseen : set of str
        Languages not seen in pretraining (non-overlapped): orange and hatched, with a legend.
    path : str
        Output PNG.
    threshold : float, optional
        When given, dotted lines at ``±threshold`` show the band whose languages were omitted.
    ylabel, title : str
        Axis label and optional title.

    Returns
    -------
    str
        ``path``.
    """
    if not kept:
        raise ValueError("plot_relative_change: no language to draw")
    langs = [lang for lang, _ in kept]
    values = np.array([c for _, c in kept]) * 100
    is_unseen = [lang in unseen for lang in langs]
    fig = Figure(figsize=(max(4.0, 1.2 + 0.45 * len(langs)), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(langs))
    ax.bar(x, values, width=0.7, color=[UNSEEN_COLOUR if u else SEEN_COLOUR for u in is_unseen],
           edgecolor="black", linewidth=0.5)
    for patch, u in zip(ax.patches, is_unseen):
        if u:
            patch.set_hatch("//")
    ax.axhline(0, color="black", linewidth=0.8)
    if threshold is not None:
        for t in (threshold, -threshold):
            ax.axhline(t * 100, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(langs, rotation=90)
    ax.set_ylabel(ylabel)
    ax.legend(handles=[Patch(facecolor=SEEN_COLOUR, edgecolor="black", label="seen in pretraining (O)"),
                       Patch(facecolor=UNSEEN_COLOUR, edgecolor="black", hatch="//",
                             label="unseen in pretraining (NO)")], fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# Figure 4: confusion within a language group
# --------------------------------------------------------------------------------------------------

def sum_confusions(runs):
    """Sum confusion matrices given with their label orders, in the first run's label order.

    Arguments
    ---------
    runs : list of (list of str, array-like)
        ``(labels, confusion)`` per run, rows = reference, columns = predicted, in ``labels`` order.
        Every run must have the same set of labels (the order may differ).

    Returns
    -------
    labels : list of str
        The first run's labels.
    matrix : numpy.ndarray
        int64 sum, in that order.

    Example
    -------
    >>> labels, m = sum_confusions([(["a", "b"], [[1, 2], [0, 3]]), (["b", "a"], [[1, 0], [4, 5]])])
    >>> labels, m.tolist()
    (['a', 'b'], [[6, 6], [0, 4]])
    """
    if not runs:
        raise ValueError("sum_confusions: no run")
    labels = list(runs[0][0])
    total = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for run_labels, matrix in runs:
        run_labels = list(run_labels)
        if sorted(run_labels) != sorted(labels):
            raise ValueError(f"sum_confusions: label sets differ: {labels} vs {run_labels}")
        order = [run_labels.index(lang) for lang in labels]
        total += np.asarray(matrix, dtype=np.int64)[np.ix_(order, order)]
    return labels, total


def confusion_submatrix(confusion, labels, languages, other=True):
    """Rows and columns of a confusion matrix for a group of languages.

    Arguments
    ---------
    confusion : array-like
        Square counts, rows = reference, columns = predicted, in ``labels`` order.
    labels : list of str
        Class order of ``confusion``.
    languages : list of str
        The group, in the order wanted; languages not in ``labels`` are skipped (see Returns).
    other : bool
        Append a column ``"other"`` counting the predictions outside the group, so that the rows
        keep every utterance of their reference language.

    Returns
    -------
    matrix : numpy.ndarray
        int64 counts, shape (k, k + 1) with ``other`` else (k, k), k = languages found.
    rows : list of str
        The languages found, in ``languages`` order.
    columns : list of str
        ``rows`` (plus ``"other"``).
    absent : list of str
        The languages of the group that are not in ``labels``.

    Example
    -------
    >>> conf = [[5, 1, 4], [2, 6, 2], [0, 3, 7]]
    >>> m, rows, cols, absent = confusion_submatrix(conf, ["a", "b", "c"], ["b", "a", "x"])
    >>> m.tolist(), rows, cols, absent
    ([[6, 2, 2], [1, 5, 4]], ['b', 'a'], ['b', 'a', 'other'], ['x'])
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    labels = list(labels)
    rows = [lang for lang in languages if lang in labels]
    absent = [lang for lang in languages if lang not in labels]
    idx = [labels.index(lang) for lang in rows]
    matrix = confusion[np.ix_(idx, idx)]
    columns = list(rows)
    if other:
        outside = confusion[idx, :].sum(axis=1) - matrix.sum(axis=1)
        matrix = np.concatenate([matrix, outside[:, None]], axis=1)
        columns.append("other")
    return matrix, rows, columns, absent


def row_normalise(matrix):
    """Divide each row by its sum; rows summing to 0 stay 0.

    Example
    -------
    >>> row_normalise([[1, 3], [0, 0]]).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def plot_confusions(left, right, rows, columns, path, titles=("baseline", "model")):
    """Two row-normalised confusion matrices side by side, values annotated.

    Arguments
    ---------
    left, right : array-like
        Row-normalised matrices (values in [0, 1]), shape (len(rows), len(columns)).
    rows, columns : list of str
        Reference (y axis) and predicted (x axis) labels.
    path : str
        Output PNG.
    titles : (str, str)
        Titles of the two panels.

    Returns
    -------
    str
        ``path``.
    """
    k, c = len(rows), len(columns)
    if k == 0:
        raise ValueError("plot_confusions: empty language group")
    size = max(3.0, 0.55 * c + 1.2)
    fig = Figure(figsize=(2 * size + 1.0, size + 0.8), layout="constrained")
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    image = None
    for ax, matrix, title in zip(axes, (left, right), titles):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (k, c):
            raise ValueError(f"plot_confusions: matrix shape {matrix.shape} != {(k, c)}")
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
        for i in range(k):
            for j in range(c):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > 0.5 else "black")
        ax.set_xticks(range(c))
        ax.set_xticklabels(columns, rotation=90)
        ax.set_yticks(range(k))
        ax.set_yticklabels(rows)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes, fraction=0.025)
    return _save(fig, path)
