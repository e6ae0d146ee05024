"""Differences between the rows of a results table, with paired bootstrap confidence intervals.

A table row is a model trained with one or more seeds; two rows are compared on the *same* test
utterances (:mod:`masr.report.significance`). The per-utterance outcomes come from the files each
downstream run writes next to its ``results.json``:

- LangID (``task: langid``): ``predictions.<kind>.tsv`` (``kind`` = ``linear_probe`` or
  ``fine_tuned``; ``predictions.tsv``, the model dev selection kept, for runs without them):
  1 when the predicted language is the reference;
- ASR (``task: asr``): ``hypotheses.tsv``: (word errors, reference words) for WER and
  (character errors, reference characters), spaces removed, for CER, as :mod:`masr.downstream.asr_scoring`
  scores them;
- probes (``task: probe``): ``predictions/<task>.tsv``: 1 when correct, per (fold, dataset, utt).

Seeds are paired by seed number: seed *s* of one model with seed *s* of the other (on the same
seed-*s* data order); only the seeds both models have enter a comparison, and the table says how
many.

The report config names the comparisons (``compare:``): each row against a reference row (the
baseline), and extra pairs::

    compare:
      reference: continue_bestrq          # every other row of each table vs this model
      pairs: [[continue_masr, continue_lasr]]
      num_samples: 10000                  # bootstrap replicates
"""

import csv
import os

from masr.metrics import edit_distance
from masr.report.significance import METHOD, accuracy_statistic, align, format_ci, paired_bootstrap, ratio_statistic

#: Keys of the ``compare:`` block of a report config.
COMPARE_KEYS = ("reference", "pairs", "num_samples", "seed")


class OutcomesError(ValueError):
    """A per-utterance outcome file that is missing or malformed; the message names it."""


def _read_tsv(path, columns):
    """Rows of a TSV file with a header holding at least ``columns``, as dicts."""
    if not os.path.isfile(path):
        raise OutcomesError(f"{path}: not found (per-utterance outcomes are needed for the confidence intervals; "
                            f"rerun the stage that wrote its results.json)")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise OutcomesError(f"{path}: no column {missing[0]!r} in the header {reader.fieldnames}")
        rows = list(reader)
    for i, row in enumerate(rows, start=2):
        if any(row.get(c) is None for c in columns):
            raise OutcomesError(f"{path}: line {i}: fewer fields than the header")
    return rows


def run_dir(run):
    """The folder of a run loaded by :func:`masr.report.results.load_results`."""
    return os.path.dirname(run["_path"])


def langid_outcomes(run, kind="selected"):
    """utt -> 1.0 (correct) / 0.0 of a LangID run's test predictions.

    Arguments
    ---------
    run : dict
        A loaded ``results.json`` (with ``_path``).
    kind : str
        ``"linear_probe"``, ``"fine_tuned"`` or ``"selected"`` (the model dev selection kept).

    Returns
    -------
    dict
    """
    name = "predictions.tsv" if kind == "selected" else f"predictions.{kind}.tsv"
    rows = _read_tsv(os.path.join(run_dir(run), name), ("utt", "reference", "predicted"))
    return {r["utt"]: float(r["reference"] == r["predicted"]) for r in rows}


def asr_outcomes(run):
    """(utt -> (word errors, words), utt -> (character errors, characters)) of an ASR run."""
    rows = _read_tsv(os.path.join(run_dir(run), "hypotheses.tsv"), ("utt", "reference", "hypothesis"))
    words, chars = {}, {}
    for r in rows:
        ref, hyp = r["reference"], r["hypothesis"]
        w = edit_distance(ref.split(), hyp.split())
        c = edit_distance(list(ref.replace(" ", "")), list(hyp.replace(" ", "")))
        words[r["utt"]] = (w["errors"], w["ref_len"])
        chars[r["utt"]] = (c["errors"], c["ref_len"])
    return words, chars


def probe_outcomes(run, task):
    """(fold, dataset, utt) -> 1.0 / 0.0 of one task of a probe run."""
    rows = _read_tsv(os.path.join(run_dir(run), "predictions", f"{task}.tsv"),
                     ("fold", "dataset", "utt", "reference", "predicted"))
    return {(r["fold"], r["dataset"], r["utt"]): float(r["reference"] == r["predicted"]) for r in rows}


def common_seeds(runs_a, runs_b):
    """The runs of each model for the seeds both have, in seed order: (runs_a, runs_b).

    Example
    -------
    >>> a = [{"seed": 1}, {"seed": 2}, {"seed": 3}]
    >>> b = [{"seed": 3}, {"seed": 1}]
    >>> [[r["seed"] for r in side] for side in common_seeds(a, b)]
    [[1, 3], [1, 3]]
    """
    by_a = {r.get("seed"): r for r in runs_a}
    by_b = {r.get("seed"): r for r in runs_b}
    seeds = sorted(set(by_a) & set(by_b), key=lambda s: (s is None, s or 0))
    return [by_a[s] for s in seeds], [by_b[s] for s in seeds]


