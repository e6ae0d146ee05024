"""Counts of data dirs per split and language: printed, and written to ``exp/data_stats.tsv``;
for data dirs that combine corpora (``utt2corpus``, a pretraining mix of :mod:`masr.corpora.mix`)
also per split and corpus (``exp/corpus_stats.tsv``).

Usage: ``python -m masr.data.stats data/train data/dev --out exp/data_stats.tsv [--corpus-out exp/corpus_stats.tsv]``

Every data dir needs ``utt2spk`` and ``utt2dur`` (which the validator leaves optional, as Kaldi
does); a missing file, an utterance missing from one, or a duration that is not a positive number
is reported as ``error: <file>[:<line>]: ...`` with exit status 1.
"""

import argparse
import os
import sys
from collections import defaultdict

from masr.data.datadir import DataDir, DataDirError
from masr.utils.fileio import atomic_open

COLUMNS = ("split", "lang", "utterances", "speakers", "hours")
CORPUS_COLUMNS = ("split", "corpus", "languages", "utterances", "speakers", "hours")


def _required(dd, name, what):
    """The map of file ``name`` of ``dd``, or a :class:`DataDirError` saying it is needed."""
    if not dd.has(name):
        raise DataDirError(f"{dd.file(name)}: file not found ({what})")
    return dd.read(name)


def _lookup(dd, name, mapping, utt):
    """``mapping[utt]``, or a :class:`DataDirError` naming file ``name`` and the utterance missing from it."""
    try:
        return mapping[utt]
    except KeyError:
        raise DataDirError(f"{dd.file(name)}: utterance '{utt}' of utt2spk is missing") from None


def data_stats(data_dirs):
    """One row per (split, language) plus a per-split ``all`` row.

    Arguments
    ---------
    data_dirs : list of str
        Data dirs with ``utt2spk`` and ``utt2dur``; ``utt2lang`` optional (``-`` otherwise).

    Returns
    -------
    list of dict
        Keys as in ``COLUMNS``.

    Raises
    ------
    DataDirError
        A missing data dir, ``utt2spk`` or ``utt2dur`` (the message says how to make it), an
        utterance of ``utt2spk`` missing from ``utt2dur`` or ``utt2lang``, or a malformed line.

    Example
    -------
    >>> import tempfile
    >>> from masr.data.datadir import write_data_dir
    >>> d = tempfile.mkdtemp() + "/train"
    >>> write_data_dir(d, {"wav.scp": {"a": "a.wav", "b": "b.wav"}, "utt2spk": {"a": "s1", "b": "s2"},
    ...                    "utt2dur": {"a": "1800", "b": "5400"}, "utt2lang": {"a": "hrv", "b": "srp"}})
    >>> [(r["lang"], r["utterances"], r["hours"]) for r in data_stats([d])]
    [('hrv', 1, 0.5), ('srp', 1, 1.5), ('all', 2, 2.0)]
    """
    rows = []
    for path in data_dirs:
        dd = DataDir(path)
        utt2spk = _required(dd, "utt2spk", "written by the corpus preparation")
        dur = dd.durations()
        utt2lang = dd.read("utt2lang") if dd.has("utt2lang") else dict.fromkeys(utt2spk, "-")
        groups = defaultdict(list)
        for utt in utt2spk:
            _lookup(dd, "utt2dur", dur, utt)
            groups[_lookup(dd, "utt2lang", utt2lang, utt)].append(utt)
        split = os.path.basename(os.path.normpath(path))
        for lang, utts in sorted(groups.items()) + [("all", list(utt2spk))]:
            rows.append({
                "split": split, "lang": lang, "utterances": len(utts),
                "speakers": len({utt2spk[u] for u in utts}),
                "hours": round(sum(dur[u] for u in utts) / 3600, 4),
            })
    return rows


