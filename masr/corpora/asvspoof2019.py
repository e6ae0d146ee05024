"""ASVspoof 2019 logical access (LA): bona fide vs spoofed (TTS/VC) speech (Wang et al., 2020).

Licensed (ODC-By, registration): download ``LA.zip`` by hand from
https://datashare.ed.ac.uk/handle/10283/3336 and unpack it under ``--data-root``::

    <root>/LA/ASVspoof2019_LA_{train,dev,eval}/flac/<utt>.flac
    <root>/LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt

(``<root>/asvspoof2019/LA`` is found too.) Protocol lines have five columns: speaker, utterance,
``-``, attack id (``A01`` ... ``A19``, or ``-`` for bona fide) and ``bonafide`` or ``spoof``.

Output: one data directory per part, ``<out>_train``, ``<out>_dev`` and ``<out>_eval``
(e.g. ``data/asvspoof_train`` for ``--out data/asvspoof``)::

    wav.scp utt2spk spk2utt utt2dur utt2label utt2attack

Utterance ids are ``<speaker>-<utterance>`` (e.g. ``LA_0079-LA_T_1138215``); ``utt2attack`` is
the attack id, ``bonafide`` for bona fide speech. Probes train on ``_train`` and test on
``_eval`` (its attacks A07-A19 are mostly unseen in training).

Usage: ``python -m masr.corpora.asvspoof2019 --data-root DIR --out data/asvspoof [--nj N]``
"""

import collections
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import ManualDownloadError, corpus_main, require_manual
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

#: The licence and download page.
URL = PAGE = "https://datashare.ed.ac.uk/handle/10283/3336"

#: Part -> protocol file suffix.
PARTS = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
LABELS = ("bonafide", "spoof")

_ATTACK = re.compile(r"A\d\d")
_ID = re.compile(r"[A-Za-z0-9_]+")

Trial = collections.namedtuple("Trial", "path spk label attack")


def candidates(data_root):
    """``LA`` folders that :func:`locate` tries, in order."""
    return [os.path.join(data_root, "LA"), os.path.join(data_root, "asvspoof2019", "LA")]


def protocol_path(folder, part):
    return os.path.join(folder, "ASVspoof2019_LA_cm_protocols", f"ASVspoof2019.LA.cm.{PARTS[part]}.txt")


def locate(data_root):
    """The ``LA`` folder (holding ``ASVspoof2019_LA_cm_protocols``) under ``data_root``.

    Raises
    ------
    ManualDownloadError
        No ``LA`` folder: names the licence page.
    FileNotFoundError
        An ``LA`` folder without the protocols.
    """
    tried = candidates(data_root)
    for folder in tried:
        if os.path.isdir(folder):
            protocols = os.path.join(folder, "ASVspoof2019_LA_cm_protocols")
            if not os.path.isdir(protocols):
                raise FileNotFoundError(f"{folder}: no ASVspoof2019_LA_cm_protocols folder (incomplete LA.zip?)")
            return folder
    require_manual(tried[0], "ASVspoof 2019 LA", PAGE)
    raise AssertionError("unreachable")  # pragma: no cover


def download(dest):
    """Licensed: raises :class:`ManualDownloadError` naming the page (or returns the found folder)."""
    try:
        return locate(dest)
    except ManualDownloadError:
        raise
    except FileNotFoundError as e:
        raise ManualDownloadError(f"{e}; download LA.zip from {PAGE}") from None


def read_protocol(folder, part):
    """Parse one CM protocol; returns utt -> :class:`Trial`.

    Raises
    ------
    ValueError
        A malformed line, a duplicate or a missing flac file; names ``<protocol>:<line>``.
    """
    path = os.path.abspath(protocol_path(folder, part))
    audio = os.path.abspath(os.path.join(folder, f"ASVspoof2019_LA_{part}", "flac"))
    trials = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            cols = line.split()
            if len(cols) != 5:
                raise ValueError(f"{where}: {len(cols)} columns, expected 5 (speaker utterance - attack label)")
            spk, name, _, attack, label = cols
            if not _ID.fullmatch(spk) or not _ID.fullmatch(name):
                raise ValueError(f"{where}: speaker '{spk}' or utterance '{name}' is not an id")
            if label not in LABELS:
                raise ValueError(f"{where}: label '{label}' is not bonafide or spoof")
            if label == "bonafide" and attack != "-" or label == "spoof" and not _ATTACK.fullmatch(attack):
                raise ValueError(f"{where}: attack '{attack}' does not fit label '{label}' "
                                 f"('-' for bonafide, Axx for spoof)")
            utt = f"{spk}-{name}"
            if utt in trials:
                raise ValueError(f"{where}: utterance '{name}' listed twice")
            flac = os.path.join(audio, f"{name}.flac")
            if not os.path.isfile(flac):
                raise ValueError(f"{where}: audio file {flac} not found")
            trials[utt] = Trial(flac, spk, label, "bonafide" if label == "bonafide" else attack)
    if not trials:
        raise ValueError(f"{path}: no trials")
    return trials


def prepare(data_root, out_dir, nj=1, parts=tuple(PARTS)):
    """Write ``<out_dir>_<part>`` for each part whose protocol is present (train and eval required).

    Returns
    -------
    dict
        file name -> {utt: value} over all parts written (utterance ids are distinct across parts).
    """
    folder = locate(data_root)
    merged = {}
    for part in parts:
        if part == "dev" and not os.path.isfile(protocol_path(folder, part)):
            continue
        if not os.path.isfile(protocol_path(folder, part)):
            raise FileNotFoundError(f"{protocol_path(folder, part)}: protocol not found")
        trials = read_protocol(folder, part)
        paths = [t.path for t in trials.values()]
        lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                                desc=f"asvspoof2019 {part} durations", unit="file"))
        files = {
            "wav.scp": {u: t.path for u, t in trials.items()},
            "utt2spk": {u: t.spk for u, t in trials.items()},
            "utt2dur": {u: f"{frames / sr:.3f}" for u, (frames, sr) in zip(trials, lengths)},
            "utt2label": {u: t.label for u, t in trials.items()},
            "utt2attack": {u: t.attack for u, t in trials.items()},
        }
        write_data_dir(f"{os.path.normpath(out_dir)}_{part}", files)
        for name, mapping in files.items():
            merged.setdefault(name, {}).update(mapping)
    return merged


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("asvspoof2019", sys.modules[__name__], ("utt2label", "utt2attack"), argv)


if __name__ == "__main__":
    sys.exit(main())