def compare_pairs(names, config):
    """The (row, reference row) model pairs of a table, from the ``compare:`` config.

    Every row's model against ``reference`` (when the table has it), then the extra ``pairs`` whose
    two models are both rows of the table; duplicates dropped.

    Example
    -------
    >>> compare_pairs(["bestrq", "lasr", "masr"], {"reference": "bestrq", "pairs": [["masr", "lasr"], ["x", "lasr"]]})
    [('lasr', 'bestrq'), ('masr', 'bestrq'), ('masr', 'lasr')]
    """
    pairs = []
    ref = config.get("reference")
    if ref in names:
        pairs += [(m, ref) for m in names if m != ref]
    for a, b in config.get("pairs", []):
        if a in names and b in names and (a, b) not in pairs:
            pairs.append((a, b))
    return pairs


def bootstrap(outcomes_a, outcomes_b, statistic, config):
    """:func:`masr.report.significance.paired_bootstrap` of two models' per-seed outcomes."""
    _, stats_a, stats_b = align(outcomes_a, outcomes_b)
    return paired_bootstrap(stats_a, stats_b, statistic, num_samples=int(config.get("num_samples", 10000)),
                            seed=int(config.get("seed", 0)))


def differences_table(title, names, by_model, metrics, config, lower_is_better=()):
    """Markdown: one line per compared pair, one column per metric: ``Δ [95% CI]``.

    Arguments
    ---------
    title : str
        What is compared (the table's name), used in the note.
    names : dict
        Model -> row name of the table.
    by_model : dict
        Model -> runs (loaded results with ``_path``).
    metrics : list of (column name, outcome function, statistic)
        ``outcome function(run)`` gives utt -> statistic(s) of one run.
    config : dict
        The ``compare:`` block.
    lower_is_better : collection of str
        Metric columns where a negative difference is an improvement (WER, CER).

    Returns
    -------
    str
        Markdown (empty when nothing is compared).
    """
    pairs = compare_pairs([m for m in names if by_model.get(m)], config)
    if not pairs:
        return ""
    lines = ["| comparison | seeds | " + " | ".join(f"Δ {m[0]} [95% CI]" for m in metrics) + " |",
             "|---|---:|" + "---:|" * len(metrics)]
    utterances = set()
    for a, b in pairs:
        runs_a, runs_b = common_seeds(by_model[a], by_model[b])
        label = f"{names[a]} − {names[b]}"
        if not runs_a:
            lines.append(f"| {label} | no common seed |" + " |" * len(metrics))
            continue
        cells = []
        for _, outcome, statistic in metrics:
            result = bootstrap([outcome(r) for r in runs_a], [outcome(r) for r in runs_b], statistic, config)
            utterances.add(result.num_utterances)
            cells.append(format_ci(result))
        seeds = ", ".join(str(r.get("seed", "-")) for r in runs_a)
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    better = (f" For {', '.join(lower_is_better)} lower is better: a negative difference favours the first model."
              if lower_is_better else "")
    note = (f"Differences in percentage points ({title}), first model minus second, on the same "
            f"{'/'.join(str(n) for n in sorted(utterances))} test items; 95% confidence interval by {METHOD} "
            f"({int(config.get('num_samples', 10000))} replicates); * = the interval excludes 0. Seeds are "
            f"paired by number; only seeds both models have are used.{better}")
    return "\n".join(lines) + "\n\n- " + note


def langid_metrics(kinds):
    """Table 1 metrics: accuracy of each model kind present (``linear_probe``, ``fine_tuned``)."""
    label = {"linear_probe": "LP accuracy", "fine_tuned": "FT accuracy", "selected": "accuracy"}
    return [(label[k], lambda run, k=k: langid_outcomes(run, k), accuracy_statistic) for k in kinds]


def asr_metrics():
    """Table 3 metrics: corpus-level WER and CER."""
    return [("WER", lambda run: asr_outcomes(run)[0], ratio_statistic),
            ("CER", lambda run: asr_outcomes(run)[1], ratio_statistic)]


def probe_metrics(tasks):
    """Table 2 metrics: accuracy of each probe task."""
    return [(task, lambda run, t=task: probe_outcomes(run, t), accuracy_statistic) for task in tasks]


def check_compare_config(block, where):
    """Validate a ``compare:`` block; ValueError naming ``where`` (the report config) and the key."""
    if not isinstance(block, dict):
        raise ValueError(f"{where}: 'compare' must be a mapping with keys {', '.join(COMPARE_KEYS)}")
    unknown = sorted(set(block) - set(COMPARE_KEYS))
    if unknown:
        raise ValueError(f"{where}: compare: unknown key '{unknown[0]}' (known: {', '.join(COMPARE_KEYS)})")
    if "reference" in block and not isinstance(block["reference"], str):
        raise ValueError(f"{where}: compare.reference must be a model name")
    pairs = block.get("pairs", [])
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(m, str) for m in p)
                                              for p in pairs):
        raise ValueError(f"{where}: compare.pairs must be a list of [model, model] pairs")
    for key in ("num_samples", "seed"):
        if key in block and (not isinstance(block[key], int) or isinstance(block[key], bool) or block[key] < 0
                             or (key == "num_samples" and block[key] < 1)):
            raise ValueError(f"{where}: compare.{key} must be a {'positive' if key == 'num_samples' else 'non-negative'} integer")