def corpus_stats(data_dirs):
    """One row per (split, corpus) of the data dirs that have ``utt2corpus``, plus ``all`` rows.

    Arguments
    ---------
    data_dirs : list of str
        Data dirs with ``utt2spk`` and ``utt2dur``; those without ``utt2corpus`` are skipped.

    Returns
    -------
    list of dict
        Keys as in ``CORPUS_COLUMNS`` (``languages``: distinct ``utt2lang`` values, 0 without it).

    Raises
    ------
    DataDirError
        As :func:`data_stats`, and for an utterance of ``utt2spk`` missing from ``utt2corpus``.

    Example
    -------
    >>> import tempfile
    >>> from masr.data.datadir import write_data_dir
    >>> d = tempfile.mkdtemp() + "/pretrain"
    >>> write_data_dir(d, {"wav.scp": {"a": "a.wav", "b": "b.wav", "c": "c.wav"},
    ...                    "utt2spk": {"a": "s1", "b": "s1", "c": "s2"},
    ...                    "utt2dur": {"a": "1800", "b": "1800", "c": "3600"},
    ...                    "utt2lang": {"a": "hin", "b": "tam", "c": "hin"},
    ...                    "utt2corpus": {"a": "cv", "b": "cv", "c": "mls"}})
    >>> [(r["corpus"], r["languages"], r["utterances"], r["hours"]) for r in corpus_stats([d])]
    [('cv', 2, 2, 1.0), ('mls', 1, 1, 1.0), ('all', 2, 3, 2.0)]
    """
    rows = []
    for path in data_dirs:
        dd = DataDir(path)
        if not dd.has("utt2corpus"):
            continue
        utt2spk = _required(dd, "utt2spk", "written by the corpus preparation")
        dur, utt2corpus = dd.durations(), dd.read("utt2corpus")
        utt2lang = dd.read("utt2lang") if dd.has("utt2lang") else {}
        groups = defaultdict(list)
        for utt in utt2spk:
            _lookup(dd, "utt2dur", dur, utt)
            groups[_lookup(dd, "utt2corpus", utt2corpus, utt)].append(utt)
        split = os.path.basename(os.path.normpath(path))
        for corpus, utts in sorted(groups.items()) + [("all", list(utt2spk))]:
            rows.append({
                "split": split, "corpus": corpus, "languages": len({utt2lang[u] for u in utts if u in utt2lang}),
                "utterances": len(utts), "speakers": len({utt2spk[u] for u in utts}),
                "hours": round(sum(dur[u] for u in utts) / 3600, 4),
            })
    return rows


def write_table(path, columns, rows):
    """Write ``rows`` (dicts) as a TSV with a header, atomically."""
    with atomic_open(path) as f:
        f.write("\t".join(columns) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in columns) + "\n")


def main(argv=None):
    """Command line (see the module docstring).

    Returns
    -------
    int
        0, or 1 after printing ``error: <problem>`` to stderr (no traceback) for a data dir that
        lacks what the statistics need, or an output that cannot be written.

    Example
    -------
    >>> main(["/nonexistent/data/train"])
    1
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+")
    parser.add_argument("--out", help="write the table as TSV here")
    parser.add_argument("--corpus-out", help="write the per-corpus table here when a data dir has utt2corpus "
                                             "(an earlier one is removed when none has)")
    args = parser.parse_args(argv)
    try:
        rows = data_stats(args.data_dirs)
        if args.out:
            write_table(args.out, COLUMNS, rows)
        if args.corpus_out:
            by_corpus = corpus_stats(args.data_dirs)
            if by_corpus:
                write_table(args.corpus_out, CORPUS_COLUMNS, by_corpus)
                for r in by_corpus:
                    print(f"{r['split']:>10} {r['corpus']:>10}: {r['utterances']:6d} utterances, "
                          f"{r['languages']:3d} languages, {r['hours']:.2f} h")
            elif os.path.exists(args.corpus_out):
                os.remove(args.corpus_out)
    except (DataDirError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for r in rows:
        if r["lang"] == "all":
            langs = [x for x in rows if x["split"] == r["split"] and x["lang"] != "all"]
            n_lang = "  -" if [x["lang"] for x in langs] == ["-"] else f"{len(langs):3d}"  # "-": no utt2lang
            print(f"{r['split']:>10}: {r['utterances']:6d} utterances, {r['speakers']:4d} speakers, "
                  f"{n_lang} languages, {r['hours']:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
