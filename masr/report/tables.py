"""Tables 1-3 of ``RESULTS.md`` (LangID, linear probes, ASR) from the runs of
:mod:`masr.report.loading`: cells (``mean ± std`` over seeds), the notes under each table, and the
differences between rows (:mod:`masr.report.compare`). The rules are in :mod:`masr.report.results`.
"""

import math

import numpy as np

from masr.downstream.results_schema import LANGID_KINDS, ResultsError
from masr.report import compare
from masr.report.loading import check_same, run_test_id

#: The notes' words for each ``eer_pooling`` of the LangID results.
EER_POOLING = {
    "pooled": "pooled over all utterance × language trials (one global threshold)",
    "average": "unweighted mean over languages of the per-language EER (one threshold per language)",
}


# --------------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------------

def is_missing(value):
    """A missing number: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def mean_std(values):
    """Mean and sample standard deviation (ddof=1) of a list of numbers.

    Arguments
    ---------
    values : list of float
        One value per seed (or fold).

    Returns
    -------
    mean : float or None
        None when ``values`` is empty or holds a missing value (None / NaN).
    std : float or None
        None when there are fewer than two values.

    Example
    -------
    >>> mean_std([0.5])
    (0.5, None)
    >>> m, s = mean_std([0.5, 0.52])
    >>> round(m, 6), round(s, 6)
    (0.51, 0.014142)
    >>> mean_std([0.5, None])
    (None, None)
    """
    values = list(values)
    if not values or any(is_missing(v) for v in values):
        return None, None
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def fmt_pct(values, digits=1):
    """Format fractions as a percentage: the value, or ``mean ± std`` over several values.

    Arguments
    ---------
    values : list of float
        Fractions (0.5 = 50 %), one per seed.
    digits : int
        Decimals.

    Returns
    -------
    str
        ``"-"`` when there is no value or one is missing.

    Example
    -------
    >>> fmt_pct([0.5])
    '50.0'
    >>> fmt_pct([0.5, 0.52])
    '51.0 ± 1.4'
    >>> fmt_pct([]), fmt_pct([None])
    ('-', '-')
    """
    mean, std = mean_std(values)
    if mean is None:
        return "-"
    text = f"{100 * mean:.{digits}f}"
    return text if std is None else f"{text} ± {100 * std:.{digits}f}"


def _short(digest, n=12):
    """First characters of a data id, for the notes.

    Example
    -------
    >>> _short("0123456789abcdef0123")
    '0123456789ab…'
    """
    digest = str(digest)
    return digest if len(digest) <= n else digest[:n] + "…"



def _rows(rows, by_model):
    """(name, model, runs) of each configured row; runs is [] when the model has no results."""
    return [(row["name"], row["model"], by_model.get(row["model"], [])) for row in rows]


def _runs_note(rows, metric, label):
    """One line per row: model folder, seeds and the checkpoint selected on dev."""
    parts = []
    for name, model, runs in rows:
        if not runs:
            continue
        seeds = ", ".join(str(r["seed"]) for r in runs)
        steps = ", ".join(str(r["selected"].get("step", "?")) for r in runs)
        dev = fmt_pct([r["selected"].get(metric) for r in runs])
        parts.append(f"{name} = `{model}`, seed{'s' if len(runs) > 1 else ''} {seeds} "
                     f"(step{'s' if len(runs) > 1 else ''} {steps}; {label} {dev})")
    return "; ".join(parts)



# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------

def fine_tuned(run):
    """The fine-tuned model's results of a LangID run: its ``fine_tuned`` block, or the run itself
    (the model dev selection kept) for runs without one (older runs, ``head_init: random``)."""
    return run.get("fine_tuned", run)


def table1(rows, by_model, compare_config=None):
    """Paper Table 1: LangID test accuracy of the linear probe, and of the fine-tuned model on O /
    NO languages, overall, macro-F1 and EER; then the differences between rows with CIs.

    Arguments
    ---------
    rows : list of dict
        ``{"name": ..., "model": ...}`` in table order.
    by_model : dict
        Model -> LangID runs (:func:`collect`).
    compare_config : dict or None
        The report config's ``compare:`` block (None: no differences table).

    Returns
    -------
    str
        Markdown: the table and the notes under it (EER pooling, dev selection / test numbers,
        the O and NO languages, the runs), and the differences table.
    """
    rows = _rows(rows, by_model)
    runs = [r for _, _, rs in rows for r in rs]
    check_same(runs, run_test_id, "data.test_id", "Table 1")
    check_same(runs, lambda r: r["eer_pooling"], "eer_pooling", "Table 1")

    def count(part):
        counts = {r[part]["num_classes"] for r in runs}
        return counts.pop() if len(counts) == 1 else None

    n_o, n_no, n_all = count("overlapped"), count("non_overlapped"), count("overall")

    def head(label, n):
        return label if n is None else f"{label} ({n})"

    def cell(rs, part, metric, n):
        text = fmt_pct([fine_tuned(r)[part][metric] for r in rs])
        if n is None:  # runs disagree on the class count (different pretraining languages)
            text += " (" + "/".join(str(c) for c in sorted({r[part]["num_classes"] for r in rs})) + ")"
        return text

    def kept(rs):
        kinds = [r["selected"].get("kind") for r in rs]
        if any(k is None for k in kinds):
            return "–"
        return f"FT {kinds.count('fine_tuned')}/{len(kinds)}"

    lines = [f"| model | seeds | {head('LP', n_all)} | {head('O', n_o)} | {head('NO', n_no)} | "
             f"{head('overall', n_all)} | macro-F1 | EER | dev kept |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, rs in rows:
        if not rs:
            lines.append(f"| {name} | not run | | | | | | | |")
            continue
        probe = [r["linear_probe"]["overall"]["accuracy"] for r in rs if "linear_probe" in r]
        lines.append(f"| {name} | {len(rs)} | {fmt_pct(probe) if len(probe) == len(rs) else '–'} | "
                     f"{cell(rs, 'overlapped', 'accuracy', n_o)} | "
                     f"{cell(rs, 'non_overlapped', 'accuracy', n_no)} | "
                     f"{cell(rs, 'overall', 'accuracy', n_all)} | "
                     f"{fmt_pct([fine_tuned(r)['overall']['macro_f1'] for r in rs])} | "
                     f"{fmt_pct([fine_tuned(r)['overall']['eer'] for r in rs])} | {kept(rs)} |")
    if not runs:
        return "\n".join(lines) + "\n\nNone of these models has LangID results."
    first = runs[0]
    pooling = first["eer_pooling"]
    notes = [
        "Test accuracy (%) of the linear probe on the frozen encoder (LP, all languages) and of the "
        "fine-tuned model (FT: the best checkpoint after the probe on dev accuracy) on the languages seen "
        "in pretraining (O), the others (NO) and all; FT macro-F1 and EER (%) over all languages. "
        "Class counts in parentheses. Several seeds: mean ± sample standard deviation. "
        "dev kept: for how many seeds dev accuracy preferred the fine-tuned model to the probe "
        "(the model `masr.infer` uses; figures use it too).",
        f"EER: {EER_POOLING.get(pooling, pooling)} (`eer_pooling: {pooling}`).",
        f"Checkpoints selected on dev accuracy; all numbers on test (`{first['data'].get('test', 'test')}`, "
        f"test_id `{_short(run_test_id(first))}`).",
    ]
    splits = {}
    for name, _, rs in rows:
        for r in rs:
            o = tuple(sorted(l for l, e in r["per_language"].items() if e["overlapped"]))
            no = tuple(sorted(l for l, e in r["per_language"].items() if not e["overlapped"]))
            splits.setdefault((o, no), [])
            if name not in splits[(o, no)]:
                splits[(o, no)].append(name)
    for (o, no), names in splits.items():
        who = "" if len(splits) == 1 else f" ({', '.join(names)})"
        notes.append(f"O languages{who} ({len(o)}): {', '.join(o) or '-'}; "
                     f"NO languages ({len(no)}): {', '.join(no) or '-'}.")
    notes.append(f"Runs: {_runs_note(rows, 'dev_accuracy', 'dev accuracy')}.")
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    if compare_config:
        have = [k for k in LANGID_KINDS if all(k in r for r in runs)] or ["selected"]
        text += _differences("Table 1", rows, by_model, compare.langid_metrics(have), compare_config)
    return text


def _differences(title, rows, by_model, metrics, config, lower_is_better=()):
    """The differences table of a results table (:func:`masr.report.compare.differences_table`)."""
    names = {model: name for name, model, _ in rows}
    try:
        table = compare.differences_table(title, names, by_model, metrics, config, lower_is_better)
    except compare.OutcomesError as e:  # e.g. runs from before the stages wrote them
        return f"\n\nDifferences between rows: not computed: {e}."
    except ValueError as e:
        raise ResultsError(f"{title}: confidence intervals: {e}") from None
    return f"\n\nDifferences between rows (paired bootstrap):\n\n{table}" if table else ""


def _probe_description(entry):
    return (entry["dataset"], entry.get("label"), entry["protocol"], entry["num_classes"],
            entry["num_train"], entry["num_test"], len(entry["fold_accuracies"]))


def table2(rows, by_model, compare_config=None):
    """Paper Table 2: linear-probe accuracy per model (rows) and task (columns).

    Columns are the union of the rows' tasks in first-seen order. With several results files per
    model (seeds) the cell is ``mean ± std`` over them. Under the table, one line per task (dataset,
    label, protocol, classes, train / test counts, folds); when a task has several folds, a second
    table gives ``mean ± std`` across folds (pooled over a model's files).

    Arguments
    ---------
    rows : list of dict
        ``{"name": ..., "model": ...}`` in table order.
    by_model : dict
        Model -> probe runs (:func:`collect`).

    Returns
    -------
    str
        Markdown.
    """
    rows = _rows(rows, by_model)
    tasks = list(dict.fromkeys(t for _, _, rs in rows for r in rs for t in r["tasks"]))
    for task in tasks:
        with_task = [r for _, _, rs in rows for r in rs if task in r["tasks"]]
        context = f"Table 2 (task '{task}')"
        check_same(with_task, lambda r: r["tasks"][task]["data_id"], f"tasks.{task}.data_id", context)
        check_same(with_task, lambda r: _probe_description(r["tasks"][task]),
                   f"tasks.{task} (dataset, label, protocol, classes, train, test, folds)", context)
    if not tasks:
        lines = ["| model | accuracy |", "|---|---:|"]
        lines += [f"| {name} | not run |" for name, _, _ in rows]
        return "\n".join(lines) + "\n\nNone of these models has probe results."
    lines = ["| model | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    folds = ["| model | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for name, _, rs in rows:
        if not rs:
            lines.append(f"| {name} | not run |" + " |" * (len(tasks) - 1))
            folds.append(f"| {name} | not run |" + " |" * (len(tasks) - 1))
            continue
        cells, fold_cells = [], []
        for task in tasks:
            entries = [r["tasks"][task] for r in rs if task in r["tasks"]]
            cells.append(fmt_pct([e["accuracy"] for e in entries]))
            fold_cells.append(fmt_pct([a for e in entries for a in e["fold_accuracies"]]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        folds.append(f"| {name} | " + " | ".join(fold_cells) + " |")
    notes = ["Probe test accuracy (%); several results files of a model: mean ± sample std over them."]
    multi_fold = False
    for task in tasks:
        entry = next(r["tasks"][task] for _, _, rs in rows for r in rs if task in r["tasks"])
        n_folds = len(entry["fold_accuracies"])
        multi_fold |= n_folds > 1
        label = f", label `{entry['label']}`" if entry.get("label") else ""
        notes.append(f"{task}: dataset `{entry['dataset']}`{label}, protocol `{entry['protocol']}`, "
                     f"{entry['num_classes']} classes, {entry['num_train']} train / {entry['num_test']} "
                     f"test, {n_folds} fold{'s' if n_folds != 1 else ''} (data_id `{_short(entry['data_id'])}`).")
    notes.append("Runs: " + "; ".join(f"{name} = `{model}` ({len(rs)} file{'s' if len(rs) > 1 else ''})"
                                       for name, model, rs in rows if rs) + ".")
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    if multi_fold:
        text += ("\n\nSpread across folds: accuracy (%) mean ± sample std over the folds "
                 "(`fold_accuracies`).\n\n" + "\n".join(folds))
    if compare_config:
        text += _differences("Table 2", rows, by_model, compare.probe_metrics(tasks), compare_config)
    return text


def table3(rows, by_model, compare_config=None):
    """Paper Table 3: ASR test WER (%) per language and their unweighted average, then CER.

    Arguments
    ---------
    rows : list of dict
        ``{"name": ..., "model": ...}`` in table order.
    by_model : dict
        Model -> ASR runs (:func:`collect`).

    Returns
    -------
    str
        Markdown: the WER table, the CER table (at small scale WER is near 100 % and CER tells
        more), and notes.
    """
    rows = _rows(rows, by_model)
    runs = [r for _, _, rs in rows for r in rs]
    check_same(runs, run_test_id, "data.test_id", "Table 3")
    langs = sorted({lang for r in runs for lang in r["per_language"]})

    def table(metric):
        lines = ["| model | seeds | " + " | ".join(langs + ["avg"]) + " |",
                 "|---|---:|" + "---:|" * (len(langs) + 1)]
        for name, _, rs in rows:
            if not rs:
                lines.append(f"| {name} | not run |" + " |" * (len(langs) + 1))
                continue
            cells = [fmt_pct([r["per_language"].get(lang, {}).get(metric) for r in rs]) for lang in langs]
            cells.append(fmt_pct([r["average"][metric] for r in rs]))
            lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    if not runs:
        return table("wer") + "\n\nNone of these models has ASR results."
    first = runs[0]
    decodings = sorted({str(r.get("decoding", "?")) for r in runs})
    vocab = sorted({str(r.get("vocab_size", "?")) for r in runs})
    metrics = sorted({r["selected"].get("metric", "wer") for r in runs})
    metric = metrics[0] if len(metrics) == 1 else None
    notes = [
        "WER and CER (%) on test per language; avg = unweighted mean over languages. "
        "Several seeds: mean ± sample standard deviation.",
        f"CTC decoding: {', '.join(decodings)}; vocabulary size {', '.join(vocab)}. Checkpoints selected "
        f"on dev {' / '.join(m.upper() for m in metrics)}; numbers on test (test_id `{_short(run_test_id(first))}`).",
    ]
    if metric:
        notes.append(f"Runs: {_runs_note(rows, 'dev_' + metric, 'dev ' + metric.upper())}.")
    text = ("WER (%):\n\n" + table("wer") + "\n\nCER (%):\n\n" + table("cer") + "\n\n"
            + "\n".join(f"- {n}" for n in notes))
    if compare_config:
        text += _differences("Table 3, corpus-level WER / CER over all test utterances", rows, by_model,
                             compare.asr_metrics(), compare_config, lower_is_better=("WER", "CER"))
    return text

