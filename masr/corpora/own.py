"""Your own corpus: a folder of recordings by language, or Kaldi data dirs you already have.

The preparer of ``egs/TEMPLATE`` (``tools/new_recipe.sh NAME`` copies it). Two sources:

- ``--wav-root DIR``: recordings in ``DIR/<lang>/<speaker>/<name>.<ext>`` (or
  ``DIR/<lang>/<name>.<ext>``: then every recording is its own speaker), ``<lang>`` an ISO 639-3
  code (``hrv``), any format libsndfile reads. Writes ``wav.scp``, ``utt2spk``, ``spk2utt``,
  ``utt2lang``, ``utt2dur`` (and ``text`` from a ``<name>.txt`` beside a recording, if any).
  Speaker ids are ``<lang>_<speaker>``, utterance ids ``<speaker id>-<name>``.
- ``--kaldi-dir DIR`` (repeatable): Kaldi data dirs, copied as they are (``DIR`` holding
  ``wav.scp``) or each of their sub-folders that is one (``DIR/train``, ``DIR/test``, ...).

Every written data dir is validated (:func:`masr.data.validate.validate_data_dir`). With
``--split "train:0.8 dev:0.1 test:0.1"`` the corpus (all of it, or ``--split-from`` one of the
copied dirs) is split by speaker, stratified by language (:mod:`masr.data.subset`).

Command line::

    python -m masr.corpora.own --wav-root /data/mycorpus --data data --split "train:0.8 dev:0.1 test:0.1"
    python -m masr.corpora.own --kaldi-dir /data/kaldi/mycorpus --data data
"""

import argparse
import os
import re
import shutil
import sys

import soundfile as sf

from masr.data.datadir import DataDirError, write_data_dir
from masr.data.subset import split_data_dir
from masr.data.validate import validate_data_dir

#: Extensions taken as recordings under ``--wav-root``.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".aiff", ".aif")


def _id(text):
    """An id from a file or folder name: no whitespace, no '/'."""
    return re.sub(r"[\s/]+", "_", text)


def scan_wav_root(root):
    """The data dir files of a folder of recordings by language (see the module docstring).

    Returns
    -------
    dict
        file name -> {utt: value}, for :func:`masr.data.datadir.write_data_dir`.

    Raises
    ------
    DataDirError
        No recording found, a recording libsndfile cannot open, or two recordings with the same id.
    """
    files = {"wav.scp": {}, "utt2spk": {}, "utt2lang": {}, "utt2dur": {}, "text": {}}
    for lang in sorted(os.listdir(root)):
        lang_dir = os.path.join(root, lang)
        if not os.path.isdir(lang_dir):
            continue
        for folder, _, names in sorted(os.walk(lang_dir)):
            rel = os.path.relpath(folder, lang_dir)
            for name in sorted(names):
                stem, ext = os.path.splitext(name)
                if ext.lower() not in AUDIO_EXTENSIONS:
                    continue
                path = os.path.abspath(os.path.join(folder, name))
                speaker = _id(f"{lang}_{rel if rel != '.' else stem}")
                utt = f"{speaker}-{_id(stem)}"
                if utt in files["wav.scp"]:
                    raise DataDirError(f"{path}: utterance id '{utt}' also given to {files['wav.scp'][utt]}")
                try:
                    info = sf.info(path)
                except (RuntimeError, sf.LibsndfileError) as e:
                    raise DataDirError(f"{path}: not audio libsndfile can read ({e})") from None
                files["wav.scp"][utt] = path
                files["utt2spk"][utt] = speaker
                files["utt2lang"][utt] = lang
                files["utt2dur"][utt] = f"{info.frames / info.samplerate:.3f}"
                transcript = os.path.join(folder, stem + ".txt")
                if os.path.isfile(transcript):
                    with open(transcript, encoding="utf-8") as f:
                        words = " ".join(f.read().split())
                    if words:
                        files["text"][utt] = words
    if not files["wav.scp"]:
        raise DataDirError(f"{root}: no recording found in <root>/<lang>/[<speaker>/]<name>"
                           f"{{{','.join(AUDIO_EXTENSIONS)}}}")
    if not files["text"]:
        del files["text"]
    elif len(files["text"]) != len(files["wav.scp"]):
        missing = sorted(set(files["wav.scp"]) - set(files["text"]))
        raise DataDirError(f"{root}: {len(missing)} recording(s) without a non-empty <name>.txt transcript "
                           f"while others have one, e.g. utterance '{missing[0]}'")
    return files


def kaldi_dirs(source):
    """(name, path) of the Kaldi data dirs in ``source``: itself, or its sub-folders."""
    if os.path.isfile(os.path.join(source, "wav.scp")):
        return [(os.path.basename(os.path.normpath(source)), source)]
    found = [(n, os.path.join(source, n)) for n in sorted(os.listdir(source))
             if os.path.isfile(os.path.join(source, n, "wav.scp"))]
    if not found:
        raise DataDirError(f"{source}: neither a Kaldi data dir (no wav.scp) nor a folder of them")
    return found


def prepare(data, wav_root=None, kaldi_dir=(), split=None, split_from=None, check_lang=True):
    """Write the data dirs of your corpus under ``data`` (see the module docstring); returns their names."""
    written = []
    if wav_root:
        write_data_dir(os.path.join(data, "all"), scan_wav_root(wav_root))
        written.append("all")
    for source in kaldi_dir:
        for name, path in kaldi_dirs(source):
            dst = os.path.join(data, name)
            if os.path.abspath(path) != os.path.abspath(dst):
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(path, dst)
            written.append(name)
    if not written:
        raise ValueError("give --wav-root or --kaldi-dir")
    for name in written:
        validate_data_dir(os.path.join(data, name), check_audio=True, check_lang=check_lang)
    if split:
        source = split_from or ("all" if "all" in written else written[0])
        names, fractions = [], []
        for spec in split.split():
            name, _, fraction = spec.partition(":")
            names.append(name)
            fractions.append(float(fraction))
        split_data_dir(os.path.join(data, source), [os.path.join(data, n) for n in names], fractions,
                       by="speaker", stratify="lang" if os.path.isfile(os.path.join(data, source, "utt2lang")) else None)
        written += names
    return written


def main(argv=None):
    """Command line (module docstring); returns 0, or 1 with ``error: ...`` on bad input."""
    parser = argparse.ArgumentParser(prog="python -m masr.corpora.own", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data", help="where the data dirs go (default: data)")
    parser.add_argument("--wav-root", help="recordings in <root>/<lang>/[<speaker>/]<name>.<ext>")
    parser.add_argument("--kaldi-dir", action="append", default=[], help="a Kaldi data dir, or a folder of them")
    parser.add_argument("--split", help='e.g. "train:0.8 dev:0.1 test:0.1": by speaker, stratified by language')
    parser.add_argument("--split-from", help="the data dir to split (default: all, or the first copied)")
    parser.add_argument("--no-lang", action="store_true", help="do not check utt2lang codes against URIEL")
    parser.add_argument("--nj", type=int, default=1, help="accepted for the recipes' interface; unused")
    args = parser.parse_args(argv)
    try:
        names = prepare(args.data, args.wav_root, args.kaldi_dir, args.split, args.split_from,
                        check_lang=not args.no_lang)
    except (DataDirError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.data}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
