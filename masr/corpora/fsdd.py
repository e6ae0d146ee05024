"""FSDD, the Free Spoken Digit Dataset (CC BY-SA 4.0): English digits 0-9, 50 takes each.

Source layout (upstream ``github.com/Jakobovski/free-spoken-digit-dataset``)::

    <fsdd>/recordings/{digit}_{speaker}_{index}.wav     8 kHz mono
    <fsdd>/speakers.json    speaker -> {gender, accent, language}   (or upstream's metadata.py,
                            a file assigning that dictionary to ``metadata``)

Output: one data directory holding every recording, with the probe labels as streams::

    wav.scp utt2spk spk2utt text utt2dur utt2lang utt2gender utt2accent utt2digit utt2subset

Utterance ids are ``<speaker>-<digit>-<index:02d>`` (e.g. ``george-0-07``) so that they sort
with their speaker. ``utt2subset`` follows the upstream convention: takes 0-4 are ``test``,
the others (5-49) ``train``.

Usage: ``python -m masr.corpora.fsdd --data-root DIR --out data/fsdd [--download] [--nj N]``
"""

import ast
import collections
import glob
import json
import os
import re
import sys

from masr.audio import audio_info
from masr.corpora.download import corpus_main, safe_extract
from masr.corpora.download import download as fetch
from masr.data.datadir import write_data_dir
from masr.utils.parallel import parallel_map
from masr.utils.progress import progress

#: The pinned upstream release (6 speakers, 3,000 recordings).
VERSION = "1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{VERSION}.tar.gz"

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LANGUAGES = {"english": "eng"}
GENDERS = {"male": "m", "female": "f", "m": "m", "f": "f"}
#: Takes below this index form the upstream test set.
NUM_TEST_TAKES = 5

_NAME = re.compile(r"(\d)_([A-Za-z0-9]+)_(\d+)\.wav")

Recording = collections.namedtuple("Recording", "path digit spk take")


def candidates(data_root):
    """Folders that :func:`locate` tries, in order: ``<root>/fsdd``, ``<root>``, then unpacked
    upstream archives ``free-spoken-digit-dataset-*`` in either."""
    found = [os.path.join(data_root, "fsdd"), data_root]
    for base in list(found):
        found += sorted(glob.glob(os.path.join(base, "free-spoken-digit-dataset-*")))
    return found


def locate(data_root):
    """The FSDD folder (the one holding ``recordings/``) under ``data_root``.

    Raises
    ------
    FileNotFoundError
        Naming every folder looked at.
    """
    tried = candidates(data_root)
    for folder in tried:
        if os.path.isdir(os.path.join(folder, "recordings")):
            return folder
    looked = ", ".join(os.path.join(f, "recordings") for f in tried)
    raise FileNotFoundError(f"FSDD not found under {data_root}: looked for {looked}")


def download(dest):
    """Download and unpack the pinned upstream release into ``<dest>/fsdd``; returns the FSDD folder."""
    archive = fetch(URL, os.path.join(dest, f"fsdd-v{VERSION}.tar.gz"))
    safe_extract(archive, os.path.join(dest, "fsdd"))
    return locate(dest)


