"""Counts of data dirs per split and language: printed, and written to ``exp/data_stats.tsv``.

Usage: ``python -m masr.data.stats data/train data/dev --out exp/data_stats.tsv``
"""

import argparse
import os
import sys
from collections import defaultdict

from masr.data.datadir import DataDir
from masr.utils.fileio import atomic_open

COLUMNS = ("split", "lang", "utterances", "speakers", "hours")


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+")
    parser.add_argument("--out", help="write the table as TSV here")
    args = parser.parse_args(argv)
    rows = data_stats(args.data_dirs)
    if args.out:
        with atomic_open(args.out) as f:
            f.write("\t".join(COLUMNS) + "\n")
            for r in rows:
                f.write("\t".join(str(r[c]) for c in COLUMNS) + "\n")
    for r in rows:
        if r["lang"] == "all":
            n_lang = sum(1 for x in rows if x["split"] == r["split"] and x["lang"] != "all")
            print(f"{r['split']:>10}: {r['utterances']:6d} utterances, {r['speakers']:4d} speakers, "
                  f"{n_lang:3d} languages, {r['hours']:.2f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
