"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005).

Ten actors (five female, five male) speak ten German sentences in seven emotions. Source
layout: ``<emodb>/wav/SSTTTEv.wav`` (upstream ``download.zip``) or ``<emodb>/flac/SSTTTEv.flac``
(a lossless re-encoding), where ``SS`` is the speaker, ``TTT`` the sentence, ``E`` the emotion
(German initial) and ``v`` the take.

Output: one data directory::

    wav.scp utt2spk spk2utt text utt2dur utt2lang utt2gender utt2emotion

Utterance ids are ``spk<SS>-<file name without extension>`` (e.g. ``spk03-03a01Fa``); speakers
are ``spk03`` ... ``spk16``. Probes should use speaker-independent folds (leave one speaker out).

Usage: ``python -m masr.corpora.emodb --data-root DIR --out data/emodb [--download] [--nj N]``
"""

import collections
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import corpus_main, safe_extract
from masr.corpora.download import download as fetch
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

URL = "http://emodb.bilderbar.info/download/download.zip"

#: Speaker code -> gender (ages: 03 31, 08 34, 09 21, 10 32, 11 26, 12 30, 13 32, 14 35, 15 25, 16 31).
GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}

#: German initial -> emotion.
EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
            "N": "neutral"}

#: Text code -> sentence.
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

_NAME = re.compile(r"(\d\d)([ab]\d\d)([A-Z])([a-z])")

Recording = collections.namedtuple("Recording", "path spk text emotion")


def candidates(data_root):
    """Audio folders that :func:`locate` tries, in order (upstream ``wav/`` before ``flac/``)."""
    return [os.path.join(base, sub) for base in (os.path.join(data_root, "emodb"), data_root)
            for sub in ("wav", "flac")]


def locate(data_root):
    """The EmoDB audio folder (``wav/`` or ``flac/``) under ``data_root``.

    Raises
    ------
    FileNotFoundError
        Naming every folder looked at.
    """
    tried = candidates(data_root)
    for folder in tried:
        if os.path.isdir(folder):
            return folder
    raise FileNotFoundError(f"EmoDB not found under {data_root}: looked for {', '.join(tried)}")


def download(dest):
    """Download and unpack upstream ``download.zip`` into ``<dest>/emodb``; returns the audio folder."""
    archive = fetch(URL, os.path.join(dest, "emodb-download.zip"))
    safe_extract(archive, os.path.join(dest, "emodb"))
    return locate(dest)


def parse_name(path):
    """(speaker code, text code, emotion, take) of an EmoDB file name.

    Raises
    ------
    ValueError
        Naming the file, when the name is not ``SSTTTEv`` with a known speaker, text and emotion.

    Example
    -------
    >>> parse_name("/x/03a01Wa.wav")
    ('03', 'a01', 'anger', 'a')
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    match = _NAME.fullmatch(stem)
    if match is None:
        raise ValueError(f"{path}: not an EmoDB file name (SSTTTEv, e.g. 03a01Wa.wav)")
    spk, text, emotion, take = match.groups()
    for code, table, what in ((spk, GENDERS, "speaker"), (text, SENTENCES, "text"), (emotion, EMOTIONS, "emotion")):
        if code not in table:
            raise ValueError(f"{path}: unknown {what} code '{code}' (known: {' '.join(table)})")
    return spk, text, EMOTIONS[emotion], take


def prepare(data_root, out_dir, nj=1):
    """Write the EmoDB data directory ``out_dir`` from the corpus under ``data_root``.

    Arguments
    ---------
    data_root : str
        A folder holding ``emodb/wav`` or ``emodb/flac`` (or ``wav``/``flac`` itself).
    out_dir : str
        The data directory to write (e.g. ``data/emodb``); rewritten on every call.
    nj : int
        Processes reading the audio durations.

    Returns
    -------
    dict
        file name -> {utt: value}, as written.

    Raises
    ------
    FileNotFoundError
        No audio folder, or one without audio.
    ValueError
        A malformed file name (see :func:`parse_name`).
    """
    folder = locate(data_root)
    ext = "." + os.path.basename(folder)
    utts = {}  # utt -> Recording (speaker and text as codes)
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        path = os.path.abspath(os.path.join(folder, name))
        if not name.endswith(ext):
            raise ValueError(f"{path}: not a {ext} file")
        spk, text, emotion, _ = parse_name(path)
        utts[f"spk{spk}-{name[:-len(ext)]}"] = Recording(path, spk, text, emotion)
    if not utts:
        raise FileNotFoundError(f"{folder}: no {ext} files")
    paths = [r.path for r in utts.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="emodb durations", unit="file"))
    files = {
        "wav.scp": {utt: r.path for utt, r in utts.items()},
        "utt2spk": {utt: f"spk{r.spk}" for utt, r in utts.items()},
        "text": {utt: SENTENCES[r.text] for utt, r in utts.items()},
        "utt2dur": {utt: f"{frames / sr:.3f}" for utt, (frames, sr) in zip(utts, lengths)},
        "utt2lang": {utt: "deu" for utt in utts},
        "utt2gender": {utt: GENDERS[r.spk] for utt, r in utts.items()},
        "utt2emotion": {utt: r.emotion for utt, r in utts.items()},
    }
    write_data_dir(out_dir, files)
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("emodb", sys.modules[__name__], ("utt2emotion", "utt2spk", "utt2gender"), argv)


if __name__ == "__main__":
    sys.exit(main())