def load_speakers(folder):
    """Speaker metadata: ``speakers.json``, else upstream's ``metadata.py`` (read, never run).

    Returns
    -------
    dict
        speaker -> {"gender": ..., "accent": ..., "language": ...}

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "metadata.py"), "w").write(
    ...     "'''Doc.'''\\nmetadata = {'theo': {'gender': 'male', 'accent': 'USA/neutral', 'language': 'english'}}\\n")
    >>> load_speakers(d)["theo"]["accent"]
    'USA/neutral'
    """
    path = os.path.join(folder, "speakers.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    path = os.path.join(folder, "metadata.py")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "metadata" for t in node.targets):
                return ast.literal_eval(node.value)
        raise ValueError(f"{path}: no 'metadata = {{...}}' dictionary found")
    raise FileNotFoundError(f"{folder}: no speaker metadata (speakers.json or metadata.py)")


def token(text):
    """A label as one word: runs of spaces and slashes become ``_``.

    Example
    -------
    >>> token("USA/neutral"), token("BEL / French")
    ('USA_neutral', 'BEL_French')
    """
    return re.sub(r"[\s/]+", "_", text.strip())


def prepare(data_root, out_dir, nj=1):
    """Write the FSDD data directory ``out_dir`` from the corpus under ``data_root``.

    Arguments
    ---------
    data_root : str
        A folder holding ``fsdd/recordings`` (or ``recordings`` itself; see :func:`candidates`).
    out_dir : str
        The data directory to write (e.g. ``data/fsdd``); rewritten on every call.
    nj : int
        Processes reading the audio durations.

    Returns
    -------
    dict
        file name -> {utt: value}, as written.

    Raises
    ------
    FileNotFoundError
        No FSDD folder, or no speaker metadata.
    ValueError
        A recording whose name is not ``{digit}_{speaker}_{index}.wav``, a speaker missing
        from the metadata or a speaker entry with an unknown gender or language; the message
        names the file.
    """
    folder = locate(data_root)
    speakers = load_speakers(folder)
    recordings = os.path.join(folder, "recordings")
    utts = {}  # utt -> Recording
    for name in sorted(os.listdir(recordings)):
        if name.startswith("."):
            continue
        path = os.path.abspath(os.path.join(recordings, name))
        match = _NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"{path}: not an FSDD recording name ({{digit}}_{{speaker}}_{{index}}.wav)")
        digit, spk, take = match.group(1), match.group(2), int(match.group(3))
        if spk not in speakers:
            raise ValueError(f"{path}: speaker '{spk}' is not in the speaker metadata of {folder}")
        utt = f"{spk}-{digit}-{take:02d}"
        if utt in utts:
            raise ValueError(f"{path}: same recording as {utts[utt].path}")
        utts[utt] = Recording(path, digit, spk, take)
    if not utts:
        raise FileNotFoundError(f"{recordings}: no recordings")
    used = {spk: speakers[spk] for spk in {r.spk for r in utts.values()}}
    for spk, info in used.items():
        if str(info.get("gender")).lower() not in GENDERS or str(info.get("language")).lower() not in LANGUAGES:
            raise ValueError(f"{folder}: speaker metadata of '{spk}': unknown gender or language in {info}")

    paths = [r.path for r in utts.values()]
    lengths = list(progress(parallel_map(audio_info, paths, nj=nj, ordered=True), total=len(paths),
                            desc="fsdd durations", unit="file"))
    files = {
        "wav.scp": {utt: r.path for utt, r in utts.items()},
        "utt2spk": {utt: r.spk for utt, r in utts.items()},
        "text": {utt: DIGIT_WORDS[int(r.digit)] for utt, r in utts.items()},
        "utt2dur": {utt: f"{frames / sr:.3f}" for utt, (frames, sr) in zip(utts, lengths)},
        "utt2lang": {utt: LANGUAGES[used[r.spk]["language"].lower()] for utt, r in utts.items()},
        "utt2gender": {utt: GENDERS[used[r.spk]["gender"].lower()] for utt, r in utts.items()},
        "utt2accent": {utt: token(used[r.spk]["accent"]) for utt, r in utts.items()},
        "utt2digit": {utt: r.digit for utt, r in utts.items()},
        "utt2subset": {utt: "test" if r.take < NUM_TEST_TAKES else "train" for utt, r in utts.items()},
    }
    write_data_dir(out_dir, files)
    return files


def main(argv=None):
    """Command line (see the module docstring); returns the exit status."""
    return corpus_main("fsdd", sys.modules[__name__], ("utt2subset", "utt2spk", "utt2accent", "utt2digit"), argv)


if __name__ == "__main__":
    sys.exit(main())
