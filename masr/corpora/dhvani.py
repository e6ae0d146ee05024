"""Dhvani: speech in 22 scheduled Indian languages, for spoken language identification (local copy only).

Where it comes from: the Dhvani release page (see the MASR paper's reference for Dhvani). It is
not downloaded here; ``--data-root`` must point at a local copy (:func:`locate` explains that
when it is missing). Not verified: the release's real folder layout, and whether this is the
corpus AI4Bharat calls "Dhwani".

Assumed source layout (an assumption, not checked against the release)::

    <root>[/dhvani]/<language>/<speaker>/**/*.wav     a speaker subfolder, or
    <root>[/dhvani]/<language>/*.wav                  files directly in the language folder

``<language>`` is an English language name (``hindi``, ``Odia``, ``oriya``, ...), an ISO 639-3
or ISO 639-1 code, case-insensitive (:data:`FOLDER_NAMES`); other folders are skipped with a
warning. The first folder below the language folder is the speaker; files directly in the
language folder each get their own pseudo-speaker ``file_<stem>``. Audio: ``.wav`` and ``.flac``.

Output, one data directory per LangID split holding every language::

    <out>/{train,dev,test}/  wav.scp utt2spk spk2utt utt2dur utt2lang

- speakers are ``<lang>-<speaker>`` and utterances ``<lang>-<speaker>-<path below the speaker,
  '/' -> '_', no extension>`` (a pseudo-speaker's utterance id is the speaker id); characters
  other than letters, digits and ``_`` become ``_``;
- splits are speaker-disjoint: a speaker goes to train/dev/test by a hash of its id
  (80/10/10, :func:`split_of`), the same on every machine and run. A language with few speakers
  may have none in dev or test;
- ``utt2lang`` is the URIEL code of :data:`LANGUAGES`.

Language table (:data:`LANGUAGES`): the 22 languages of the Eighth Schedule of the Indian
constitution, ISO 639-3 code of the language -> the code written to ``utt2lang``, always one
URIEL (lang2vec) knows. They differ for two macrolanguages URIEL lacks: ``doi`` Dogri -> ``dgo``
(Dogri, the individual language) and ``kok`` Konkani -> ``knn`` (Konkani individual language;
``gom``, Goan Konkani, is not in URIEL either). ``nep`` and ``ori`` are the macrolanguage codes,
the ones URIEL has (``npi``, ``ory`` are not in URIEL).

Overlap (:func:`overlap`): the paper reports Dhvani LangID on the 5 languages seen in pretraining
and the 17 others. :data:`PAPER_OVERLAPPED` is an ASSUMPTION (not verified against the paper):
``asm ben tel`` are in IARPA BABEL and ``hin tam`` in Common Voice; check it against the paper.

Usage::

    python -m masr.corpora.dhvani --data-root DIR --out data/dhvani [--pretrain-langs LIST] [--nj N]
"""

import argparse
import collections
import hashlib
import logging
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import require_manual
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

logger = logging.getLogger(__name__)

PAGE = "the Dhvani release page (see the MASR paper's reference for Dhvani)"
URL = PAGE
SPLITS = ("train", "dev", "test")
#: Percent of speakers in train and dev (the rest: test).
SPLIT_PERCENT = (80, 10)
AUDIO_EXTENSIONS = (".wav", ".flac")

Language = collections.namedtuple("Language", "iso639_3 uriel name iso639_1 aliases")

# ISO 639-3 | code in utt2lang (URIEL) | English name | ISO 639-1 | other folder names
_TABLE = """
asm|asm|assamese|as|
ben|ben|bengali|bn|bangla
brx|brx|bodo|-|boro
doi|dgo|dogri|-|dgo
guj|guj|gujarati|gu|
hin|hin|hindi|hi|
kan|kan|kannada|kn|
kas|kas|kashmiri|ks|
kok|knn|konkani|-|knn gom
mai|mai|maithili|-|
mal|mal|malayalam|ml|
mni|mni|manipuri|-|meitei meetei meiteilon
mar|mar|marathi|mr|
nep|nep|nepali|ne|npi
ori|ori|odia|or|oriya ory
pan|pan|punjabi|pa|panjabi
san|san|sanskrit|sa|
sat|sat|santali|-|santhali
snd|snd|sindhi|sd|
tam|tam|tamil|ta|
tel|tel|telugu|te|
urd|urd|urdu|ur|
"""

