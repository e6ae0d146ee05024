"""MLS, Multilingual LibriSpeech (OpenSLR 94, CC BY 4.0): read LibriVox audiobooks in 8 languages.

The MASR paper's ASR experiments (Table 3) use de en es fr it nl. Source layout, one release
per language (``<language>`` is german, english, spanish, french, italian, dutch, polish or
portuguese), unpacked from ``mls_<language>.tar.gz`` (FLAC) or ``mls_<language>_opus.tar.gz``
(Opus)::

    <data-root>/mls_<language>[_opus]/
        {train,dev,test}/transcripts.txt    <utt_id> TAB <transcript>
        {train,dev,test}/segments.txt       <utt_id> TAB <LibriVox url> TAB <start> TAB <end>
        {train,dev,test}/audio/<speaker>/<book>/<utt_id>.flac   (or .opus), 16 kHz mono
        train/limited_supervision/9hr/handles.txt      utterance ids, one a line
        train/limited_supervision/1hr/<0-5>/handles.txt

MLS utterance ids are ``<speaker>_<book>_<segment>`` (e.g. ``10148_10119_000000``).

Output: one data directory per language and split, ``<out>/<code>_<split>`` (e.g.
``data/de_dev``), and with ``combined`` the union over the languages per split,
``<out>/<split>`` (``data/train``, ``data/dev``, ``data/test``: what ``egs/mls/run.sh`` trains
and scores on)::

    wav.scp utt2spk spk2utt text utt2lang utt2dur

Utterance ids are ``<speaker>-<book>-<segment>`` (MLS's ``_`` become ``-``): the speaker id
followed by ``-`` sorts before any longer speaker id, so sorting utterances never reorders
speakers (with ``_``, ``1014_...`` would sort after ``10148_...``). Speakers are the MLS
(LibriVox reader) ids; ``utt2lang`` holds ISO 639-3 codes (deu eng spa fra ita nld pol por);
``utt2dur`` is ``end - start`` from ``segments.txt``, or read from the audio header for an
utterance that ``segments.txt`` lacks; ``text`` is the MLS transcript (lowercase, no
punctuation) with runs of whitespace collapsed.

Opus audio: libsndfile >= 1.0.29 (the one bundled with the ``soundfile`` wheel is 1.2) reads
Ogg/Opus itself, so by default ``wav.scp`` holds the ``.opus`` path like a FLAC one. Other
decoders give a pipe instead (:func:`opus_entry`): ``python`` (this module's ``--decode``,
soundfile again), ``ffmpeg``, ``opusdec`` or ``sox`` (the last needs ``libsox-fmt-opus``).

Usage::

    python -m masr.corpora.mls --data-root DIR --out data [--languages "de fr"] [--download]
        [--opus] [--nj N] [--limited 9hr|1hr|10hr] [--max-utts N] [--no-combined]

Why this module is long: one module per corpus (lhotse's convention): locating the release,
downloading, Opus decoding, segment and transcript parsing and the Kaldi data dirs of MLS belong
together, and each part is small.
"""

import argparse
import glob
import heapq
import io
import os
import re
import shlex
import shutil
import subprocess
import sys

from masr.corpora.download import safe_extract
from masr.corpora.download import download as fetch
from masr.utils.fileio import atomic_open
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

PAGE = "https://www.openslr.org/94/"
BASE_URL = "https://dl.fbaipublicfiles.com/mls"

#: Language code -> (release name, ISO 639-3 code).
LANGUAGES = {
    "de": ("german", "deu"), "en": ("english", "eng"), "es": ("spanish", "spa"), "fr": ("french", "fra"),
    "it": ("italian", "ita"), "nl": ("dutch", "nld"), "pl": ("polish", "pol"), "pt": ("portuguese", "por"),
}
#: The MASR paper's ASR languages (Table 3).
PAPER_LANGUAGES = ("de", "en", "es", "fr", "it", "nl")
SPLITS = ("train", "dev", "test")

#: Archive name -> SHA-256. OpenSLR publishes no checksums for MLS, so none is checked; add a
#: digest here (e.g. ``"mls_german.tar.gz": "..."``) to have downloads verified.
SHA256 = {}

#: ``limited`` value -> ``train/limited_supervision`` subfolders whose ``handles.txt`` lists are used
#: ("10hr" is MLS's 10-hour set: the 9-hour list plus the six 10-minute 1hr folds).
LIMITED = {"1hr": ("1hr",), "9hr": ("9hr",), "10hr": ("9hr", "1hr")}

OPUS_DECODERS = ("soundfile", "python", "ffmpeg", "opusdec", "sox")

