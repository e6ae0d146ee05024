"""The report stage of every recipe: ``EXP/RESULTS.md`` and its figures, from the stages' results.

Usage (from a recipe folder, e.g. ``egs/mini``)::

    python -m masr.report.results --exp exp --config conf/report.yaml [--out exp/RESULTS.md]

Inputs (written by the downstream stages; any stage may be missing):

- LangID: ``EXP/langid/<model>/seed<S>/results.json`` (``"task": "langid"``): overall / overlapped
  (O, languages seen in pretraining) / non-overlapped (NO) test accuracy, macro-F1, EER and how it
  was pooled, per-language accuracy, confusion matrix, the checkpoint selected on dev.
- ASR: ``EXP/asr/<model>/seed<S>/results.json`` (``"task": "asr"``): per-language and average WER /
  CER on test.
- Probes: ``EXP/probe/<model>/results.json`` (``"task": "probe"``; ``probe/<model>/seed<S>/`` is
  accepted too): accuracy of a linear probe per task (language, emotion, ...).

The report config (plain YAML) names the rows of each table and the models of each figure::

    title: "egs/mini: embedded 26-language corpus"
    table1: [{name: BEST-RQ, model: continue_bestrq}, {name: +MASR, model: continue_masr}]
    table2: [...]      # probe rows
    table3: [...]      # ASR rows
    fig2: {baseline: continue_bestrq, types: {syntactic: continue_masr, ...}}
    fig3: {baseline: continue_bestrq, model: continue_masr, threshold: 0.25}
    fig4: {baseline: continue_bestrq, model: continue_masr, languages: [bos, hrv, srp]}
    configs: [conf/pretrain_bestrq.yaml, conf/langid.yaml]
    paper: {source: ..., table1: {...}}   # optional: the paper's figures, see masr.report.paper
    compare: {reference: continue_bestrq, pairs: [[continue_masr, continue_lasr]]}  # optional, below

Output: ``RESULTS.md`` (default ``EXP/RESULTS.md``) and PNGs in ``figures/`` next to it. Every
number comes from the results files; the header records date, git commit, machine and configs.

Table rules:

- Accuracies, macro-F1, EER, WER and CER are percentages with one decimal. Several seeds of a model
  give ``mean ± sample std`` (ddof=1) and the seed count; one seed gives the value alone.
- A table never mixes numbers from different data: every run of a table (all rows, all seeds) must
  have the same ``data.test_id`` (probes: the same ``data_id`` per task, and the same task
  description), LangID runs the same ``eer_pooling``; else :class:`ResultsError` names the two
  files. The runs of each figure are checked the same way.
- A configured row whose model has no results reads ``not run``; a stage with no results file at
  all is reported as ``not run: no EXP/<stage>/...`` instead of its table; a figure entry without
  results is skipped with a note, and a figure with nothing to draw is not written (a stale PNG of
  it is removed) and the report says why.
- ``compare:`` adds under each table the differences between its rows (every row minus the
  ``reference`` row, and the extra ``pairs``) with 95% confidence intervals: a paired bootstrap over
  test utterances with seeds paired by number (:mod:`masr.report.compare`,
  :mod:`masr.report.significance`), read from the per-utterance files next to each results file.
- A malformed results file (unreadable JSON, missing or mistyped field, model / seed differing from
  its folder) is an error naming the file.
"""

import argparse
import datetime
import glob
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import yaml

from masr.report import compare, figures, paper
from masr.utils.fileio import atomic_open
from masr.utils.machine import describe_machine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Results files of each stage (relative to EXP); the first pattern is the one reports quote.
PATTERNS = {
    "langid": ("langid/*/seed*/results.json",),
    "asr": ("asr/*/seed*/results.json",),
    "probe": ("probe/*/results.json", "probe/*/seed*/results.json"),
}

CONFIG_KEYS = ("title", "table1", "table2", "table3", "fig2", "fig3", "fig4", "configs", "compare", "paper")

