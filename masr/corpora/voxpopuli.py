"""VoxPopuli unlabelled speech (Wang et al., ACL 2021): European Parliament sessions in 23 languages, public.

Download (:func:`download`): one archive per language and year, ``AUDIO_URL``
(``https://dl.fbaipublicfiles.com/voxpopuli/audios/<lang>_<year>.tar``, years 2009-2020),
unpacked into ``<root>/raw_audios/`` as upstream's ``download_audios.py`` does. Upstream
publishes no checksums, so none is checked.

Segmentation (:func:`segment`): the sessions are cut into utterances with the upstream
annotation file ``unlabelled_v2.tsv.gz`` (tab-separated, header with ``event_id``,
``segment_no``, ``start``, ``end`` in seconds), as upstream's ``get_unlabelled_data.py`` does::

    <root>/raw_audios/<lang>/<year>/<event_id>.ogg          sessions (assumed archive layout)
    <root>/unlabelled_data/<lang>/<year>/<event_id>_<segment_no>.ogg    utterances

The language of an event is the part of ``event_id`` after its last ``_`` and the year its first
four characters (upstream's rule). Segments already cut are kept.

Output (:func:`prepare`), one data directory from ``unlabelled_data``::

    <out>/  wav.scp utt2spk spk2utt utt2dur utt2lang

- utterance ids ``<lang>-<file stem>``; VoxPopuli's unlabelled data has no speaker labels, so
  every utterance is its own pseudo-speaker (``utt2spk`` maps it to itself);
- ``utt2lang`` from :data:`LANGUAGES` (URIEL codes; Estonian ``ekk``, Latvian ``lav``);
- no ``text`` (unlabelled).

Not verified: the members of the ``<lang>_<year>.tar`` archives (assumed ``<lang>/<year>/<event>.ogg``,
the paths upstream's segmentation script reads).

Usage::

    python -m masr.corpora.voxpopuli --data-root DIR --out data/voxpopuli [--languages "de fr"]
        [--years 2019,2020] [--download] [--nj N]
"""

import argparse
import collections
import csv
import glob
import gzip
import logging
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import download as fetch
from masr.corpora.download import safe_extract
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

logger = logging.getLogger(__name__)

BASE_URL = "https://dl.fbaipublicfiles.com/voxpopuli"
AUDIO_URL = BASE_URL + "/audios/{lang}_{year}.tar"
ANNOTATIONS_URL = BASE_URL + "/annotations/unlabelled_v2.tsv.gz"
URL = AUDIO_URL
YEARS = tuple(range(2009, 2021))

#: VoxPopuli language code -> URIEL ISO 639-3 code.
LANGUAGES = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "pl": "pol", "it": "ita", "ro": "ron", "hu": "hun",
    "cs": "ces", "nl": "nld", "fi": "fin", "hr": "hrv", "sk": "slk", "sl": "slv", "et": "ekk", "lt": "lit",
    "pt": "por", "bg": "bul", "el": "ell", "lv": "lav", "mt": "mlt", "sv": "swe", "da": "dan",
}


def _check_languages(languages):
    if isinstance(languages, str):
        languages = [w for w in re.split(r"[\s,]+", languages) if w]
    languages = list(languages or LANGUAGES)
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        raise ValueError(f"unknown VoxPopuli language(s): {' '.join(unknown)} (known: {' '.join(LANGUAGES)})")
    return languages


def locate(data_root):
    """``<data_root>/unlabelled_data`` when it holds segmented audio, else :class:`FileNotFoundError`."""
    folder = os.path.join(data_root, "unlabelled_data")
    if glob.glob(os.path.join(folder, "*", "*", "*.ogg")):
        return folder
    raise FileNotFoundError(f"VoxPopuli not found under {data_root}: no {folder}/<lang>/<year>/*.ogg (download with "
                            f"--download, which also segments the sessions)")


def download(dest, languages=None, years=YEARS, keep_archives=False, progress=True):
    """Download and unpack ``<lang>_<year>.tar`` into ``<dest>/raw_audios`` (skipping unpacked ones).

    Returns
    -------
    str
        ``<dest>/raw_audios``.
    """
    raw = os.path.join(dest, "raw_audios")
    for lang in _check_languages(languages):
        for year in years:
            if os.path.isdir(os.path.join(raw, lang, str(year))):
                continue
            archive = fetch(AUDIO_URL.format(lang=lang, year=year), os.path.join(raw, f"{lang}_{year}.tar"),
                            progress=progress)
            safe_extract(archive, raw)
            if not keep_archives:
                os.remove(archive)
    return raw


