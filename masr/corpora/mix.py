"""The pretraining mix (MASR paper, section 4.1): several prepared corpora combined into one data directory.

:func:`combine` takes ``(name, data_dir)`` pairs, each a data directory written by any corpus
module, and writes ONE data directory for pretraining:

- every utterance id becomes ``<source>-<utt>`` and every speaker ``<source>-<spk>``: ids stay
  unique across corpora and, as each source's ids start with their speaker id, the combined ids
  still sort with their speakers (the validator's speaker-order check);
- ``wav.scp``, ``utt2spk`` (and the derived ``spk2utt``) and ``utt2lang`` are always written;
  ``utt2lang`` is required from every source (a :class:`MixError` names the source lacking it);
- ``text``, ``utt2geo``, ``utt2dur`` and any other ``utt2*`` file are carried over only when every
  source has it; a file that only some sources have is omitted, logged, and listed in the result
  (``omitted``) with the sources lacking it;
- ``utt2corpus`` gives each utterance's source name (a source's own ``utt2corpus``, from an earlier
  mix, is replaced);
- ``weights.tsv`` (tab-separated, with a header ``corpus lang utterances weight``) gives the
  sampling probability of each (corpus, language) group; the weights sum to 1.
  :func:`utterance_weights` turns it into per-utterance weights for a weighted sampler.

Group weights (:func:`group_weights`):

- default: ``p(c, l) ∝ n(c, l) ** alpha`` over all groups, ``n`` the utterance count; ``alpha = 1``
  is proportional to the data, ``alpha < 1`` upsamples small languages as in multilingual
  pretraining (XLS-R uses 0.5);
- ``weights = {"<corpus>": w, "<corpus>/<lang>": w, ...}``: the share of probability mass of a
  (corpus, language) group (``"<corpus>/<lang>"``) or of a whole corpus (``"<corpus>"``: split over
  those of its languages without their own entry, ``∝ n ** alpha`` within the corpus). Every group
  must be covered; the result is normalised to sum to 1.

The paper's exact corpus weights are not given here (not verified); the mix is whatever the
config passes.

Usage::

    python -m masr.corpora.mix --out data/pretrain --source cv=data/cv --source vp=data/vp
        [--alpha 0.5] [--weights "cv=0.3,vp=0.7"] [--limit N] [--seed S]
"""

import argparse
import collections
import csv
import logging
import os
import random
import re
import sys

from masr.data.datadir import DataDir, DataDirError, write_data_dir

logger = logging.getLogger(__name__)

#: Files always written (``spk2utt`` is derived from ``utt2spk``).
REQUIRED = ("wav.scp", "utt2spk", "utt2lang")
#: Files written by :func:`combine` itself, never carried over from a source.
OWN = ("utt2corpus", "spk2utt", "weights.tsv")
WEIGHTS_FILE = "weights.tsv"
WEIGHTS_HEADER = ("corpus", "lang", "utterances", "weight")

_NAME = re.compile(r"[A-Za-z0-9_]+")


class MixError(ValueError):
    """A source that cannot be mixed; the message names the source (and file)."""


def _carried_files(path):
    """``text`` and ``utt2*`` files of a data directory (the per-utterance files that may be carried)."""
    names = set()
    for fname in os.listdir(path):
        if fname == "text" or (fname.startswith("utt2") and len(fname) > 4 and "." not in fname):
            if os.path.isfile(os.path.join(path, fname)):
                names.add(fname)
    return names


def _check_sources(sources):
    names = [name for name, _ in sources]
    if not sources:
        raise MixError("no sources to mix")
    for name, path in sources:
        if not _NAME.fullmatch(name or ""):
            raise MixError(f"source name '{name}' ({path}): use letters, digits and '_' only")
        if not os.path.isdir(path):
            raise MixError(f"source '{name}': data directory {path} not found")
    dup = sorted(n for n, k in collections.Counter(names).items() if k > 1)
    if dup:
        raise MixError(f"source name(s) used twice: {' '.join(dup)}")