EER_POOLING = {
    "pooled": "pooled over all utterance × language trials (one global threshold)",
    "average": "unweighted mean over languages of the per-language EER (one threshold per language)",
}


class ResultsError(ValueError):
    """A results file or report config that cannot be used; the message names the file."""


# --------------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------------

def _is_missing(value):
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
    if not values or any(_is_missing(v) for v in values):
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


# --------------------------------------------------------------------------------------------------
# reading results
# --------------------------------------------------------------------------------------------------

NUM = "number"          # int or float (not bool)
OPT_NUM = "number or null"
INT = "integer"
STR = "string"
LIST = "list"
DICT = "mapping"
OPT_DICT = "mapping or null"

SCHEMAS = {
    "langid": {
        "task": STR, "model": STR, "seed": INT, "data": {"test_id": STR}, "selected": DICT,
        "labels": LIST, "pretrain_languages": LIST,
        "overall": {"accuracy": OPT_NUM, "macro_f1": OPT_NUM, "eer": OPT_NUM, "num_classes": INT,
                    "num_utts": INT},
        "overlapped": {"accuracy": OPT_NUM, "num_classes": INT, "num_utts": INT},
        "non_overlapped": {"accuracy": OPT_NUM, "num_classes": INT, "num_utts": INT},
        "eer_pooling": STR, "per_language": DICT, "confusion": LIST,
    },
    "asr": {
        "task": STR, "model": STR, "seed": INT, "data": {"test_id": STR}, "selected": DICT,
        "per_language": DICT, "average": {"wer": OPT_NUM, "cer": OPT_NUM},
        "overall": {"wer": OPT_NUM, "cer": OPT_NUM},
    },
    "probe": {"task": STR, "model": STR, "tasks": DICT},
}

#: The linear probe and the fine-tuned model of a LangID run (optional blocks of its results.json).
LANGID_CANDIDATE = {
    "step": INT, "dev_accuracy": NUM,
    "overall": {"accuracy": OPT_NUM, "macro_f1": OPT_NUM, "eer": OPT_NUM, "num_classes": INT, "num_utts": INT},
    "overlapped": {"accuracy": OPT_NUM, "num_classes": INT, "num_utts": INT},
    "non_overlapped": {"accuracy": OPT_NUM, "num_classes": INT, "num_utts": INT},
}
LANGID_KINDS = ("linear_probe", "fine_tuned")

LANGID_LANGUAGE = {"accuracy": OPT_NUM, "num_utts": INT, "overlapped": "boolean"}
ASR_LANGUAGE = {"wer": OPT_NUM, "cer": OPT_NUM}
PROBE_TASK = {"dataset": STR, "protocol": STR, "accuracy": OPT_NUM, "fold_accuracies": LIST,
              "num_classes": INT, "num_train": INT, "num_test": INT, "data_id": STR}


def _is_kind(value, kind):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        NUM: number, OPT_NUM: number or value is None,
        INT: isinstance(value, int) and not isinstance(value, bool),
        STR: isinstance(value, str), LIST: isinstance(value, list), DICT: isinstance(value, dict),
        OPT_DICT: value is None or isinstance(value, dict), "boolean": isinstance(value, bool),
    }[kind]


