"""Scoring of ASR hypotheses: WER and CER per language, their mean and corpus-level values, and the
report files (for :mod:`masr.downstream.asr`).

Hypotheses and references are compared as they are (no normalisation). Every number comes from
:func:`masr.metrics.error_rate_stats` (SpeechBrain's ``ErrorRateStats``): WER and CER per language
(``utt2lang`` of the test dir), their unweighted mean over languages and their corpus-level
values. CER is computed on characters with the spaces removed, so that it measures scripts
written without word boundaries (Japanese) too.

Files: ``per_language.tsv`` and ``hypotheses.tsv`` (:func:`write_reports`), and the
per-utterance alignments ``wer_details.test.txt`` and ``cer_details.test.txt`` of SpeechBrain's
``ErrorRateStats.write_stats`` (:func:`score`).
"""

import os

from masr.data.datadir import DataDir, DataDirError
from masr.metrics import error_rate_stats, wer
from masr.utils.fileio import atomic_open


def cer(references, hypotheses):
    """Corpus-level character error rate, spaces removed (:func:`masr.metrics.error_rate_stats`).

    Each string loses its spaces (so that word boundaries, which some scripts do not write, do not
    count) and is aligned character by character; the counts are summed: CER = total errors / total
    reference characters.

    Arguments
    ---------
    references : list of str
    hypotheses : list of str
        Same length.

    Returns
    -------
    dict
        ``cer`` (float, may exceed 1), ``substitutions``, ``deletions``, ``insertions``, ``errors``
        and ``chars`` (total reference characters). ValueError when the lists differ in length or
        when the references have no character.

    Example
    -------
    >>> out = cer(["ab cd", "ef"], ["abxd", "e fg"])  # 1 substitution + 1 insertion / 6 chars
    >>> out["cer"], out["substitutions"], out["insertions"], out["chars"]
    (0.3333333333333333, 1, 1, 6)
    >>> cer(["ともかく"], ["とかく"])["cer"]  # one deletion
    0.25
    """
    try:
        totals, _ = error_rate_stats(references, hypotheses, unit="char")
    except ValueError as e:
        message = str(e) if "differ in length" in str(e) else "the references have no character"
        raise ValueError(f"cer: {message}") from None
    return {"cer": totals["rate"], "substitutions": totals["substitutions"], "deletions": totals["deletions"],
            "insertions": totals["insertions"], "errors": totals["errors"], "chars": totals["tokens"]}


#: Per-utterance alignments of the test set, next to results.json (``{unit}`` wer / cer, ``{set}`` test).
DETAILS_FILE = "{unit}_details.{set}.txt"


def score(references, hypotheses, languages, details_dir=None, set_name="test"):
    """Per-language, average and overall WER / CER.

    Every number comes from :func:`masr.metrics.error_rate_stats` (SpeechBrain's
    ``ErrorRateStats``) on words (WER) and on characters without spaces (CER, as :func:`cer`).

    Arguments
    ---------
    references, hypotheses, languages : dict
        utt -> reference, hypothesis, language (same utterances).
    details_dir : str or None
        When given, ``wer_details.<set_name>.txt`` and ``cer_details.<set_name>.txt`` are written
        there: ``ErrorRateStats.write_stats`` of all utterances (the corpus-level summary, in %, then
        one alignment per utterance, in utterance-id order).
    set_name : str

    Returns
    -------
    dict
        ``per_language`` (``{lang: {"wer", "cer", "num_words", "num_utts"}}``, languages sorted),
        ``average`` (``{"wer", "cer"}``: unweighted means over languages) and ``overall``
        (``{"wer", "cer"}``: corpus-level).

    Example
    -------
    >>> out = score({"a": "x y", "b": "z"}, {"a": "x y", "b": "w"}, {"a": "l1", "b": "l2"})
    >>> out["per_language"]["l2"], out["average"], out["overall"]["wer"]
    ({'wer': 1.0, 'cer': 1.0, 'num_words': 1, 'num_utts': 1}, {'wer': 0.5, 'cer': 0.5}, 0.3333333333333333)
    """
    utts = sorted(references)
    missing = [u for u in utts if u not in hypotheses or u not in languages]
    if missing:
        raise ValueError(f"utterance '{missing[0]}' has no hypothesis or no language")
    per_language = {}
    for lang in sorted({languages[u] for u in utts}):
        mine = [u for u in utts if languages[u] == lang]
        refs, hyps = [references[u] for u in mine], [hypotheses[u] for u in mine]
        w = wer(refs, hyps)
        per_language[lang] = {"wer": w["wer"], "cer": cer(refs, hyps)["cer"], "num_words": w["words"],
                              "num_utts": len(mine)}
    refs, hyps = [references[u] for u in utts], [hypotheses[u] for u in utts]
    overall = {}
    for unit in ("wer", "cer"):
        try:
            totals, stats = error_rate_stats(refs, hyps, ids=utts, unit="word" if unit == "wer" else "char")
        except ValueError as e:
            raise ValueError(f"{unit}: {e}") from None
        overall[unit] = totals["rate"]
        if details_dir is not None:
            with atomic_open(os.path.join(details_dir, DETAILS_FILE.format(unit=unit, set=set_name))) as f:
                stats.write_stats(f)
    mean = lambda key: sum(r[key] for r in per_language.values()) / len(per_language)  # noqa: E731
    return {"per_language": per_language, "average": {"wer": mean("wer"), "cer": mean("cer")}, "overall": overall}


def references_of(dump_dir, utts, stream="text"):
    """utt -> value of ``stream`` for ``utts``; DataDirError naming the file when one is missing."""
    data = DataDir(dump_dir)
    fname = "text" if stream == "text" else f"utt2{stream}"
    if not data.has(fname):
        raise DataDirError(f"{dump_dir}: no '{fname}'")
    values = data.stream(stream)
    missing = [u for u in utts if u not in values]
    if missing:
        raise DataDirError(f"{data.file(fname)}: utterance '{missing[0]}' is missing "
                           f"({len(missing)} of {len(utts)} utterances)")
    return {u: values[u] for u in utts}


def write_reports(exp_dir, results, references, hypotheses, languages):
    """``per_language.tsv`` and ``hypotheses.tsv`` (utt, lang, reference, hypothesis)."""
    with atomic_open(os.path.join(exp_dir, "per_language.tsv")) as f:
        f.write("language\tutterances\twords\twer\tcer\n")
        for lang, r in results["per_language"].items():
            f.write(f"{lang}\t{r['num_utts']}\t{r['num_words']}\t{r['wer']:.4f}\t{r['cer']:.4f}\n")
        for name in ("average", "overall"):
            f.write(f"{name}\t\t\t{results[name]['wer']:.4f}\t{results[name]['cer']:.4f}\n")
    with atomic_open(os.path.join(exp_dir, "hypotheses.tsv")) as f:
        f.write("utt\tlang\treference\thypothesis\n")
        for utt in sorted(references):
            f.write(f"{utt}\t{languages[utt]}\t{references[utt]}\t{hypotheses[utt]}\n")