#: Files written in every data directory (``spk2utt`` is derived from ``utt2spk``).
FILES = ("wav.scp", "utt2spk", "text", "utt2lang", "utt2dur")

_UTT = re.compile(r"([0-9A-Za-z]+)_([0-9A-Za-z]+)_([0-9A-Za-z]+)")


def language_code(language):
    """The two-letter code of a language given as code, release name or ISO 639-3 code.

    Example
    -------
    >>> language_code("german"), language_code("nld"), language_code("FR")
    ('de', 'nl', 'fr')
    """
    key = language.strip().lower()
    for code, (name, iso3) in LANGUAGES.items():
        if key in (code, name, iso3):
            return code
    raise ValueError(f"unknown MLS language '{language}' (known: {' '.join(LANGUAGES)})")


def candidates(data_root, language, codec=None):
    """(folder, audio extension) pairs that :func:`locate_language` tries, in order (FLAC first)."""
    name = LANGUAGES[language_code(language)][0]
    codecs = ("flac", "opus") if codec is None else (codec,)
    found = []
    for base in (data_root, os.path.join(data_root, "mls")):
        for c in codecs:
            found.append((os.path.join(base, f"mls_{name}" + ("_opus" if c == "opus" else "")), c))
    return found


def locate_language(data_root, language, codec=None):
    """(folder, ``"flac"`` or ``"opus"``) of one language's release under ``data_root``.

    Raises
    ------
    FileNotFoundError
        Naming every folder looked at and the OpenSLR page.

    Example
    -------
    >>> locate_language("/nonexistent", "de")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: MLS german (de) not found under /nonexistent: looked for /nonexistent/mls_german, ...
    """
    tried = candidates(data_root, language, codec)
    for folder, c in tried:
        if os.path.isdir(folder):
            return folder, c
    code = language_code(language)
    raise FileNotFoundError(
        f"MLS {LANGUAGES[code][0]} ({code}) not found under {data_root}: looked for "
        f"{', '.join(f for f, _ in tried)}; get mls_{LANGUAGES[code][0]}.tar.gz (or _opus.tar.gz) from {PAGE} "
        f"and unpack it there, or pass --download")


def archive_name(language, opus=False):
    """Release archive of a language, e.g. ``mls_german.tar.gz``."""
    return f"mls_{LANGUAGES[language_code(language)][0]}{'_opus' if opus else ''}.tar.gz"


def download(dest, languages=PAPER_LANGUAGES, opus=False, base_url=BASE_URL, progress=True):
    """Download (resumably) and unpack the releases of ``languages`` into ``dest``.

    Each archive ``<base_url>/mls_<language>[_opus].tar.gz`` is kept in ``dest`` next to its
    unpacked ``mls_<language>[_opus]/`` folder (an interrupted extraction is redone, a finished
    one is not). No checksum is verified unless :data:`SHA256` has one (OpenSLR publishes none).

    Returns
    -------
    dict
        language code -> (folder, codec), as :func:`locate_language`.
    """
    found = {}
    for language in languages:
        code = language_code(language)
        name = archive_name(code, opus)
        archive = fetch(f"{base_url.rstrip('/')}/{name}", os.path.join(dest, name), sha256=SHA256.get(name),
                        progress=progress)
        safe_extract(archive, dest)
        found[code] = locate_language(dest, code, "opus" if opus else "flac")
    return found


def opus_decoder_available(decoder):
    """Whether ``decoder`` (one of :data:`OPUS_DECODERS`) can decode Opus on this machine."""
    if decoder in ("soundfile", "python"):
        import soundfile as sf

        return "OPUS" in sf.available_subtypes("OGG")
    if shutil.which(decoder) is None:
        return False
    if decoder == "sox":  # Debian's sox decodes Opus only with libsox-fmt-opus
        proc = subprocess.run(["sox", "-h"], capture_output=True, text=True)
        formats = next((line for line in proc.stdout.splitlines() if line.startswith("AUDIO FILE FORMATS")), "")
        return "opus" in formats.split()
    return True


def default_opus_decoder():
    """The first of :data:`OPUS_DECODERS` that works here (``soundfile`` with a recent libsndfile)."""
    for decoder in OPUS_DECODERS:
        if opus_decoder_available(decoder):
            return decoder
    raise RuntimeError(f"no Opus decoder found: soundfile's libsndfile lacks Ogg/Opus and none of "
                       f"{', '.join(OPUS_DECODERS[2:])} is on PATH; use the FLAC release instead")