def _check(obj, schema, path, where=""):
    """Raise ResultsError naming ``path`` when ``obj`` lacks a field of ``schema`` or mistypes it."""
    for key, kind in schema.items():
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise ResultsError(f"{path}: malformed results file: missing field '{name}'")
        value = obj[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise ResultsError(f"{path}: malformed results file: '{name}' should be a mapping")
            _check(value, kind, path, name)
        elif not _is_kind(value, kind):
            raise ResultsError(f"{path}: malformed results file: '{name}' should be a {kind}, "
                               f"got {json.dumps(value)[:40]}")


def load_results(path, task):
    """Read and check one ``results.json`` of a stage.

    Arguments
    ---------
    path : str
        The file.
    task : str
        ``"langid"``, ``"asr"`` or ``"probe"``.

    Returns
    -------
    dict
        The parsed file, with ``"_path"`` added.

    Raises
    ------
    ResultsError
        Naming ``path``: unreadable JSON, missing or mistyped fields, another task, a confusion
        matrix not matching the labels, or a model / seed differing from the folder names.
    """
    try:
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: malformed results file: {e}") from None
    if not isinstance(run, dict):
        raise ResultsError(f"{path}: malformed results file: not a JSON object")
    _check(run, SCHEMAS[task], path)
    if run["task"] != task:
        raise ResultsError(f"{path}: malformed results file: task '{run['task']}', expected '{task}'")
    if task == "langid":
        for kind in LANGID_KINDS:
            if kind in run:
                if not isinstance(run[kind], dict):
                    raise ResultsError(f"{path}: malformed results file: '{kind}' should be a mapping")
                _check(run[kind], LANGID_CANDIDATE, path, kind)
        for lang, entry in run["per_language"].items():
            if not isinstance(entry, dict):
                raise ResultsError(f"{path}: malformed results file: 'per_language.{lang}' should be a mapping")
            _check(entry, LANGID_LANGUAGE, path, f"per_language.{lang}")
        n = len(run["labels"])
        m = run["confusion"]
        if len(m) != n or any(not isinstance(r, list) or len(r) != n for r in m) or \
                any(not _is_kind(v, INT) for r in m for v in r):
            raise ResultsError(f"{path}: malformed results file: 'confusion' should be a "
                               f"{n} x {n} matrix of integers (one row / column per label)")
    elif task == "asr":
        for lang, entry in run["per_language"].items():
            if not isinstance(entry, dict):
                raise ResultsError(f"{path}: malformed results file: 'per_language.{lang}' should be a mapping")
            _check(entry, ASR_LANGUAGE, path, f"per_language.{lang}")
    else:
        for name, entry in run["tasks"].items():
            if not isinstance(entry, dict):
                raise ResultsError(f"{path}: malformed results file: 'tasks.{name}' should be a mapping")
            _check(entry, PROBE_TASK, path, f"tasks.{name}")
    # the folder names the run: <stage>/<model>/[seed<S>/]results.json
    folder = os.path.dirname(os.path.abspath(path))
    seed_dir = re.fullmatch(r"seed(\d+)", os.path.basename(folder))
    model_dir = os.path.basename(os.path.dirname(folder)) if seed_dir else os.path.basename(folder)
    if run["model"] != model_dir:
        raise ResultsError(f"{path}: malformed results file: model '{run['model']}' but folder '{model_dir}'")
    if seed_dir and "seed" in run and run["seed"] != int(seed_dir.group(1)):
        raise ResultsError(f"{path}: malformed results file: seed {run['seed']} but folder "
                           f"'{os.path.basename(folder)}'")
    if seed_dir and "seed" not in run:  # probes have no seed of their own: their run's (folder's)
        run["seed"] = int(seed_dir.group(1))
    run["_path"] = path
    return run


def collect(exp, task):
    """All results of a stage, grouped by model.

    Arguments
    ---------
    exp : str
        The experiment folder.
    task : str
        ``"langid"``, ``"asr"`` or ``"probe"``.

    Returns
    -------
    dict
        Model -> list of runs (see :func:`load_results`) sorted by seed; empty when the stage has
        no results file.
    """
    paths = sorted({p for pattern in PATTERNS[task] for p in glob.glob(os.path.join(exp, pattern))})
    by_model = {}
    for path in paths:
        run = load_results(path, task)
        by_model.setdefault(run["model"], []).append(run)
    for runs in by_model.values():
        runs.sort(key=lambda r: (r.get("seed") is not None, r.get("seed") or 0))
    return by_model


def check_same(runs, key, what, context):
    """Raise ResultsError unless ``key(run)`` is the same for every run.

    Arguments
    ---------
    runs : list of dict
        Runs with their ``"_path"``.
    key : callable
        Run -> the value that must agree (e.g. the test data id).
    what : str
        Name of that value in the message.
    context : str
        What would be mixed (e.g. ``"Table 1"``).

    Example
    -------
    >>> a = {"_path": "a/results.json", "data": {"test_id": "x"}}
    >>> b = {"_path": "b/results.json", "data": {"test_id": "y"}}
    >>> check_same([a, a], lambda r: r["data"]["test_id"], "data.test_id", "Table 1")
    >>> check_same([a, b], lambda r: r["data"]["test_id"], "data.test_id", "Table 1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.report.results.ResultsError: Table 1 would mix ...: a/results.json has data.test_id 'x' but b/results.json has 'y'
    """
    first = None
    for run in runs:
        value = key(run)
        if first is None:
            first = (run, value)
        elif value != first[1]:
            raise ResultsError(f"{context} would mix numbers from different data: {first[0]['_path']} "
                               f"has {what} {first[1]!r} but {run['_path']} has {value!r}")


def _test_id(run):
    return run["data"]["test_id"]


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


def _not_run(stage, exp):
    return f"not run: no {os.path.join(exp, PATTERNS[stage][0])}"


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
    check_same(runs, _test_id, "data.test_id", "Table 1")
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
        f"test_id `{_short(_test_id(first))}`).",
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
    check_same(runs, _test_id, "data.test_id", "Table 3")
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
        f"on dev {' / '.join(m.upper() for m in metrics)}; numbers on test (test_id `{_short(_test_id(first))}`).",
    ]
    if metric:
        notes.append(f"Runs: {_runs_note(rows, 'dev_' + metric, 'dev ' + metric.upper())}.")
    text = ("WER (%):\n\n" + table("wer") + "\n\nCER (%):\n\n" + table("cer") + "\n\n"
            + "\n".join(f"- {n}" for n in notes))
    if compare_config:
        text += _differences("Table 3, corpus-level WER / CER over all test utterances", rows, by_model,
                             compare.asr_metrics(), compare_config, lower_is_better=("WER", "CER"))
    return text


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------

