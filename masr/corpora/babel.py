"""IARPA BABEL conversational telephone speech (LDC language packs, licensed: manual download).

Each language pack is bought from the LDC (:data:`PAGE`) and unpacked by hand; :func:`locate`
explains that when it is missing.

Assumed source layout (the usual IARPA pack layout; not verified against a release here)::

    <pack>/conversational/<split>/audio/<name>.sph              8 kHz telephone audio, one side each
    <pack>/conversational/<split>/transcription/<name>.txt      "[start]" lines, each followed by text

``<split>`` is ``training``, ``dev`` (``sub-train`` and others are accepted as they are);
``<pack>`` is any folder under ``--data-root`` holding ``conversational/`` (found up to three
levels down). The language is read from the file names ``BABEL_<phase>_<language id>_...``
(:data:`LANGUAGES`).

Output, one data directory per split::

    <out>/<split>/  wav.scp utt2spk spk2utt text utt2lang

- a transcript time stamp ``[t0]`` followed by a text line and the next stamp ``[t1]`` is one
  utterance from ``t0`` to ``t1``; segments whose text is only non-speech marks
  (``<no-speech>``, ``<sil>``, ``~``, ...) are skipped;
- the conversation side (file name) is the speaker; utterances are
  ``<side>-<start in centiseconds, 7 digits>``;
- ``wav.scp`` cuts the segment with a pipe: ``sph2pipe -f wav -p -c 1 -t t0:t1 file |`` when
  ``sph2pipe`` is on PATH (as Kaldi's BABEL recipe), else this module's ``--decode`` (soundfile
  reads NIST SPHERE with PCM or mu-law, not shorten-compressed files);
- ``utt2dur`` = ``t1 - t0`` from the transcript (the pipes are not run here; the last segment of
  a side may end after its audio, which the cut then shortens).

Usage::

    python -m masr.corpora.babel --data-root DIR --out data/babel [--splits training,dev] [--decoder python]
"""

import argparse
import glob
import io
import logging
import os
import re
import shlex
import shutil
import sys

from masr.corpora.download import require_manual
from masr.data.datadir import write_data_dir
from masr.utils.progress import progress

logger = logging.getLogger(__name__)

PAGE = "https://www.ldc.upenn.edu (IARPA Babel language packs, e.g. LDC2016S06 Assamese)"
URL = PAGE
SPLITS = ("training", "dev")

#: BABEL language id -> (language, URIEL ISO 639-3 code).
LANGUAGES = {
    "101": ("Cantonese", "yue"), "102": ("Assamese", "asm"), "103": ("Bengali", "ben"), "104": ("Pashto", "pst"),
    "105": ("Turkish", "tur"), "106": ("Tagalog", "tgl"), "107": ("Vietnamese", "vie"),
    "201": ("Haitian Creole", "hat"), "202": ("Swahili", "swh"), "203": ("Lao", "lao"), "204": ("Tamil", "tam"),
    "205": ("Kurmanji Kurdish", "kmr"), "206": ("Zulu", "zul"), "207": ("Tok Pisin", "tpi"),
    "301": ("Cebuano", "ceb"), "302": ("Kazakh", "kaz"), "303": ("Telugu", "tel"), "304": ("Lithuanian", "lit"),
    "305": ("Guarani", "gug"), "306": ("Igbo", "ibo"), "307": ("Amharic", "amh"), "401": ("Mongolian", "khk"),
    "402": ("Javanese", "jav"), "403": ("Dholuo", "luo"), "404": ("Georgian", "kat"),
}

_NAME = re.compile(r"BABEL_[A-Z0-9]+_(\d{3})_")
_STAMP = re.compile(r"\[(\d+(?:\.\d+)?)\]")
#: Tokens that are not speech; a segment holding only these is skipped.
NON_SPEECH = {"<no-speech>", "<sil>", "~", "<noise>", "<breath>", "<cough>", "<lipsmack>", "<click>", "<ring>",
              "<dtmf>", "<int>", "<sta>", "<laugh>", "<overlap>", "<prompt>", "<male-to-female>",
              "<female-to-male>", "(())"}


def locate(data_root):
    """Folders holding ``conversational/`` under ``data_root`` (up to three levels down), sorted.

    Raises
    ------
    masr.corpora.download.ManualDownloadError or FileNotFoundError
    """
    require_manual(data_root, "IARPA BABEL", PAGE)
    found = []
    for depth in range(4):
        found += glob.glob(os.path.join(data_root, *(["*"] * depth), "conversational"))
    if not found:
        raise FileNotFoundError(f"IARPA BABEL not found under {data_root}: no <pack>/conversational/ folder; buy "
                                f"the language packs at {PAGE} and unpack them there")
    return sorted(os.path.dirname(f) for f in found)


def download(dest):
    """BABEL is licensed (LDC): raises, naming where it is distributed."""
    raise FileNotFoundError(f"IARPA BABEL needs a manual download: license it at {PAGE}, unpack it into {dest}")


def language_of(name):
    """URIEL code from a BABEL file name.

    Example
    -------
    >>> language_of("BABEL_OP1_102_10036_20120413_203526_inLine")
    'asm'
    """
    match = _NAME.match(name)
    if match is None or match.group(1) not in LANGUAGES:
        raise ValueError(f"'{name}': not a BABEL file name BABEL_<phase>_<language id>_... with a known language id")
    return LANGUAGES[match.group(1)][1]