def group_weights(counts, weights=None, alpha=1.0):
    """Sampling probability of each (corpus, language) group.

    Arguments
    ---------
    counts : dict
        (corpus, lang) -> number of utterances.
    weights : dict or None
        ``{"<corpus>": w}`` and/or ``{"<corpus>/<lang>": w}`` (see the module docstring).
    alpha : float
        Exponent: ``p ∝ n ** alpha`` (among all groups, or within a corpus weighted as a whole).

    Returns
    -------
    dict
        (corpus, lang) -> probability; the values sum to 1.

    Raises
    ------
    MixError
        A group no weight covers, a weight key naming no group, or a negative weight.

    Example
    -------
    >>> c = {("cv", "hin"): 90, ("cv", "tam"): 10, ("vp", "deu"): 100}
    >>> {k: round(v, 4) for k, v in group_weights(c).items()}
    {('cv', 'hin'): 0.45, ('cv', 'tam'): 0.05, ('vp', 'deu'): 0.5}
    >>> {k: round(v, 4) for k, v in group_weights(c, alpha=0.5).items()}
    {('cv', 'hin'): 0.4189, ('cv', 'tam'): 0.1396, ('vp', 'deu'): 0.4415}
    >>> {k: round(v, 4) for k, v in group_weights(c, {"cv": 0.2, "vp/deu": 0.8}).items()}
    {('cv', 'hin'): 0.18, ('cv', 'tam'): 0.02, ('vp', 'deu'): 0.8}
    """
    counts = {k: n for k, n in counts.items() if n > 0}
    if not counts:
        raise MixError("no utterances to weight")
    if not weights:
        raw = {k: n ** alpha for k, n in counts.items()}
    else:
        corpora = {c for c, _ in counts}
        for key, w in weights.items():
            if float(w) < 0:
                raise MixError(f"weight '{key}': {w} is negative")
            corpus, _, lang = str(key).partition("/")
            if corpus not in corpora or (lang and (corpus, lang) not in counts):
                known = " ".join(sorted(corpora | {f"{c}/{l}" for c, l in counts}))
                raise MixError(f"weight '{key}' names no corpus or corpus/lang of the mix (known: {known})")
        raw = {}
        for corpus in sorted(corpora):
            own = {k: float(weights[f"{k[0]}/{k[1]}"]) for k in counts
                   if k[0] == corpus and f"{k[0]}/{k[1]}" in weights}
            rest = [k for k in counts if k[0] == corpus and k not in own]
            raw.update(own)
            if rest:
                if corpus not in weights:
                    raise MixError(f"no weight for {' '.join(f'{c}/{l}' for c, l in sorted(rest))}: give "
                                   f"'{corpus}' or '{corpus}/<lang>' a weight")
                share = {k: counts[k] ** alpha for k in rest}
                total = sum(share.values())
                raw.update({k: float(weights[corpus]) * v / total for k, v in share.items()})
    total = sum(raw.values())
    if total <= 0:
        raise MixError("all weights are zero")
    return {k: raw[k] / total for k in sorted(raw)}


def read_weights(path):
    """(corpus, lang) -> (utterances, weight) from a ``weights.tsv`` written by :func:`combine`."""
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if lineno == 1:
                if tuple(row) != WEIGHTS_HEADER:
                    raise MixError(f"{path}:1: expected the header {' '.join(WEIGHTS_HEADER)}, got {' '.join(row)}")
                continue
            try:
                corpus, lang, n, w = row
                out[(corpus, lang)] = (int(n), float(w))
            except ValueError:
                raise MixError(f"{path}:{lineno}: expected 'corpus<TAB>lang<TAB>utterances<TAB>weight', "
                               f"got {row!r}") from None
    return out


