"""VoxForge, six-language language identification as in NOSS/TRILL (de en es fr it ru; GPL).

VoxForge publishes one ``.tgz`` archive per submission (a speaker's recording session) under
``repository.voxforge1.org/downloads/<lang>/Trunk/Audio/Main/16kHz_16bit/``. This module does not
download them: point ``--data-root`` at a local copy with the archives extracted as::

    <voxforge>/<lang>/<session>/wav/*.wav     (some sessions: flac/*.flac)
    <voxforge>/<lang>/<session>/etc/README    "Gender: Male" etc. (optional)

where ``<lang>`` is ``de en es fr it ru`` (two-letter, as on the server) or the ISO 639-3 code,
and ``<session>`` the archive name, e.g. ``ralfherzog-20071220-de34``.

Output: one data directory::

    wav.scp utt2spk spk2utt utt2dur utt2lang utt2subset [utt2gender]

Speakers are sessions, ``<iso3>_<session>`` with characters other than letters, digits, ``_``
and ``.`` made ``_`` (e.g. ``deu_ralfherzog_20071220_de34``); utterance ids are
``<speaker>-<file stem>``. ``utt2lang`` holds ISO 639-3 codes (deu eng spa fra ita rus).
``utt2gender`` is written only when every session's README gives male or female.

``utt2subset`` is a speaker-disjoint 80/20 ``train``/``test`` split by a deterministic hash of
the speaker (the user name of the session, or the session itself for ``anonymous``
submissions). NOSS used split lists of its own that are not public, so numbers on this split
are not directly comparable with the paper's.

Usage: ``python -m masr.corpora.voxforge --data-root DIR --out data/voxforge [--nj N]``
"""

import collections
import hashlib
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import ManualDownloadError, corpus_main
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

URL = "http://www.repository.voxforge1.org/downloads/"

#: Folder name -> ISO 639-3 code.
LANGUAGES = {"de": "deu", "en": "eng", "es": "spa", "fr": "fra", "it": "ita", "ru": "rus"}
LANGUAGES.update({v: v for v in list(LANGUAGES.values())})

#: Percentage of speakers (by hash) in the test subset.
TEST_PERCENT = 20

Utterance = collections.namedtuple("Utterance", "path lang spk split_key")


def candidates(data_root):
    """Folders that :func:`locate` tries, in order."""
    return [os.path.join(data_root, "voxforge"), data_root]


def _languages(folder):
    return sorted(n for n in os.listdir(folder) if n in LANGUAGES and os.path.isdir(os.path.join(folder, n)))


def _has_session(lang_dir):
    """Whether a language folder holds at least one ``<session>/wav`` or ``<session>/flac`` folder."""
    for session in os.listdir(lang_dir):
        if any(os.path.isdir(os.path.join(lang_dir, session, sub)) for sub in ("wav", "flac")):
            return True
    return False


def locate(data_root):
    """The VoxForge folder (holding language folders ``de``, ``en``, ...) under ``data_root``."""
    tried = candidates(data_root)
    for folder in tried:
        if os.path.isdir(folder) and any(_has_session(os.path.join(folder, n)) for n in _languages(folder)):
            return folder
    raise FileNotFoundError(f"VoxForge not found under {data_root}: looked for language folders "
                            f"({' '.join(sorted(LANGUAGES))}) holding <session>/wav in {', '.join(tried)}")


def download(dest):
    """VoxForge is not downloaded here (thousands of per-session archives): explains what to do."""
    raise ManualDownloadError(f"VoxForge is not downloaded by this module: fetch the per-language session "
                              f"archives from {URL}<lang>/Trunk/Audio/Main/16kHz_16bit/, extract them to "
                              f"{os.path.join(dest, 'voxforge')}/<lang>/<session>/, then rerun")


def speaker_id(lang, session):
    """The speaker id of a session.

    Example
    -------
    >>> speaker_id("deu", "ralf-herzog-20071220-de34")
    'deu_ralf_herzog_20071220_de34'
    """
    return f"{lang}_" + re.sub(r"[^A-Za-z0-9_.]", "_", session)


