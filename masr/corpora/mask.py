"""Mask Augsburg Speech Corpus, the ComParE 2020 Mask sub-challenge (Schuller et al., 2020).

Speech with or without a surgical face mask. Licensed: the data is given out by the ComParE
organisers (see http://www.compare.openaudio.eu/) under an end-user licence agreement; unpack the
challenge package under ``--data-root`` (as ``<root>/ComParE2020_Mask`` or ``<root>/mask``)::

    <mask>/wav/{train,devel,test}_<nnnnn>.wav
    <mask>/lab/labels.csv        file_name,label    (label: clear or mask; ? for test)

Output: one data directory of the labelled partitions (train and devel)::

    wav.scp utt2spk spk2utt utt2dur utt2label utt2subset

Utterance ids are the file stems (``train_00001``); speaker identities are not distributed with
the challenge data, so each utterance is its own speaker. ``utt2subset`` is ``train`` for the
train partition and ``test`` for devel (the test labels are withheld), the usual NOSS protocol.

Usage: ``python -m masr.corpora.mask --data-root DIR --out data/mask [--nj N]``
"""

import csv
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import corpus_main, require_manual
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

#: Where the data is requested.
URL = PAGE = "http://www.compare.openaudio.eu/"

LABELS = ("clear", "mask")
SUBSETS = {"train": "train", "devel": "test"}

_NAME = re.compile(r"(train|devel|test)_\d+\.wav")


def candidates(data_root):
    """Folders that :func:`locate` tries, in order."""
    return [os.path.join(data_root, "ComParE2020_Mask"), os.path.join(data_root, "mask"),
            os.path.join(data_root, "mask", "ComParE2020_Mask"), data_root]


def locate(data_root):
    """The Mask folder (holding ``lab/labels.csv``) under ``data_root``.

    Raises
    ------
    ManualDownloadError
        Naming the ComParE page.
    """
    for folder in candidates(data_root):
        if os.path.isfile(os.path.join(folder, "lab", "labels.csv")):
            return folder
    require_manual(os.path.join(data_root, "ComParE2020_Mask", "lab", "labels.csv"),
                   "Mask (ComParE 2020)", PAGE)
    raise AssertionError("unreachable")  # pragma: no cover


def download(dest):
    """Licensed: raises :class:`ManualDownloadError` naming the page (or returns the found folder)."""
    return locate(dest)


def prepare(data_root, out_dir, nj=1):
    """Write the Mask data directory ``out_dir`` (train and devel).

    Raises
    ------
    ValueError
        A wrong header, a malformed line, an unknown label or missing audio; names
        ``labels.csv:<line>``.
    """
    folder = locate(data_root)
    path = os.path.abspath(os.path.join(folder, "lab", "labels.csv"))
    audio = os.path.abspath(os.path.join(folder, "wav"))
    utts = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["file_name", "label"]:
            raise ValueError(f"{path}:1: header must be file_name,label, got {header}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{where}: {len(row)} columns, expected 2 (file_name,label)")
            name, label = (c.strip() for c in row)
            match = _NAME.fullmatch(name)
            if match is None:
                raise ValueError(f"{where}: '{name}' is not <train|devel|test>_<number>.wav")
            part = match.group(1)
            if part == "test":
                continue  # labels withheld
            if label not in LABELS:
                raise ValueError(f"{where}: label '{label}' is not clear or mask")
            utt = name[:-len(".wav")]
            if utt in utts:
                raise ValueError(f"{where}: '{name}' listed twice")
            wav = os.path.join(audio, name)
            if not os.path.isfile(wav):
                raise ValueError(f"{where}: audio file {wav} not found")
            utts[utt] = (wav, label, SUBSETS[part])
    if not utts:
        raise ValueError(f"{path}: no labelled train or devel file")
    paths = [u[0] for u in utts.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="mask durations", unit="file"))
    files = {
        "wav.scp": {u: r[0] for u, r in utts.items()},
        "utt2spk": {u: u for u in utts},
        "utt2dur": {u: f"{frames / sr:.3f}" for u, (frames, sr) in zip(utts, lengths)},
        "utt2label": {u: r[1] for u, r in utts.items()},
        "utt2subset": {u: r[2] for u, r in utts.items()},
    }
    write_data_dir(out_dir, files)
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("mask", sys.modules[__name__], ("utt2label", "utt2subset"), argv)


if __name__ == "__main__":
    sys.exit(main())