def read_annotations(path, languages=None):
    """``[(event_id, segment_no, start, end)]`` of the annotation TSV (``.gz`` or plain) for ``languages``.

    Raises
    ------
    ValueError
        ``file:line``: a missing column or a segment whose times are not numbers with end > start.
    """
    wanted = set(_check_languages(languages))
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in ("event_id", "segment_no", "start", "end") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}:1: header lacks column(s) {' '.join(missing)}")
        for lineno, row in enumerate(reader, start=2):
            event = row["event_id"]
            if event.rsplit("_", 1)[-1] not in wanted:
                continue
            try:
                start, end = float(row["start"]), float(row["end"])
                if not end > start:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{lineno}: event {event} segment {row['segment_no']}: start "
                                 f"'{row['start']}' end '{row['end']}' are not times with end > start") from None
            rows.append((event, row["segment_no"], start, end))
    return rows


def _cut(job):
    """Cut one session into its segments (module level, for :func:`parallel_map`); returns the count written."""
    import soundfile as sf

    src, segments = job
    written = 0
    with sf.SoundFile(src) as f:
        sr = f.samplerate
        for out, start, end in segments:
            if os.path.isfile(out):
                continue
            f.seek(min(int(start * sr), f.frames))
            wave = f.read(max(0, min(int(end * sr), f.frames) - int(start * sr)), dtype="float32")
            if len(wave) == 0:
                logger.warning("%s: segment %s is empty (session shorter than %.2f s)", src, out, start)
                continue
            tmp = out + ".tmp"
            sf.write(tmp, wave, sr, format="OGG", subtype="VORBIS")
            os.replace(tmp, out)
            written += 1
    return written


def segment(root, languages=None, annotations=None, nj=1):
    """Cut ``<root>/raw_audios`` sessions into ``<root>/unlabelled_data`` segments; returns the count cut.

    ``annotations``: the annotation file (default: ``unlabelled_v2.tsv.gz`` downloaded into ``root``).
    Sessions not downloaded are skipped (logged).
    """
    if annotations is None:
        annotations = fetch(ANNOTATIONS_URL, os.path.join(root, "unlabelled_v2.tsv.gz"))
    jobs = collections.defaultdict(list)
    missing = set()
    for event, seg, start, end in read_annotations(annotations, languages):
        lang, year = event.rsplit("_", 1)[-1], event[:4]
        src = os.path.join(root, "raw_audios", lang, year, f"{event}.ogg")
        if not os.path.isfile(src):
            missing.add(src)
            continue
        out_dir = os.path.join(root, "unlabelled_data", lang, year)
        os.makedirs(out_dir, exist_ok=True)
        jobs[src].append((os.path.join(out_dir, f"{event}_{seg}.ogg"), start, end))
    if missing:
        logger.info("%d annotated session(s) not downloaded, skipped", len(missing))
    return sum(progress(parallel_map(_cut, sorted(jobs.items()), nj=nj), total=len(jobs),
                        desc="voxpopuli segmenting", unit="session"))


def prepare(data_root, out_dir, languages=None, nj=1):
    """Write the data directory ``out_dir`` from ``<data_root>/unlabelled_data``; returns the files."""
    languages = _check_languages(languages)
    folder = locate(data_root)
    records = {}
    for lang in languages:
        for path in sorted(glob.glob(os.path.join(folder, lang, "*", "*.ogg"))):
            stem = os.path.splitext(os.path.basename(path))[0]
            utt = f"{lang}-{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)}"
            if utt in records:
                raise ValueError(f"{path}: utterance id '{utt}' already used by {records[utt]}")
            records[utt] = os.path.abspath(path)
    if not records:
        raise FileNotFoundError(f"{folder}: no segments for {' '.join(languages)}")
    paths = list(records.values())
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="voxpopuli durations", unit="file"))
    files = {
        "wav.scp": records,
        "utt2spk": {u: u for u in records},
        "utt2lang": {u: LANGUAGES[u.split("-", 1)[0]] for u in records},
        "utt2dur": {u: f"{frames / sr:.3f}" for u, (frames, sr) in zip(records, lengths)},
    }
    write_data_dir(out_dir, files)
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.voxpopuli", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding raw_audios/ and unlabelled_data/")
    parser.add_argument("--out", required=True, help="data directory to write, e.g. data/voxpopuli")
    parser.add_argument("--languages", default="", help="comma/space-separated codes (default: all 23)")
    parser.add_argument("--years", default="", help="comma/space-separated years to download (default 2009-2020)")
    parser.add_argument("--download", action="store_true", help=f"download {AUDIO_URL} and segment the sessions")
    parser.add_argument("--annotations", help="local unlabelled_v2.tsv.gz (default: downloaded)")
    parser.add_argument("--nj", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        languages = _check_languages(args.languages)
        if args.download:
            years = [int(y) for y in re.split(r"[\s,]+", args.years) if y] or YEARS
            download(args.data_root, languages, years)
            segment(args.data_root, languages, args.annotations, args.nj)
        files = prepare(args.data_root, args.out, languages, args.nj)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"voxpopuli: {e}", file=sys.stderr)
        return 1
    counts = collections.Counter(files["utt2lang"].values())
    print(f"voxpopuli: {len(files['wav.scp'])} utterances -> {args.out}: "
          + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
