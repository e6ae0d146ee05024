"""Subsets and splits of a data directory, like Kaldi's ``utils/subset_data_dir.sh`` and
``utils/subset_data_dir_tr_cv.sh``.

A subset keeps the chosen utterances in every file keyed by utterance (``wav.scp``, ``text``,
``feats.scp``, every ``utt2*``) and rebuilds ``spk2utt``; files keyed otherwise are not copied
(``weights.tsv`` of a pretraining mix would no longer be true).

A split deals *units* to the output dirs in the given fractions:

- ``--by speaker`` (default): all utterances of a speaker go to the same split, so no test
  speaker was heard in training (what LangID and ASR results should be measured on);
- ``--by utterance``: utterances are dealt one by one.

Units are shuffled with ``--seed`` and cut at the fractions (exact sizes), or, with ``--hash``,
each unit goes where a hash of its id falls (a unit stays in its split when others are added
later: a dev set that does not move as the corpus grows). ``--stratify lang`` splits each
language on its own, so every language keeps its share in each split (a speaker counts under
the language most of its utterances have).

Command line::

    python -m masr.data.subset subset data/all data/small --first 100
    python -m masr.data.subset subset data/all data/hrv --utt-list hrv_utts.txt
    python -m masr.data.subset split data/all data/train:0.8 data/dev:0.1 data/test:0.1 --stratify lang
"""

import argparse
import hashlib
import os
import random
import shutil
import sys
from collections import Counter, defaultdict

from masr.data.datadir import DataDir, DataDirError, read_kaldi_map, utt2spk_to_spk2utt, write_kaldi_map
from masr.data.validate import validate_data_dir


def _utt_files(src):
    """Names of the files of ``src`` keyed by utterance id."""
    return sorted(n for n in os.listdir(src)
                  if n in ("wav.scp", "text", "feats.scp", "segments") or n.startswith("utt2"))


def subset_data_dir(src, dst, utts):
    """Write the utterances ``utts`` of data dir ``src`` as data dir ``dst`` (replaced whole).

    Arguments
    ---------
    src, dst : str
    utts : iterable of str
        Utterance ids; every one must be in ``src``.

    Returns
    -------
    int
        Utterances written.

    Raises
    ------
    DataDirError
        An id not in ``src`` (named), or no utterance at all.

    Example
    -------
    >>> import tempfile
    >>> from masr.data.datadir import write_data_dir
    >>> d = tempfile.mkdtemp()
    >>> write_data_dir(f"{d}/all", {"wav.scp": {"a-1": "1.wav", "a-2": "2.wav", "b-1": "3.wav"},
    ...                             "utt2spk": {"a-1": "a", "a-2": "a", "b-1": "b"}})
    >>> subset_data_dir(f"{d}/all", f"{d}/sub", ["b-1", "a-2"])
    2
    >>> open(f"{d}/sub/spk2utt").read()
    'a a-2\\nb b-1\\n'
    """
    index = DataDir(src).read("wav.scp" if os.path.isfile(os.path.join(src, "wav.scp")) else "feats.scp")
    keep = set(utts)
    unknown = sorted(keep - set(index))
    if unknown:
        raise DataDirError(f"{src}: {len(unknown)} utterance(s) to keep are not in it, e.g. '{unknown[0]}'")
    if not keep:
        raise DataDirError(f"{src}: no utterance selected for {dst}")
    tmp = f"{os.path.normpath(dst)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in _utt_files(src):
        values = read_kaldi_map(os.path.join(src, name))
        write_kaldi_map(os.path.join(tmp, name), {u: v for u, v in values.items() if u in keep})
    if os.path.isfile(os.path.join(tmp, "utt2spk")):
        spk2utt = utt2spk_to_spk2utt(read_kaldi_map(os.path.join(tmp, "utt2spk")))
        write_kaldi_map(os.path.join(tmp, "spk2utt"), {s: " ".join(u) for s, u in spk2utt.items()})
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)
    return len(keep)


def _unit_of(utts, utt2spk, by):
    if by == "speaker":
        return {u: utt2spk[u] for u in utts}
    if by == "utterance":
        return {u: u for u in utts}
    raise ValueError(f"by must be 'speaker' or 'utterance', got '{by}'")