def _names(config):
    """Model -> display name, from the table rows (first one wins)."""
    names = {}
    for key in ("table1", "table2", "table3"):
        for row in config.get(key) or []:
            names.setdefault(row["model"], row["name"])
    return names


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def _count(n, noun):
    """``"1 seed"``, ``"2 seeds"``."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _seeds(runs):
    return _count(len(runs), "seed")


def fig2(spec, langid, fig_dir, names):
    """Figure 2 (accuracy per lang2vec type). Returns the Markdown of its section."""
    path = os.path.join(fig_dir, "fig2_lang2vec_types.png")
    types = spec.get("types") or {}
    baseline = spec.get("baseline")
    drawn = {t: langid[m] for t, m in types.items() if langid.get(m)}
    skipped = [f"{t} (`{m}`)" for t, m in types.items() if not langid.get(m)]
    base_runs = langid.get(baseline, []) if baseline else []
    check_same([r for rs in drawn.values() for r in rs] + base_runs, _test_id, "data.test_id", "Figure 2")
    if not drawn:
        _remove(path)
        return ("Figure 2 not drawn: none of its lang2vec-type models has LangID results"
                f"{' (' + ', '.join(skipped) + ')' if skipped else ''}.")
    base_name = names.get(baseline, baseline)
    figures.plot_lang2vec_types({t: [r["overall"]["accuracy"] for r in rs] for t, rs in drawn.items()},
                                [r["overall"]["accuracy"] for r in base_runs] or None, path,
                                baseline_label=f"{base_name} (baseline)")
    caption = ("LangID test accuracy (%, all languages) after continued pretraining with each lang2vec "
               "distance type (" + ", ".join(f"{t}: `{types[t]}`, {_seeds(rs)}" for t, rs in drawn.items())
               + "); error bars: sample std over seeds where there are several")
    caption += (f"; dashed line: {base_name} (`{baseline}`, mean of {_seeds(base_runs)})" if base_runs
                else f"; no baseline line (`{baseline}` has no LangID results)")
    if skipped:
        caption += "; skipped, no results: " + ", ".join(skipped)
    return f"![Figure 2: LangID accuracy per lang2vec type](figures/{os.path.basename(path)})\n\n{caption}."


def _per_language(runs):
    """Language -> accuracies over seeds."""
    out = {}
    for r in runs:
        for lang, entry in r["per_language"].items():
            out.setdefault(lang, []).append(entry["accuracy"])
    return out


def fig3(spec, langid, fig_dir, names):
    """Figure 3 (per-language relative change). Returns the Markdown of its section."""
    path = os.path.join(fig_dir, "fig3_relative_change.png")
    baseline, model = spec.get("baseline"), spec.get("model")
    threshold = float(spec.get("threshold", 0.25))
    base_runs, model_runs = langid.get(baseline, []), langid.get(model, [])
    missing = [f"`{m}`" for m, rs in ((baseline, base_runs), (model, model_runs)) if not rs]
    if missing:
        _remove(path)
        return f"Figure 3 not drawn: no LangID results for {' and '.join(missing)}."
    check_same(base_runs + model_runs, _test_id, "data.test_id", "Figure 3")
    base_acc, model_acc = _per_language(base_runs), _per_language(model_runs)
    # languages with a missing (null) accuracy cannot be compared: treat them as absent
    base_acc = {k: v for k, v in base_acc.items() if not any(_is_missing(a) for a in v)}
    model_acc = {k: v for k, v in model_acc.items() if not any(_is_missing(a) for a in v)}
    sel = figures.relative_change(base_acc, model_acc, threshold)
    unseen = {lang for r in model_runs for lang, e in r["per_language"].items() if not e["overlapped"]}
    b_name, m_name = names.get(baseline, baseline), names.get(model, model)
    omitted = []
    if sel["omitted"]:
        omitted.append(f"{_count(len(sel['omitted']), 'language')} within ±{100 * threshold:g}% omitted "
                       f"({', '.join(sel['omitted'])})")
    if sel["undefined"]:
        omitted.append("baseline accuracy 0, relative change undefined, omitted: "
                       + ", ".join(f"{lang} ({m_name} {100 * a:.1f}%)" for lang, a in sel["undefined"]))
    if sel["missing"]:
        omitted.append("in one model's results only: " + ", ".join(sel["missing"]))
    if not sel["kept"]:
        _remove(path)
        return "Figure 3 not drawn: no language changes by more than " \
               f"±{100 * threshold:g}%" + ("; " + "; ".join(omitted) if omitted else "") + "."
    figures.plot_relative_change(sel["kept"], unseen, path, threshold=threshold,
                                 title=f"{m_name} vs {b_name}")
    caption = (f"Relative change of per-language LangID test accuracy, (acc {m_name} − acc {b_name}) / "
               f"acc {b_name}, of the means over seeds (`{model}`: {_seeds(model_runs)}, `{baseline}`: "
               f"{_seeds(base_runs)}); {_count(len(sel['kept']), 'language')} shown, sorted; hatched orange: "
               "unseen in pretraining (NO)")
    if omitted:
        caption += "; " + "; ".join(omitted)
    return f"![Figure 3: relative change per language](figures/{os.path.basename(path)})\n\n{caption}."


def fig4(spec, langid, fig_dir, names):
    """Figure 4 (confusion within a language group). Returns the Markdown of its section."""
    path = os.path.join(fig_dir, "fig4_confusion.png")
    baseline, model = spec.get("baseline"), spec.get("model")
    languages = list(spec.get("languages") or [])
    base_runs, model_runs = langid.get(baseline, []), langid.get(model, [])
    missing = [f"`{m}`" for m, rs in ((baseline, base_runs), (model, model_runs)) if not rs]
    if missing:
        _remove(path)
        return f"Figure 4 not drawn: no LangID results for {' and '.join(missing)}."
    check_same(base_runs + model_runs, _test_id, "data.test_id", "Figure 4")
    panels = []
    for runs in (base_runs, model_runs):
        try:
            labels, counts = figures.sum_confusions([(r["labels"], r["confusion"]) for r in runs])
        except ValueError as e:
            raise ResultsError(f"Figure 4: {e} ({', '.join(r['_path'] for r in runs)})") from None
        panels.append(figures.confusion_submatrix(counts, labels, languages))
    (base_m, rows, cols, absent), (model_m, rows2, _, _) = panels
    if rows != rows2:
        raise ResultsError(f"Figure 4: the group's languages differ between `{baseline}` ({rows}) "
                           f"and `{model}` ({rows2})")
    if not rows:
        _remove(path)
        return (f"Figure 4 not drawn: none of the languages {', '.join(languages) or '(none configured)'} "
                "is in the LangID labels.")
    b_name, m_name = names.get(baseline, baseline), names.get(model, model)
    figures.plot_confusions(figures.row_normalise(base_m), figures.row_normalise(model_m), rows, cols, path,
                            titles=(f"{b_name} ({_seeds(base_runs)} summed)",
                                    f"{m_name} ({_seeds(model_runs)} summed)"))
    caption = (f"Confusion among {', '.join(rows)} on test (rows: reference, columns: predicted, 'other': "
               "predicted outside the group; each row divided by all test utterances of its language, so "
               f"the diagonal is the language's accuracy), seeds summed; left {b_name} (`{baseline}`), "
               f"right {m_name} (`{model}`)")
    if absent:
        caption += "; not in the LangID labels, omitted: " + ", ".join(absent)
    return f"![Figure 4: confusion within the language group](figures/{os.path.basename(path)})\n\n{caption}."


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------

def git_commit(path=ROOT):
    """The checked-out commit of the git repository holding ``path``.

    Returns
    -------
    str
        ``"<sha>"``, ``"<sha> (with uncommitted changes)"`` when ``git status --porcelain`` lists
        anything, or ``"unknown"`` when ``path`` is not in a git checkout (or git is missing).

    Example
    -------
    >>> import tempfile
    >>> git_commit(tempfile.mkdtemp())
    'unknown'
    """
    def git(*args):
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha} (with uncommitted changes)" if dirty else sha


def load_report_config(path):
    """Read and check a report config (plain YAML, see the module docstring).

    Raises
    ------
    ResultsError
        Naming ``path``: not a mapping, an unknown key, a table row without ``name`` / ``model``, a
        ``paper:`` block that :func:`masr.report.paper.check_block` rejects (naming its key).
    """
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ResultsError(f"{path}: unreadable report config: {e}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ResultsError(f"{path}: report config should be a mapping")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ResultsError(f"{path}: unknown report config key(s) {unknown}; known: {list(CONFIG_KEYS)}")
    for key in ("table1", "table2", "table3"):
        rows = config.get(key) or []
        if not isinstance(rows, list) or not all(isinstance(r, dict) and {"name", "model"} <= set(r)
                                                 for r in rows):
            raise ResultsError(f"{path}: '{key}' should be a list of {{name: ..., model: ...}}")
    for key in ("fig2", "fig3", "fig4"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise ResultsError(f"{path}: '{key}' should be a mapping")
    if config.get("fig2") and not isinstance(config["fig2"].get("types") or {}, dict):
        raise ResultsError(f"{path}: 'fig2.types' should be a mapping type -> model")
    if not isinstance(config.get("configs") or [], list):
        raise ResultsError(f"{path}: 'configs' should be a list of paths")
    if config.get("compare") is not None:
        try:
            compare.check_compare_config(config["compare"], path)
        except ValueError as e:
            raise ResultsError(str(e)) from None
    try:
        paper.check_block(config, path)
    except paper.PaperError as e:
        raise ResultsError(str(e)) from None
    return config


def _link(path, out_dir):
    """Markdown link to a file, relative to the report's folder; marked when missing."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    return f"[`{path}`]({rel})" + ("" if os.path.isfile(path) else " (missing)")