def opus_entry(path, decoder="soundfile"):
    """The ``wav.scp`` value reading the Opus file ``path`` with ``decoder``.

    ``soundfile`` gives the path itself (read by :func:`masr.audio.read_audio`); the others give a
    pipe writing 16 kHz WAV to stdout.

    Example
    -------
    >>> opus_entry("/c/a b.opus")
    '/c/a b.opus'
    >>> opus_entry("/c/a b.opus", "ffmpeg")
    "ffmpeg -nostdin -loglevel error -i '/c/a b.opus' -f wav -ac 1 -ar 16000 - |"
    >>> opus_entry("/c/a.opus", "opusdec"), opus_entry("/c/a.opus", "sox")
    ('opusdec --quiet --rate 16000 /c/a.opus - |', 'sox /c/a.opus -t wav -r 16000 - |')
    """
    q = shlex.quote(path)
    if decoder == "soundfile":
        return path
    if decoder == "python":
        return f"{shlex.quote(sys.executable)} -m masr.corpora.mls --decode {q} |"
    if decoder == "ffmpeg":
        return f"ffmpeg -nostdin -loglevel error -i {q} -f wav -ac 1 -ar 16000 - |"
    if decoder == "opusdec":
        return f"opusdec --quiet --rate 16000 {q} - |"
    if decoder == "sox":
        return f"sox {q} -t wav -r 16000 - |"
    raise ValueError(f"unknown Opus decoder '{decoder}' (known: {' '.join(OPUS_DECODERS)})")


def decode_to_wav(path, out):
    """Write the audio file ``path`` (any format soundfile reads) to the binary stream ``out`` as 16-bit WAV."""
    import soundfile as sf

    wave, sr = sf.read(path, dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    out.write(buf.getvalue())


def header_duration(path):
    """Seconds of audio in ``path``, from its header (module level so that it pickles for ``nj > 1``)."""
    import soundfile as sf

    info = sf.info(path)
    return info.frames / info.samplerate


def utt_id(mls_utt):
    """The data-dir utterance id and speaker of an MLS utterance id.

    Example
    -------
    >>> utt_id("10148_10119_000000")
    ('10148-10119-000000', '10148')
    """
    match = _UTT.fullmatch(mls_utt)
    if match is None:
        raise ValueError(f"'{mls_utt}' is not an MLS utterance id <speaker>_<book>_<segment>")
    return "-".join(match.groups()), match.group(1)


def read_limited(split_dir, limited):
    """MLS utterance ids of a limited-supervision set (``"1hr"``, ``"9hr"`` or ``"10hr"``)."""
    if limited not in LIMITED:
        raise ValueError(f"unknown limited-supervision set '{limited}' (known: {' '.join(LIMITED)})")
    ids = set()
    for sub in LIMITED[limited]:
        folder = os.path.join(split_dir, "limited_supervision", sub)
        lists = sorted(glob.glob(os.path.join(folder, "**", "handles.txt"), recursive=True))
        if not lists:
            raise FileNotFoundError(f"{folder}: no handles.txt (limited-supervision list '{limited}')")
        for path in lists:
            with open(path, encoding="utf-8") as f:
                ids.update(line.strip() for line in f if line.strip())
    return ids


def read_transcripts(path, keep=None, max_utts=None):
    """Parse ``transcripts.txt``, streaming: {MLS utt id: (line number, transcript)} in file order.

    Arguments
    ---------
    keep : set or None
        Only these MLS utterance ids.
    max_utts : int or None
        Stop after this many utterances (kept ones, in file order).

    Raises
    ------
    ValueError
        ``path:line``: a line that is not ``<utt_id> TAB <transcript>``, a malformed utterance id,
        an empty transcript or a repeated utterance.
    """
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if max_utts is not None and len(out) >= max_utts:
                break
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t", 1) if "\t" in line else line.split(None, 1)
            utt = parts[0].strip()
            text = " ".join(parts[1].split()) if len(parts) > 1 else ""
            if not text:
                raise ValueError(f"{path}:{lineno}: expected '<utt_id>\\t<transcript>', got {line.rstrip()!r}")
            if _UTT.fullmatch(utt) is None:
                raise ValueError(f"{path}:{lineno}: '{utt}' is not an MLS utterance id <speaker>_<book>_<segment>")
            if keep is not None and utt not in keep:
                continue
            if utt in out:
                raise ValueError(f"{path}:{lineno}: utterance '{utt}' repeated (first on line {out[utt][0]})")
            out[utt] = (lineno, text)
    return out


def read_segments(path, wanted):
    """Durations ``end - start`` from ``segments.txt`` for the MLS utterance ids in ``wanted``.

    Raises
    ------
    ValueError
        ``path:line``: a line that is not ``<utt_id> <url> <start> <end>`` with ``end > start``.
    """
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 4:
                    raise ValueError
                start, end = float(parts[2]), float(parts[3])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected '<utt_id>\\t<url>\\t<start>\\t<end>', "
                                 f"got {line.rstrip()!r}") from None
            if not end > start:
                raise ValueError(f"{path}:{lineno}: utterance '{parts[0]}': end {end:g} is not after start {start:g}")
            if parts[0] in wanted:
                out[parts[0]] = end - start
    return out


