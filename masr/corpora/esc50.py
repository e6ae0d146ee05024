"""ESC-50, the dataset of environmental sound classification (Piczak, ACM MM 2015; CC BY-NC 3.0).

2,000 five-second clips (44.1 kHz mono) in 50 categories of 40 clips, cut from Freesound
recordings and pre-arranged in 5 folds that never split a source recording. Source layout
(upstream ``github.com/karolpiczak/ESC-50``, ``master.zip``)::

    <esc50>/ESC-50-master/audio/<fold>-<src_file>-<take>-<target>.wav
    <esc50>/ESC-50-master/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take

Output: two data directories, ``<out>`` (every clip) and ``<out>_human`` (the 10 categories of
human non-speech sounds that NOSS uses as its "ESC-50 human" task)::

    wav.scp utt2spk spk2utt utt2dur utt2category utt2fold utt2esc10

Utterance ids are ``<src_file>-<file name without .wav>`` (e.g. ``100032-1-100032-A-0``) and the
"speaker" is the Freesound source recording ``src_file``, so that speaker-grouped splits, like
the official folds, never split a source. There is no language (no ``utt2lang``). Probes use the
5 official folds (``group_folds`` on ``utt2fold``).

Usage: ``python -m masr.corpora.esc50 --data-root DIR --out data/esc50 [--download] [--nj N]``
"""

import collections
import csv
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import corpus_main, safe_extract
from masr.corpora.download import download as fetch
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"

#: ESC-50 categories of human non-speech sounds (the NOSS "ESC-50 human" subset).
HUMAN_CATEGORIES = ("breathing", "brushing_teeth", "clapping", "coughing", "crying_baby", "drinking_sipping",
                    "footsteps", "laughing", "sneezing", "snoring")

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
NUM_FOLDS = 5

_NAME = re.compile(r"([1-5])-([A-Za-z0-9]+)-([A-Za-z0-9]+)-(\d+)\.wav")

Clip = collections.namedtuple("Clip", "path fold target category esc10 src")


def candidates(data_root):
    """Folders that :func:`locate` tries, in order."""
    bases = [os.path.join(data_root, "esc50"), data_root]
    return [os.path.join(b, sub) for b in bases for sub in ("ESC-50-master", "")]


def locate(data_root):
    """The ESC-50 folder (the one holding ``meta/esc50.csv`` and ``audio/``) under ``data_root``.

    Raises
    ------
    FileNotFoundError
        Naming every file looked for.
    """
    tried = [os.path.normpath(c) for c in candidates(data_root)]
    for folder in tried:
        if os.path.isfile(os.path.join(folder, "meta", "esc50.csv")) and os.path.isdir(os.path.join(folder, "audio")):
            return folder
    looked = ", ".join(os.path.join(f, "meta", "esc50.csv") for f in tried)
    raise FileNotFoundError(f"ESC-50 not found under {data_root}: looked for {looked}")


def download(dest):
    """Download and unpack upstream ``master.zip`` into ``<dest>/esc50``; returns the ESC-50 folder."""
    archive = fetch(URL, os.path.join(dest, "esc50-master.zip"))
    safe_extract(archive, os.path.join(dest, "esc50"))
    return locate(dest)


def read_meta(folder):
    """Parse ``meta/esc50.csv``; returns utt -> :class:`Clip`, in file order.

    Raises
    ------
    ValueError
        A wrong header, a malformed row, a row disagreeing with its file name, a duplicate or a
        missing audio file; the message names ``esc50.csv:<line>``.
    """
    path = os.path.abspath(os.path.join(folder, "meta", "esc50.csv"))
    audio = os.path.abspath(os.path.join(folder, "audio"))
    clips = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise ValueError(f"{path}:1: header must be {','.join(COLUMNS)}, got {header}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise ValueError(f"{where}: {len(row)} columns, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
            name, fold, target, category, esc10, src, take = (c.strip() for c in row)
            match = _NAME.fullmatch(name)
            if match is None:
                raise ValueError(f"{where}: '{name}' is not an ESC-50 clip name (<fold>-<src>-<take>-<target>.wav)")
            if (fold, src, take, target) != match.groups():
                raise ValueError(f"{where}: fold/src_file/take/target ({fold}, {src}, {take}, {target}) "
                                 f"disagree with the file name '{name}'")
            if not category or not re.fullmatch(r"[A-Za-z0-9_]+", category):
                raise ValueError(f"{where}: category '{category}' is not one word")
            if esc10 not in ("True", "False"):
                raise ValueError(f"{where}: esc10 '{esc10}' is not True or False")
            utt = f"{src}-{name[:-len('.wav')]}"
            if utt in clips:
                raise ValueError(f"{where}: '{name}' listed twice")
            wav = os.path.join(audio, name)
            if not os.path.isfile(wav):
                raise ValueError(f"{where}: audio file {wav} not found")
            clips[utt] = Clip(wav, fold, target, category, esc10.lower(), src)
    if not clips:
        raise ValueError(f"{path}: no clips listed")
    return clips


def _files(clips, durations):
    return {
        "wav.scp": {u: c.path for u, c in clips.items()},
        "utt2spk": {u: c.src for u, c in clips.items()},
        "utt2dur": {u: durations[u] for u in clips},
        "utt2category": {u: c.category for u, c in clips.items()},
        "utt2fold": {u: c.fold for u, c in clips.items()},
        "utt2esc10": {u: c.esc10 for u, c in clips.items()},
    }


def prepare(data_root, out_dir, nj=1, human_dir=None):
    """Write the ESC-50 data directories ``out_dir`` and ``human_dir`` (default ``<out_dir>_human``).

    Arguments
    ---------
    data_root : str
        A folder holding ``esc50/ESC-50-master`` (or that folder itself; see :func:`candidates`).
    out_dir : str
        The data directory of all 2,000 clips (e.g. ``data/esc50``); rewritten on every call.
    nj : int
        Processes reading the audio durations.
    human_dir : str or None
        The data directory of the :data:`HUMAN_CATEGORIES` clips; ``""`` writes none.

    Returns
    -------
    dict
        file name -> {utt: value}, as written to ``out_dir``.
    """
    folder = locate(data_root)
    clips = read_meta(folder)
    paths = [c.path for c in clips.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="esc50 durations", unit="file"))
    durations = {u: f"{frames / sr:.3f}" for u, (frames, sr) in zip(clips, lengths)}
    files = _files(clips, durations)
    write_data_dir(out_dir, files)
    if human_dir is None:
        human_dir = os.path.normpath(out_dir) + "_human"
    if human_dir:
        human = {u: c for u, c in clips.items() if c.category in HUMAN_CATEGORIES}
        if not human:
            raise ValueError(f"{folder}: no clip of the human categories ({' '.join(HUMAN_CATEGORIES)})")
        write_data_dir(human_dir, _files(human, durations))
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("esc50", sys.modules[__name__], ("utt2fold", "utt2category"), argv)


if __name__ == "__main__":
    sys.exit(main())