#: ISO 639-3 -> :class:`Language`, the 22 scheduled languages.
LANGUAGES = {}
#: lower-case folder name -> ISO 639-3.
FOLDER_NAMES = {}
for _line in _TABLE.strip().splitlines():
    _iso3, _uriel, _name, _iso1, _aliases = _line.split("|")
    LANGUAGES[_iso3] = Language(_iso3, _uriel, _name, None if _iso1 == "-" else _iso1, tuple(_aliases.split()))
    for _key in (_iso3, _name, _iso1, *_aliases.split()):
        if _key != "-":
            FOLDER_NAMES[_key] = _iso3
del _line, _iso3, _uriel, _name, _iso1, _aliases, _key

#: ASSUMED (not verified): the Dhvani languages in the paper's pretraining mix (URIEL codes).
PAPER_OVERLAPPED = ("asm", "ben", "hin", "tam", "tel")


def uriel_fallbacks():
    """Languages whose ISO 639-3 code URIEL lacks, with the code used instead.

    Example
    -------
    >>> uriel_fallbacks()
    {'doi': 'dgo', 'kok': 'knn'}
    """
    return {r.iso639_3: r.uriel for r in LANGUAGES.values() if r.iso639_3 != r.uriel}


def language_of_folder(name):
    """ISO 639-3 code of a language folder name, or ``None``.

    Example
    -------
    >>> language_of_folder("Hindi"), language_of_folder("or"), language_of_folder("Oriya"), language_of_folder("x")
    ('hin', 'ori', 'ori', None)
    """
    return FOLDER_NAMES.get(re.sub(r"[\s_-]+", "", name.strip().lower()))