def prepare_split(folder, codec, language, split, nj=1, max_utts=None, limited=None, opus_decoder=None):
    """Records ``(utt, speaker, wav.scp entry, text, ISO 639-3, duration)`` of one split, sorted by utt.

    Raises
    ------
    FileNotFoundError
        No ``transcripts.txt``, or an utterance without its audio file (naming both).
    ValueError
        Malformed lines (see :func:`read_transcripts`, :func:`read_segments`).
    """
    code = language_code(language)
    split_dir = os.path.join(folder, split)
    path = os.path.join(split_dir, "transcripts.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found (MLS {LANGUAGES[code][0]} {split} split; see {PAGE})")
    keep = read_limited(split_dir, limited) if limited and split == "train" else None
    transcripts = read_transcripts(path, keep, max_utts)
    if not transcripts:
        raise ValueError(f"{path}: no utterances" + (f" in the '{limited}' list" if keep is not None else ""))
    segments = os.path.join(split_dir, "segments.txt")
    durations = read_segments(segments, transcripts) if os.path.isfile(segments) else {}
    if codec == "opus":
        opus_decoder = opus_decoder or default_opus_decoder()
    audio = os.path.abspath(os.path.join(split_dir, "audio"))
    records, paths = [], []
    with progress(transcripts.items(), desc=f"mls {code} {split}", unit="utt", leave=False) as items:
        for mls_utt, (lineno, text) in items:
            utt, spk = utt_id(mls_utt)
            _, book, _ = mls_utt.split("_")
            wav = os.path.join(audio, spk, book, f"{mls_utt}.{codec}")
            if not os.path.isfile(wav):
                raise FileNotFoundError(f"{path}:{lineno}: utterance '{mls_utt}': audio file {wav} not found")
            entry = wav if codec == "flac" else opus_entry(wav, opus_decoder)
            records.append([utt, spk, entry, text, LANGUAGES[code][1], durations.get(mls_utt)])
            paths.append(wav)
    missing = [i for i, r in enumerate(records) if r[5] is None]
    if missing:
        durs = progress(parallel_map(header_duration, [paths[i] for i in missing], nj=nj, ordered=True),
                        total=len(missing), desc=f"mls {code} {split} durations", unit="file")
        for i, dur in zip(missing, list(durs)):
            records[i][5] = dur
    records.sort(key=lambda r: r[0])
    return records


def write_records(out_dir, records):
    """Write a data directory from sorted :func:`prepare_split` records (files replaced atomically)."""
    columns = {"wav.scp": 2, "utt2spk": 1, "text": 3, "utt2lang": 4}
    for name, col in columns.items():
        with atomic_open(os.path.join(out_dir, name)) as f:
            f.writelines(f"{r[0]} {r[col]}\n" for r in records)
    with atomic_open(os.path.join(out_dir, "utt2dur")) as f:
        f.writelines(f"{r[0]} {r[5]:.3f}\n" for r in records)
    _write_spk2utt(out_dir, ((r[0], r[1]) for r in records))


def _write_spk2utt(out_dir, utt_spk):
    spk2utt = {}
    for utt, spk in utt_spk:
        spk2utt.setdefault(spk, []).append(utt)
    with atomic_open(os.path.join(out_dir, "spk2utt")) as f:
        f.writelines(f"{spk} {' '.join(sorted(utts))}\n" for spk, utts in sorted(spk2utt.items()))


def combine_dirs(out_dir, sources):
    """Merge sorted data directories into ``out_dir``, streaming (an utterance in two is an error)."""
    for name in FILES:
        handles = [open(os.path.join(src, name), encoding="utf-8") for src in sources]
        try:
            with atomic_open(os.path.join(out_dir, name)) as out:
                prev = None
                for line in heapq.merge(*handles, key=lambda s: s.split(" ", 1)[0]):
                    key = line.split(" ", 1)[0]
                    if key == prev:
                        raise ValueError(f"{out_dir}/{name}: utterance '{key}' is in more than one of "
                                         f"{', '.join(sources)}")
                    out.write(line)
                    prev = key
        finally:
            for h in handles:
                h.close()
    with open(os.path.join(out_dir, "utt2spk"), encoding="utf-8") as f:
        _write_spk2utt(out_dir, (line.split() for line in f))


