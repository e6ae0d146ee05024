"""Counts of data dirs per split and language: printed, and written to ``exp/data_stats.tsv``;
for data dirs that combine corpora (``utt2corpus``, a pretraining mix of :mod:`masr.corpora.mix`)
also per split and corpus (``exp/corpus_stats.tsv``).

Usage: ``python -m masr.data.stats data/train data/dev --out exp/data_stats.tsv [--corpus-out exp/corpus_stats.tsv]``
"""

import argparse
import os
import sys
from collections import defaultdict

from masr.data.datadir import DataDir
from masr.utils.fileio import atomic_open

COLUMNS = ("split", "lang", "utterances", "speakers", "hours")
CORPUS_COLUMNS = ("split", "corpus", "languages", "utterances", "speakers", "hours")


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
    """
    rows = []
    for path in data_dirs:
        dd = DataDir(path)
        utt2spk, dur = dd.read("utt2spk"), dd.durations()
        utt2lang = dd.read("utt2lang") if dd.has("utt2lang") else dict.fromkeys(utt2spk, "-")
        groups = defaultdict(list)
        for utt in utt2spk:
            groups[utt2lang[utt]].append(utt)
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
        utt2spk, dur, utt2corpus = dd.read("utt2spk"), dd.durations(), dd.read("utt2corpus")
        utt2lang = dd.read("utt2lang") if dd.has("utt2lang") else {}
        groups = defaultdict(list)
        for utt in utt2spk:
            groups[utt2corpus[utt]].append(utt)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+")
    parser.add_argument("--out", help="write the table as TSV here")
    parser.add_argument("--corpus-out", help="write the per-corpus table here when a data dir has utt2corpus "
                                             "(an earlier one is removed when none has)")
    args = parser.parse_args(argv)
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
    for r in rows:
        if r["lang"] == "all":
            n_lang = sum(1 for x in rows if x["split"] == r["split"] and x["lang"] != "all")
            print(f"{r['split']:>10}: {r['utterances']:6d} utterances, {r['speakers']:4d} speakers, "
                  f"{n_lang:3d} languages, {r['hours']:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
