"""IEMOCAP, the Interactive Emotional Dyadic Motion Capture database (Busso et al., 2008).

Licensed: request it at https://sail.usc.edu/iemocap/ and unpack ``IEMOCAP_full_release``
under ``--data-root`` (as ``<root>/IEMOCAP_full_release``, ``<root>/iemocap`` or ``<root>``)::

    Session{1..5}/sentences/wav/<dialog>/<utt>.wav
    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt

Each evaluation file has one summary line per utterance,
``[<start> - <end>]\\t<utt>\\t<emotion>\\t[<v>, <a>, <d>]``; the other lines (annotator
details, headers) are skipped.

Output (the usual 4-class setup: ``neu``, ``hap`` with ``exc`` merged into it, ``ang``, ``sad``;
other emotions are left out)::

    wav.scp utt2spk spk2utt utt2dur utt2lang utt2gender utt2emotion utt2session

The speaker is the session plus the gender of the utterance's speaker, the letter of its last
part (``Ses01F_impro01_M000`` is spoken by ``Ses01M``); utterance ids are ``<speaker>-<utt>``
(``Ses01M-Ses01F_impro01_M000``). ``utt2session`` is ``Ses01`` ... ``Ses05`` for the standard
leave-one-session-out protocol.

Usage: ``python -m masr.corpora.iemocap --data-root DIR --out data/iemocap [--nj N]``
"""

import collections
import glob
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import ManualDownloadError, corpus_main, require_manual
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

#: The licence page.
URL = PAGE = "https://sail.usc.edu/iemocap/"

#: Evaluation label -> 4-class label (others are dropped).
EMOTIONS = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
#: All labels found in the evaluation files.
KNOWN = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")

_LINE = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(\S+)\s+(\S+)\s+\[[^\]]*\]\s*")
_UTT = re.compile(r"(Ses0[1-5])[FM]_\S*_([FM])\d+")

Utterance = collections.namedtuple("Utterance", "path spk session gender emotion")


def candidates(data_root):
    """Folders that :func:`locate` tries, in order."""
    return [os.path.join(data_root, "IEMOCAP_full_release"), os.path.join(data_root, "iemocap"),
            os.path.join(data_root, "iemocap", "IEMOCAP_full_release"), data_root]


def locate(data_root):
    """The IEMOCAP folder (holding ``Session1`` ...) under ``data_root``.

    Raises
    ------
    ManualDownloadError
        Naming the licence page.
    """
    for folder in candidates(data_root):
        if os.path.isdir(os.path.join(folder, "Session1")):
            return folder
    require_manual(os.path.join(data_root, "IEMOCAP_full_release", "Session1"), "IEMOCAP", PAGE)
    raise ManualDownloadError(f"IEMOCAP needs a manual download: accept the licence at {PAGE}, "
                              f"then point --data-root at it (not found: {data_root}/.../Session1)")


def download(dest):
    """Licensed: raises :class:`ManualDownloadError` naming the page (or returns the found folder)."""
    return locate(dest)


def read_evaluation(path):
    """Summary lines of one ``EmoEvaluation/<dialog>.txt``: list of (utt, emotion).

    Raises
    ------
    ValueError
        A line starting with ``[`` that is not a summary line, an unknown emotion or an
        utterance id of the wrong form; names ``<file>:<line>``.
    """
    found = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.startswith("["):
                continue
            where = f"{os.path.abspath(path)}:{number}"
            match = _LINE.fullmatch(line.rstrip("\n").rstrip("\r"))
            if match is None:
                raise ValueError(f"{where}: not '[start - end]<TAB>utt<TAB>emotion<TAB>[v, a, d]': {line.strip()!r}")
            utt, emotion = match.group(3), match.group(4)
            if emotion not in KNOWN:
                raise ValueError(f"{where}: unknown emotion '{emotion}' (known: {' '.join(KNOWN)})")
            if _UTT.fullmatch(utt) is None:
                raise ValueError(f"{where}: '{utt}' is not an IEMOCAP utterance id (e.g. Ses01F_impro01_M000)")
            found.append((utt, emotion))
    return found


def prepare(data_root, out_dir, nj=1):
    """Write the 4-class IEMOCAP data directory ``out_dir``.

    Returns
    -------
    dict
        file name -> {utt: value}, as written.
    """
    folder = locate(data_root)
    utts = {}
    for session in range(1, 6):
        sdir = os.path.join(folder, f"Session{session}")
        if not os.path.isdir(sdir):
            raise FileNotFoundError(f"{sdir}: session folder not found")
        evaluations = sorted(glob.glob(os.path.join(sdir, "dialog", "EmoEvaluation", "*.txt")))
        if not evaluations:
            raise FileNotFoundError(f"{sdir}/dialog/EmoEvaluation: no evaluation files")
        for evaluation in evaluations:
            dialog = os.path.splitext(os.path.basename(evaluation))[0]
            for name, emotion in read_evaluation(evaluation):
                if emotion not in EMOTIONS:
                    continue
                ses, gender = _UTT.fullmatch(name).groups()
                wav = os.path.abspath(os.path.join(sdir, "sentences", "wav", dialog, f"{name}.wav"))
                if not os.path.isfile(wav):
                    raise ValueError(f"{os.path.abspath(evaluation)}: audio of '{name}' not found ({wav})")
                spk = f"{ses}{gender}"
                utt = f"{spk}-{name}"
                if utt in utts:
                    raise ValueError(f"{os.path.abspath(evaluation)}: '{name}' evaluated twice")
                utts[utt] = Utterance(wav, spk, ses, gender.lower(), EMOTIONS[emotion])
    if not utts:
        raise ValueError(f"{folder}: no utterance of the 4 classes")
    paths = [u.path for u in utts.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="iemocap durations", unit="file"))
    files = {
        "wav.scp": {u: r.path for u, r in utts.items()},
        "utt2spk": {u: r.spk for u, r in utts.items()},
        "utt2dur": {u: f"{frames / sr:.3f}" for u, (frames, sr) in zip(utts, lengths)},
        "utt2lang": {u: "eng" for u in utts},
        "utt2gender": {u: r.gender for u, r in utts.items()},
        "utt2emotion": {u: r.emotion for u, r in utts.items()},
        "utt2session": {u: r.session for u, r in utts.items()},
    }
    write_data_dir(out_dir, files)
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("iemocap", sys.modules[__name__], ("utt2emotion", "utt2session"), argv)


if __name__ == "__main__":
    sys.exit(main())