def read_transcript(path):
    """``[(lineno, start, end, text)]`` of a BABEL transcript, speech segments only.

    Raises
    ------
    ValueError
        ``file:line``: text before the first time stamp, or a time stamp not after the previous one.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "w").write("[0.000]\\n<no-speech>\\n[1.5]\\nhello  <breath> world\\n[3.25]\\n")
    >>> read_transcript(p)
    [(4, 1.5, 3.25, 'hello <breath> world')]
    """
    segments, start, text, text_line = [], None, None, None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            stamp = _STAMP.fullmatch(line)
            if stamp:
                t = float(stamp.group(1))
                if start is not None:
                    if not t > start:
                        raise ValueError(f"{path}:{lineno}: time stamp {t:g} is not after {start:g}")
                    if text and not set(text.split()) <= NON_SPEECH:
                        segments.append((text_line, start, t, text))
                start, text = t, None
            else:
                if start is None:
                    raise ValueError(f"{path}:{lineno}: text before the first [time] stamp")
                text, text_line = " ".join(line.split()), lineno
    return segments


def wav_entry(path, start, end, decoder):
    """The ``wav.scp`` pipe cutting ``start``-``end`` seconds of ``path``.

    Example
    -------
    >>> wav_entry("/b/a.sph", 1.5, 3.25, "sph2pipe")
    'sph2pipe -f wav -p -c 1 -t 1.5:3.25 /b/a.sph |'
    """
    if decoder == "sph2pipe":
        return f"sph2pipe -f wav -p -c 1 -t {start:g}:{end:g} {shlex.quote(path)} |"
    if decoder == "python":
        return f"{shlex.quote(sys.executable)} -m masr.corpora.babel --decode {shlex.quote(path)} {start:g} {end:g} |"
    raise ValueError(f"unknown decoder '{decoder}' (sph2pipe or python)")


def decode_segment(path, start, end, out):
    """Write ``start``-``end`` seconds of ``path`` (first channel) to ``out`` as 16-bit WAV (soundfile)."""
    import soundfile as sf

    with sf.SoundFile(path) as f:
        sr = f.samplerate
        f.seek(min(int(start * sr), f.frames))
        wave = f.read(max(0, min(int(end * sr), f.frames) - int(start * sr)), dtype="int16", always_2d=True)
    buf = io.BytesIO()
    sf.write(buf, wave[:, 0], sr, format="WAV", subtype="PCM_16")
    out.write(buf.getvalue())


def prepare(data_root, out_dir, splits=SPLITS, decoder=None):
    """Write ``<out_dir>/<split>`` for each split, holding every pack under ``data_root``; returns the files."""
    decoder = decoder or ("sph2pipe" if shutil.which("sph2pipe") else "python")
    packs = locate(data_root)
    result = {}
    for split in splits:
        files = {"wav.scp": {}, "utt2spk": {}, "text": {}, "utt2lang": {}, "utt2dur": {}}
        folders = [os.path.join(pack, "conversational", split) for pack in packs]
        transcripts = [(folder, trans) for folder in folders
                       for trans in sorted(glob.glob(os.path.join(folder, "transcription", "*.txt")))]
        with progress(transcripts, desc=f"babel {split}", unit="file", leave=False) as bar:
            for folder, trans in bar:
                side = os.path.splitext(os.path.basename(trans))[0]
                audio = os.path.abspath(os.path.join(folder, "audio", f"{side}.sph"))
                if not os.path.isfile(audio):
                    raise FileNotFoundError(f"{trans}: audio {audio} not found")
                lang = language_of(side)
                for _, start, end, text in read_transcript(trans):
                    utt = f"{side}-{round(start * 100):07d}"
                    if utt in files["wav.scp"]:
                        raise ValueError(f"{trans}: utterance '{utt}' repeated")
                    files["wav.scp"][utt] = wav_entry(audio, start, end, decoder)
                    files["utt2spk"][utt] = side
                    files["text"][utt] = text
                    files["utt2lang"][utt] = lang
                    files["utt2dur"][utt] = f"{end - start:.3f}"
        if not files["wav.scp"]:
            logger.warning("BABEL %s: no transcribed segments; %s/%s not written", split, out_dir, split)
            continue
        write_data_dir(os.path.join(out_dir, split), files)
        result[split] = files
    if not result:
        raise FileNotFoundError(f"IARPA BABEL under {data_root}: no transcribed segments in {', '.join(splits)}")
    return result


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--decode":
        decode_segment(argv[1], float(argv[2]), float(argv[3]), sys.stdout.buffer)
        return 0
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.babel", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding the unpacked language packs")
    parser.add_argument("--out", required=True, help="folder receiving one data directory per split")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--decoder", choices=("sph2pipe", "python"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        result = prepare(args.data_root, args.out, [s for s in re.split(r"[\s,]+", args.splits) if s], args.decoder)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"babel: {e}", file=sys.stderr)
        return 1
    for split, files in result.items():
        print(f"babel: {args.out}/{split}: {len(files['wav.scp'])} utterances, "
              f"languages {' '.join(sorted(set(files['utt2lang'].values())))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