def split_key(lang, session):
    """What the train/test split hashes: the session's user name, or the session when anonymous.

    Example
    -------
    >>> split_key("deu", "ralfherzog-20071220-de34"), split_key("deu", "anonymous-20080504-qvg")
    ('deu/ralfherzog', 'deu/anonymous-20080504-qvg')
    """
    match = re.match(r"(.+?)-\d{8}-", session)
    user = match.group(1) if match else session
    return f"{lang}/{session if user.lower() == 'anonymous' else user}"


def subset(key):
    """``test`` for about :data:`TEST_PERCENT` % of keys (by MD5), else ``train``."""
    return "test" if int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 100 < TEST_PERCENT else "train"


def read_gender(session_dir):
    """``m``, ``f`` or ``None`` from ``etc/README`` (a ``Gender:`` line)."""
    path = os.path.join(session_dir, "etc", "README")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip().lower() == "gender":
                value = value.strip().lower()
                return {"male": "m", "m": "m", "female": "f", "f": "f",
                        "männlich": "m", "weiblich": "f"}.get(value)
    return None


def prepare(data_root, out_dir, nj=1):
    """Write the VoxForge data directory ``out_dir`` from the extracted sessions under ``data_root``.

    Returns
    -------
    dict
        file name -> {utt: value}, as written.

    Raises
    ------
    FileNotFoundError
        No language folder, or no audio in any session.
    ValueError
        A session without ``wav/`` or ``flac/`` audio, or two sessions giving the same speaker id;
        the message names the folder.
    """
    folder = locate(data_root)
    utts, genders, speakers = {}, {}, {}
    for name in _languages(folder):
        lang = LANGUAGES[name]
        lang_dir = os.path.join(folder, name)
        for session in sorted(os.listdir(lang_dir)):
            session_dir = os.path.abspath(os.path.join(lang_dir, session))
            if session.startswith(".") or not os.path.isdir(session_dir):
                continue
            spk = speaker_id(lang, session)
            if spk in speakers:
                raise ValueError(f"{session_dir}: same speaker id '{spk}' as {speakers[spk]}")
            speakers[spk] = session_dir
            found = 0
            for sub, ext in (("wav", ".wav"), ("flac", ".flac")):
                audio = os.path.join(session_dir, sub)
                if not os.path.isdir(audio):
                    continue
                for fname in sorted(os.listdir(audio)):
                    if fname.startswith(".") or not fname.lower().endswith(ext):
                        continue
                    stem = re.sub(r"\s+", "_", fname[:-len(ext)])
                    utt = f"{spk}-{stem}"
                    if utt in utts:
                        raise ValueError(f"{os.path.join(audio, fname)}: same utterance id '{utt}' as "
                                         f"{utts[utt].path}")
                    utts[utt] = Utterance(os.path.join(audio, fname), lang, spk, split_key(lang, session))
                    found += 1
            if not found:
                raise ValueError(f"{session_dir}: no audio in wav/*.wav or flac/*.flac")
            genders[spk] = read_gender(session_dir)
    if not utts:
        raise FileNotFoundError(f"{folder}: no VoxForge sessions")
    paths = [u.path for u in utts.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="voxforge durations", unit="file"))
    files = {
        "wav.scp": {u: r.path for u, r in utts.items()},
        "utt2spk": {u: r.spk for u, r in utts.items()},
        "utt2dur": {u: f"{frames / sr:.3f}" for u, (frames, sr) in zip(utts, lengths)},
        "utt2lang": {u: r.lang for u, r in utts.items()},
        "utt2subset": {u: subset(r.split_key) for u, r in utts.items()},
    }
    if all(genders.values()):
        files["utt2gender"] = {u: genders[r.spk] for u, r in utts.items()}
    else:
        stale = os.path.join(out_dir, "utt2gender")
        if os.path.exists(stale):
            os.remove(stale)
    write_data_dir(out_dir, files)
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("voxforge", sys.modules[__name__], ("utt2lang", "utt2subset"), argv)


if __name__ == "__main__":
    sys.exit(main())