def write_weights(path, counts, probs):
    """Write ``weights.tsv``: one line per (corpus, lang) group, sorted."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(WEIGHTS_HEADER) + "\n")
        for (corpus, lang), p in sorted(probs.items()):
            f.write(f"{corpus}\t{lang}\t{counts[(corpus, lang)]}\t{p:.10g}\n")


def utterance_weights(data_dir):
    """Per-utterance sampling weights of a mixed data directory, for a weighted sampler.

    An utterance of group (corpus, lang) gets ``weight(corpus, lang) / utterances(corpus, lang)``
    from ``weights.tsv``, so drawing utterances with these weights draws the groups with the
    weights of ``weights.tsv`` (the weights sum to 1).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_data_dir(d, {"wav.scp": {"a-s1-1": "/1.wav", "a-s1-2": "/2.wav", "b-s2-1": "/3.wav"},
    ...                    "utt2spk": {"a-s1-1": "a-s1", "a-s1-2": "a-s1", "b-s2-1": "b-s2"},
    ...                    "utt2lang": {"a-s1-1": "hin", "a-s1-2": "hin", "b-s2-1": "tam"},
    ...                    "utt2corpus": {"a-s1-1": "a", "a-s1-2": "a", "b-s2-1": "b"}})
    >>> write_weights(os.path.join(d, "weights.tsv"), {("a", "hin"): 2, ("b", "tam"): 1},
    ...               {("a", "hin"): 0.5, ("b", "tam"): 0.5})
    >>> utterance_weights(d)
    {'a-s1-1': 0.25, 'a-s1-2': 0.25, 'b-s2-1': 0.5}
    """
    dd = DataDir(data_dir)
    table = read_weights(dd.file(WEIGHTS_FILE))
    corpus, lang = dd.read("utt2corpus"), dd.read("utt2lang")
    out = {}
    for utt in dd.utt_ids:
        key = (corpus.get(utt), lang.get(utt))
        if key not in table:
            raise MixError(f"{dd.file(WEIGHTS_FILE)}: no line for corpus '{key[0]}' language '{key[1]}' "
                           f"(utterance '{utt}')")
        n, w = table[key]
        out[utt] = w / n
    return out


def combine(sources, out_dir, weights=None, seed=0, alpha=1.0, limit=None):
    """Write one pretraining data directory holding every utterance of ``sources``.

    Arguments
    ---------
    sources : list of (str, str)
        (source name, data directory); names use letters, digits and ``_`` and become the id
        prefix ``<name>-`` and the ``utt2corpus`` value.
    out_dir : str
        Data directory to write.
    weights : dict or None
        Group weights (see :func:`group_weights`); ``None``: ``∝ n ** alpha``.
    seed : int
        Seed of the random choice made by ``limit``.
    alpha : float
        Sampling exponent (see :func:`group_weights`).
    limit : int or None
        Keep at most this many utterances per (source, language) group, drawn at random with
        ``seed`` (small debugging mixes); ``weights.tsv`` counts the utterances kept.

    Returns
    -------
    dict
        ``files`` (file name -> {utt: value}), ``omitted`` (file name -> sources lacking it) and
        ``weights`` ((corpus, lang) -> probability).

    Raises
    ------
    MixError
        A source without ``utt2lang`` (or ``wav.scp``/``utt2spk``), an utterance of a source missing
        from one of its files, a bad source name; names the source and the file.
    """
    sources = [(str(n), os.fspath(p)) for n, p in sources]
    _check_sources(sources)
    for name, path in sources:
        if os.path.abspath(path) == os.path.abspath(out_dir):
            raise MixError(f"source '{name}': {path} is the output directory itself")
    present = {}
    for name, path in sources:
        for required in REQUIRED:
            if not os.path.isfile(os.path.join(path, required)):
                raise MixError(f"source '{name}': {os.path.join(path, required)} not found ({required} is "
                               f"required from every source of the mix)")
        present[name] = _carried_files(path) | {"wav.scp"}
    every = set.intersection(*present.values()) - set(OWN)
    omitted = {}
    for fname in sorted(set.union(*present.values()) - every - set(OWN)):
        omitted[fname] = [n for n, _ in sources if fname not in present[n]]
        logger.warning("%s: %s not written: missing from source(s) %s", out_dir, fname, " ".join(omitted[fname]))
    rng = random.Random(seed)
    files = {fname: {} for fname in sorted(every)}
    files["utt2corpus"] = {}
    counts = collections.Counter()
    for name, path in sources:
        dd = DataDir(path)
        try:
            maps = {fname: dd.read(fname) for fname in files if fname != "utt2corpus"}
        except DataDirError as e:
            raise MixError(f"source '{name}': {e}") from None
        utts = sorted(maps["wav.scp"])
        for fname, mapping in maps.items():
            missing = [u for u in utts if u not in mapping]
            if missing:
                raise MixError(f"source '{name}': {dd.file(fname)} lacks {len(missing)} utterance(s) of wav.scp, "
                               f"e.g. '{missing[0]}'")
        if limit is not None:
            groups = collections.defaultdict(list)
            for u in utts:
                groups[maps["utt2lang"][u]].append(u)
            utts = sorted(u for g in groups.values() for u in (rng.sample(g, limit) if len(g) > limit else g))
        for utt in utts:
            new = f"{name}-{utt}"
            for fname, mapping in maps.items():
                value = mapping[utt]
                files[fname][new] = f"{name}-{value}" if fname == "utt2spk" else value
            files["utt2corpus"][new] = name
            counts[(name, maps["utt2lang"][utt])] += 1
    probs = group_weights(counts, weights, alpha)
    os.makedirs(out_dir, exist_ok=True)
    for fname in os.listdir(out_dir):  # stale files of an earlier mix must not survive
        if fname in OWN or fname == "text" or fname.startswith("utt2") or fname in ("wav.scp", "feats.scp"):
            if os.path.isfile(os.path.join(out_dir, fname)):
                os.remove(os.path.join(out_dir, fname))
    write_data_dir(out_dir, files)
    write_weights(os.path.join(out_dir, WEIGHTS_FILE), counts, probs)
    return {"files": files, "omitted": omitted, "weights": probs}


def parse_weights(spec):
    """``"cv=0.3,vp/deu=0.7"`` -> ``{"cv": 0.3, "vp/deu": 0.7}``.

    Example
    -------
    >>> parse_weights("cv=0.3, vp/deu=0.7")
    {'cv': 0.3, 'vp/deu': 0.7}
    """
    out = {}
    for item in re.split(r"[\s,]+", spec or ""):
        if not item:
            continue
        key, sep, value = item.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            raise MixError(f"weight '{item}': expected <corpus>[/<lang>]=<number>") from None
        if not sep:
            raise MixError(f"weight '{item}': expected <corpus>[/<lang>]=<number>")
    return out


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.mix", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="data directory to write")
    parser.add_argument("--source", action="append", required=True, metavar="NAME=DIR",
                        help="a prepared data directory and its name (repeat)")
    parser.add_argument("--alpha", type=float, default=1.0, help="sampling exponent, p ∝ n^alpha (default 1)")
    parser.add_argument("--weights", default="", help="corpus or corpus/lang weights, e.g. 'cv=0.3,vp=0.7'")
    parser.add_argument("--limit", type=int, help="at most N utterances per (source, language)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        sources = []
        for item in args.source:
            name, sep, path = item.partition("=")
            if not sep:
                raise MixError(f"--source '{item}': expected NAME=DIR")
            sources.append((name, path))
        result = combine(sources, args.out, parse_weights(args.weights), args.seed, args.alpha, args.limit)
    except (OSError, ValueError) as e:
        print(f"mix: {e}", file=sys.stderr)
        return 1
    print(f"mix: {len(result['files']['wav.scp'])} utterances from {len(sources)} sources -> {args.out}")
    for (corpus, lang), p in sorted(result["weights"].items()):
        print(f"  {corpus}/{lang}: {p:.4f}")
    for fname, lacking in result["omitted"].items():
        print(f"  {fname} not written: missing from {' '.join(lacking)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