def _hash_fraction(unit, seed):
    digest = hashlib.sha256(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def assign_splits(units, fractions, seed=0, use_hash=False):
    """Deal ``units`` (sorted ids) to ``len(fractions)`` splits; returns {unit: split index}.

    Shuffled and cut in sizes as close to the fractions as whole units allow, every split getting
    at least one unit when there are enough (the largest split gives them up), or with ``use_hash``
    placed by a hash of (seed, unit), independent of the other units.

    Example
    -------
    >>> sorted(Counter(assign_splits([f"s{i}" for i in range(10)], [0.8, 0.1, 0.1]).values()).items())
    [(0, 8), (1, 1), (2, 1)]
    >>> sorted(Counter(assign_splits(["a", "b", "c"], [0.8, 0.1, 0.1]).values()).items())
    [(0, 1), (1, 1), (2, 1)]
    """
    total = sum(fractions)
    bounds, acc = [], 0.0
    for f in fractions:
        acc += f / total
        bounds.append(acc)
    units = sorted(units)
    if use_hash:
        return {u: next(i for i, b in enumerate(bounds) if _hash_fraction(u, seed) < b or i == len(bounds) - 1)
                for u in units}
    random.Random(seed).shuffle(units)
    n, largest = len(units), max(range(len(fractions)), key=lambda i: fractions[i])
    sizes = [round(f / total * n) for f in fractions]
    if n >= len(fractions):  # every split gets a unit (a tiny language still has dev and test speakers)
        sizes = [max(1, size) for size in sizes]
    sizes[largest] = 0
    sizes[largest] = n - sum(sizes)
    while sizes[largest] < (1 if n >= len(fractions) else 0):
        donor = max((i for i in range(len(sizes)) if i != largest), key=lambda i: sizes[i])
        sizes[donor] -= 1
        sizes[largest] += 1
    out, start = {}, 0
    for i, size in enumerate(sizes):
        for u in units[start:start + size]:
            out[u] = i
        start += size
    return out


def split_data_dir(src, dsts, fractions, by="speaker", stratify=None, seed=0, use_hash=False):
    """Split data dir ``src`` into the data dirs ``dsts`` in ``fractions`` (see the module docstring).

    Arguments
    ---------
    src : str
    dsts : list of str
    fractions : list of float
        One per output dir (normalised to sum 1).
    by : str
        ``"speaker"`` or ``"utterance"``.
    stratify : str or None
        A stream (``"lang"``: ``utt2lang``) split on its own per value.
    seed : int
    use_hash : bool

    Returns
    -------
    list of int
        Utterances per output dir.

    Raises
    ------
    DataDirError
        A split that would get no utterance (too few speakers for the fractions), naming it.
    """
    if len(dsts) != len(fractions) or not dsts:
        raise ValueError("give one fraction per output dir")
    validate_data_dir(src, check_audio=False, check_lang=False)
    data = DataDir(src)
    utts = data.utt_ids
    utt2spk = data.read("utt2spk")
    unit_of = _unit_of(utts, utt2spk, by)
    groups = defaultdict(set)
    if stratify:
        labels = data.stream(stratify)
        votes = defaultdict(Counter)
        for u in utts:
            votes[unit_of[u]][labels[u]] += 1
        for unit, counts in votes.items():
            groups[counts.most_common(1)[0][0]].add(unit)
    else:
        groups[None] = set(unit_of.values())
    split_of = {}
    for label in sorted(groups, key=str):
        split_of.update(assign_splits(groups[label], fractions, seed=seed, use_hash=use_hash))
    members = [[u for u in utts if split_of[unit_of[u]] == i] for i in range(len(dsts))]
    for dst, chosen in zip(dsts, members):
        if not chosen:
            raise DataDirError(f"{src}: the split {dst} would hold no utterance ({len(set(unit_of.values()))} "
                               f"{by} unit(s) for fractions {fractions}); use --by utterance or other fractions")
    return [subset_data_dir(src, dst, chosen) for dst, chosen in zip(dsts, members)]


def _select(args, utts, utt2spk):
    if args.utt_list:
        return [line.split()[0] for line in open(args.utt_list, encoding="utf-8") if line.strip()]
    if args.spk_list:
        speakers = {line.split()[0] for line in open(args.spk_list, encoding="utf-8") if line.strip()}
        return [u for u in utts if utt2spk[u] in speakers]
    if args.first is not None:
        return utts[:args.first]
    if args.random is not None:
        return sorted(random.Random(args.seed).sample(utts, min(args.random, len(utts))))
    raise ValueError("give one of --utt-list, --spk-list, --first, --random")


def main(argv=None):
    """Command line (module docstring); returns 0, or 1 with ``error: ...`` on bad input."""
    parser = argparse.ArgumentParser(prog="python -m masr.data.subset", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("subset", help="keep some utterances")
    s.add_argument("src")
    s.add_argument("dst")
    pick = s.add_mutually_exclusive_group(required=True)
    pick.add_argument("--utt-list", help="a file whose first column lists the utterances to keep")
    pick.add_argument("--spk-list", help="a file whose first column lists the speakers to keep")
    pick.add_argument("--first", type=int, help="the first N utterances (sorted order)")
    pick.add_argument("--random", type=int, help="N utterances drawn at random (--seed)")
    s.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("split", help="split into several data dirs")
    p.add_argument("src")
    p.add_argument("outputs", nargs="+", help="DIR:FRACTION, e.g. data/train:0.8 data/dev:0.1 data/test:0.1")
    p.add_argument("--by", choices=["speaker", "utterance"], default="speaker")
    p.add_argument("--stratify", help="a stream split on its own per value, e.g. lang")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hash", action="store_true", help="place each unit by a hash of its id (stable as data grows)")
    args = parser.parse_args(argv)
    try:
        if args.command == "subset":
            data = DataDir(args.src)
            utts = data.utt_ids
            n = subset_data_dir(args.src, args.dst, _select(args, utts, data.read("utt2spk")))
            print(f"{args.dst}: {n} of {len(utts)} utterances of {args.src}")
        else:
            dsts, fractions = [], []
            for spec in args.outputs:
                path, sep, fraction = spec.rpartition(":")
                if not sep or not path:
                    raise ValueError(f"'{spec}' is not DIR:FRACTION")
                dsts.append(path)
                fractions.append(float(fraction))
            counts = split_data_dir(args.src, dsts, fractions, by=args.by, stratify=args.stratify, seed=args.seed,
                                    use_hash=args.hash)
            for dst, n in zip(dsts, counts):
                print(f"{dst}: {n} utterances")
    except (DataDirError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