def render_report(exp, config_path, out, machine=None, commit=None, date=None):
    """Collect the results, draw the figures and return the text of ``RESULTS.md``.

    Arguments
    ---------
    exp : str
        Experiment folder holding ``langid/``, ``asr/``, ``probe/``.
    config_path : str
        The report config.
    out : str
        Where ``RESULTS.md`` will be written; figures go to ``figures/`` next to it.
    machine, commit, date : str, optional
        Override the header fields (default: :func:`describe_machine`, :func:`git_commit`, now).

    Returns
    -------
    str
        The Markdown.
    """
    config = load_report_config(config_path)
    out_dir = os.path.dirname(os.path.abspath(out))
    fig_dir = os.path.join(out_dir, "figures")
    results = {task: collect(exp, task) for task in PATTERNS}
    names = _names(config)
    n_files = {task: sum(len(rs) for rs in by_model.values()) for task, by_model in results.items()}
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = config.get("title") or os.path.basename(os.path.abspath(exp))
    parts = [
        f"# Results: {title}",
        "Generated by `python -m masr.report.results` from the results files of the recipe's stages; "
        "do not edit by hand.",
        "\n".join([
            f"- date: {date}",
            f"- git commit: {commit or git_commit()}",
            f"- machine (report generated on): {machine or describe_machine()}",
            f"- report config: {_link(config_path, out_dir)}",
            f"- results: {n_files['langid']} LangID, {n_files['asr']} ASR, {n_files['probe']} probe "
            f"results files under `{exp}`",
        ]),
    ]

    sections = [
        ("table1", "Table 1: spoken language identification", "langid", table1),
        ("table2", "Table 2: linear probes", "probe", table2),
        ("table3", "Table 3: speech recognition", "asr", table3),
    ]
    for key, heading, stage, make in sections:
        parts.append(f"## {heading}")
        if not config.get(key):
            parts.append(f"Not configured (no `{key}` in the report config).")
        elif not results[stage]:
            parts.append(_not_run(stage, exp) + ".")
        else:
            parts.append(make(config[key], results[stage], config.get("compare")))
        parts[-1] = paper.annotate(parts[-1], key, config)  # the paper's rows, if the config has them

    parts.append("## Figures")
    for key, make in (("fig2", fig2), ("fig3", fig3), ("fig4", fig4)):
        number = key[-1]
        if not config.get(key):
            parts.append(f"Figure {number}: not configured (no `{key}` in the report config).")
        elif not results["langid"]:
            _remove(os.path.join(fig_dir, {"fig2": "fig2_lang2vec_types.png", "fig3": "fig3_relative_change.png",
                                           "fig4": "fig4_confusion.png"}[key]))
            parts.append(f"Figure {number} not drawn: LangID {_not_run('langid', exp)}.")
        else:
            parts.append(make(config[key], results["langid"], fig_dir, names))
        parts[-1] = paper.annotate(parts[-1], key, config)

    parts.append("## Configs")
    configs = [_link(config_path, out_dir) + " (this report)"]
    configs += [_link(p, out_dir) for p in config.get("configs") or []]
    parts.append("\n".join(f"- {c}" for c in configs))
    return "\n\n".join(parts) + "\n"


def write_report(exp, config_path, out=None, **kwargs):
    """Render the report (see :func:`render_report`) and write it atomically; returns its path."""
    out = out or os.path.join(exp, "RESULTS.md")
    text = render_report(exp, config_path, out, **kwargs)
    with atomic_open(out) as f:
        f.write(text)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write EXP/RESULTS.md and EXP/figures/ from the "
                                                 "stages' results.json files.")
    parser.add_argument("--exp", required=True, help="experiment folder (holds langid/, asr/, probe/)")
    parser.add_argument("--config", required=True, help="report config (YAML)")
    parser.add_argument("--out", help="output Markdown (default: EXP/RESULTS.md; figures/ goes next to it)")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.exp, args.config, args.out)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