def _token(text):
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def split_of(speaker):
    """``train``, ``dev`` or ``test`` for a speaker id: a hash (MD5) of the id, 80/10/10.

    Example
    -------
    >>> split_of("hin-s1") in SPLITS, split_of("hin-s1") == split_of("hin-s1")
    (True, True)
    """
    bucket = int(hashlib.md5(speaker.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < SPLIT_PERCENT[0]:
        return "train"
    return "dev" if bucket < SPLIT_PERCENT[0] + SPLIT_PERCENT[1] else "test"


def _language_folders(folder):
    if not os.path.isdir(folder):
        return {}
    return {e: language_of_folder(e) for e in sorted(os.listdir(folder))
            if os.path.isdir(os.path.join(folder, e)) and language_of_folder(e)}


def locate(data_root):
    """The Dhvani folder (holding language folders): ``<root>/dhvani``, ``<root>/Dhvani`` or ``<root>``.

    Raises
    ------
    masr.corpora.download.ManualDownloadError
        (a :class:`FileNotFoundError`) naming the page and every folder looked at.
    """
    tried = [os.path.join(data_root, "dhvani"), os.path.join(data_root, "Dhvani"), data_root]
    for folder in tried:
        if _language_folders(folder):
            return folder
    require_manual(data_root, "Dhvani", PAGE)  # raises when the folder itself is missing
    raise FileNotFoundError(f"Dhvani not found under {data_root}: no language folder (e.g. hindi/, hin/) in "
                            f"{', '.join(tried)}; get it from {PAGE}")


def download(dest):
    """Dhvani is not downloaded: raises, naming where it is distributed."""
    raise FileNotFoundError(f"Dhvani cannot be downloaded by this script: get it from {PAGE} and point --data-root "
                            f"at it ({dest})")


def scan(folder):
    """Recordings under the Dhvani ``folder``: {utt: (path, speaker, URIEL code)}, sorted by utt.

    Raises
    ------
    ValueError
        Two recordings with the same utterance id, or a pseudo-speaker clashing with a speaker
        folder (naming both files).
    """
    found = {}
    for entry, iso3 in _language_folders(folder).items():
        lang = LANGUAGES[iso3].uriel
        root = os.path.join(folder, entry)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for fname in sorted(filenames):
                stem, ext = os.path.splitext(fname)
                if ext.lower() not in AUDIO_EXTENSIONS or fname.startswith("."):
                    continue
                path = os.path.abspath(os.path.join(dirpath, fname))
                if rel_dir == ".":
                    spk = f"{lang}-file_{_token(stem)}"
                    utt = spk
                else:
                    parts = rel_dir.split(os.sep)
                    spk = f"{lang}-{_token(parts[0])}"
                    utt = f"{spk}-{_token('_'.join(parts[1:] + [stem]))}"
                if utt in found:
                    raise ValueError(f"{path}: utterance id '{utt}' already used by {found[utt][0]}")
                found[utt] = (path, spk, lang)
    pseudo = {spk for utt, (_, spk, _) in found.items() if utt == spk}
    for utt, (path, spk, _) in found.items():
        if utt != spk and spk in pseudo:
            raise ValueError(f"{path}: speaker folder gives speaker '{spk}', the pseudo-speaker of {found[spk][0]}")
    if not found:
        raise FileNotFoundError(f"{folder}: no {'/'.join(AUDIO_EXTENSIONS)} files in its language folders")
    return dict(sorted(found.items()))


def prepare(data_root, out_dir, nj=1):
    """Write ``<out_dir>/{train,dev,test}`` from the Dhvani copy under ``data_root``.

    Returns
    -------
    dict
        split -> {file name: {utt: value}}; a split without speakers is not written (logged).
    """
    folder = locate(data_root)
    recordings = scan(folder)
    paths = [r[0] for r in recordings.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="dhvani durations", unit="file"))
    result = {}
    by_split = collections.defaultdict(dict)
    for (utt, rec), (frames, sr) in zip(recordings.items(), lengths):
        by_split[split_of(rec[1])][utt] = (rec, frames / sr)
    for split in SPLITS:
        utts = by_split.get(split)
        if not utts:
            logger.warning("Dhvani: no speaker hashed to %s; %s/%s not written", split, out_dir, split)
            continue
        files = {
            "wav.scp": {u: r[0] for u, (r, _) in utts.items()},
            "utt2spk": {u: r[1] for u, (r, _) in utts.items()},
            "utt2lang": {u: r[2] for u, (r, _) in utts.items()},
            "utt2dur": {u: f"{d:.3f}" for u, (_, d) in utts.items()},
        }
        write_data_dir(os.path.join(out_dir, split), files)
        result[split] = files
    return result


def overlap(pretrain_langs=None):
    """The Dhvani languages seen in pretraining and the others (URIEL codes, sorted).

    Arguments
    ---------
    pretrain_langs : iterable of str or None
        Codes of the pretraining languages (URIEL or ISO 639-3 codes, or folder names);
        ``None``: :data:`PAPER_OVERLAPPED` (an assumption, see the module docstring).

    Example
    -------
    >>> over, non = overlap()
    >>> len(over), len(non), over
    (5, 17, ['asm', 'ben', 'hin', 'tam', 'tel'])
    >>> overlap(["deu", "kok", "hindi"])[0]
    ['hin', 'knn']
    """
    wanted = set(PAPER_OVERLAPPED if pretrain_langs is None else pretrain_langs)
    wanted |= {LANGUAGES[language_of_folder(w)].uriel for w in list(wanted) if language_of_folder(w)}
    over = sorted(r.uriel for r in LANGUAGES.values() if {r.uriel, r.iso639_3} & wanted)
    non = sorted(r.uriel for r in LANGUAGES.values() if r.uriel not in over)
    return over, non


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.dhvani", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding the local Dhvani copy")
    parser.add_argument("--out", required=True, help="folder receiving train/ dev/ test/, e.g. data/dhvani")
    parser.add_argument("--pretrain-langs", default=None,
                        help="comma/space-separated pretraining languages: writes <out>/langs_overlapped.txt and "
                             "langs_non_overlapped.txt (default list: the assumed paper mix)")
    parser.add_argument("--nj", type=int, default=1, help="processes reading audio durations")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        result = prepare(args.data_root, args.out, nj=args.nj)
        langs = None if args.pretrain_langs is None else [w for w in re.split(r"[\s,]+", args.pretrain_langs) if w]
        over, non = overlap(langs)
        for name, codes in (("langs_overlapped.txt", over), ("langs_non_overlapped.txt", non)):
            with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
                f.writelines(f"{c}\n" for c in codes)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"dhvani: {e}", file=sys.stderr)
        return 1
    for split, files in result.items():
        counts = collections.Counter(files["utt2lang"].values())
        print(f"dhvani: {args.out}/{split}: {len(files['wav.scp'])} utterances, {len(counts)} languages")
    print(f"dhvani: {len(over)} overlapped, {len(non)} non-overlapped languages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