def prepare(data_root, out_dir, languages=PAPER_LANGUAGES, splits=SPLITS, nj=1, max_utts_per_split=None,
            limited=None, combined=True, codec=None, opus_decoder=None):
    """Write the MLS data directories ``<out_dir>/<code>_<split>`` (and ``<out_dir>/<split>``).

    Arguments
    ---------
    data_root : str
        The folder holding ``mls_<language>/`` or ``mls_<language>_opus/`` (or ``mls/`` holding them).
    out_dir : str
        Where the data directories go (e.g. ``data``); each is rewritten on every call.
    languages : sequence of str
        Codes (``de``), release names (``german``) or ISO 639-3 codes (``deu``).
    splits : sequence of str
        Of ``train``, ``dev``, ``test``.
    nj : int
        Processes reading audio headers (only for utterances missing from ``segments.txt``).
    max_utts_per_split : int or None
        Keep the first N utterances of each ``transcripts.txt`` (file order), for quick runs.
    limited : str or None
        ``"9hr"``, ``"1hr"`` or ``"10hr"``: restrict ``train`` to that limited-supervision list.
    combined : bool
        Also write ``<out_dir>/<split>``, the union of the languages.
    codec : str or None
        ``"flac"`` or ``"opus"``; ``None`` takes the FLAC release when both are there.
    opus_decoder : str or None
        See :func:`opus_entry`; ``None`` picks :func:`default_opus_decoder`.

    Returns
    -------
    dict
        data directory name (``de_train``, ..., ``train``) -> number of utterances.

    Raises
    ------
    FileNotFoundError
        A missing language folder (naming what was looked for and :data:`PAGE`), split or audio file.
    ValueError
        Malformed lines (``file:line``), unknown languages, splits or limited sets.
    """
    codes = [language_code(lang) for lang in languages]
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown MLS split '{split}' (known: {' '.join(SPLITS)})")
    folders = {code: locate_language(data_root, code, codec) for code in codes}  # fail before writing anything
    counts = {}
    for split in splits:
        written = []
        for code in codes:
            folder, c = folders[code]
            records = prepare_split(folder, c, code, split, nj, max_utts_per_split, limited, opus_decoder)
            name = f"{code}_{split}"
            write_records(os.path.join(out_dir, name), records)
            counts[name] = len(records)
            written.append(os.path.join(out_dir, name))
        if combined:
            combine_dirs(os.path.join(out_dir, split), written)
            counts[split] = sum(counts[f"{code}_{split}"] for code in codes)
    return counts


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--decode"]:  # the "python" Opus decoder: python -m masr.corpora.mls --decode FILE
        if len(argv) != 2:
            print("usage: python -m masr.corpora.mls --decode AUDIO_FILE", file=sys.stderr)
            return 2
        decode_to_wav(argv[1], sys.stdout.buffer)
        return 0
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.mls", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding mls_<language>[_opus]/")
    parser.add_argument("--out", required=True, help="where the data directories go, e.g. data")
    parser.add_argument("--languages", default=" ".join(PAPER_LANGUAGES), help="space-separated (default: %(default)s)")
    parser.add_argument("--splits", default=" ".join(SPLITS), help="space-separated (default: %(default)s)")
    parser.add_argument("--download", action="store_true", help=f"download missing languages from {BASE_URL}")
    parser.add_argument("--opus", action="store_true", help="use (and download) the Opus release, not FLAC")
    parser.add_argument("--opus-decoder", choices=OPUS_DECODERS, help="how wav.scp reads Opus (default: auto)")
    parser.add_argument("--nj", type=int, default=1, help="processes reading audio headers")
    parser.add_argument("--limited", choices=sorted(LIMITED), help="restrict train to a limited-supervision list")
    parser.add_argument("--max-utts", type=int, help="first N utterances of each split and language")
    parser.add_argument("--no-combined", action="store_true", help="skip the <out>/<split> union dirs")
    args = parser.parse_args(argv)
    codec = "opus" if args.opus else None
    try:
        languages = [language_code(lang) for lang in args.languages.split()]
        if args.download:
            for code in languages:
                try:
                    locate_language(args.data_root, code, codec)
                except FileNotFoundError:
                    download(args.data_root, [code], opus=args.opus)
        counts = prepare(args.data_root, args.out, languages, args.splits.split(), nj=args.nj,
                         max_utts_per_split=args.max_utts, limited=args.limited, combined=not args.no_combined,
                         codec=codec, opus_decoder=args.opus_decoder)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"mls: {e}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"mls: {os.path.join(args.out, name)}: {n} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
