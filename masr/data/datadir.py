"""Reading and writing Kaldi-style data directories.

A data directory holds one file per kind of information, each a sorted list of
``<key> <value>`` lines (keys are utterance ids, or speaker ids for ``spk2utt``):

==================  =========================================================
``wav.scp``         ``utt path/to/audio.wav`` or ``utt <shell command> |``
``utt2spk``         ``utt speaker``
``spk2utt``         ``speaker utt1 utt2 ...`` (derived from ``utt2spk``)
``text``            ``utt the transcript``
``utt2dur``         ``utt seconds``
``utt2lang``        ``utt iso639-3`` (e.g. ``hrv``)
``utt2<key>``       any further metadata stream, e.g. ``utt2geo`` = ``utt lat lon``
``feats.scp``       ``utt feats.ark:offset`` (written by the features stage)
``utt2num_frames``  ``utt frames`` (written by the features stage)
==================  =========================================================

Metadata streams are *discovered* from the files present: every ``utt2<key>`` except the
bookkeeping ones (``utt2dur``, ``utt2num_frames``) is a stream named ``<key>``, and ``text`` is
the transcript stream. A corpus adds a stream by writing a file, not code.
"""

import os

from masr.utils.fileio import atomic_open

#: ``utt2<key>`` files that describe the recording, not a label of it.
BOOKKEEPING_KEYS = ("dur", "num_frames")


class DataDirError(ValueError):
    """Malformed or inconsistent data directory content.

    The message always names the file, and the line and utterance where there is one.
    """


def read_kaldi_map(path, allow_empty_value=False):
    """Read a ``<key> <value>`` file into an ordered dict, refusing malformed lines.

    Arguments
    ---------
    path : str
        The file to read (UTF-8).
    allow_empty_value : bool
        Accept lines holding only a key (value ``""``).

    Returns
    -------
    dict
        key -> value (the rest of the line after the first run of spaces), in file order.

    Raises
    ------
    DataDirError
        On a missing file, undecodable bytes, a carriage return, an empty line, an empty
        value or a repeated key; the message names the file and line.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "utt2lang")
    >>> _ = open(p, "w").write("a1 hrv\\na2 srp\\n")
    >>> read_kaldi_map(p)
    {'a1': 'hrv', 'a2': 'srp'}
    """
    if not os.path.isfile(path):
        raise DataDirError(f"{path}: file not found")
    out = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataDirError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if line.endswith("\n"):
                line = line[:-1]
            if "\r" in line:
                raise DataDirError(f"{where}: carriage return found (Windows line endings?)")
            if not line.strip():
                raise DataDirError(f"{where}: empty line")
            parts = line.split(maxsplit=1)
            key = parts[0]
            if line[0].isspace():
                raise DataDirError(f"{where}: utterance '{key}': line starts with whitespace")
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataDirError(f"{where}: utterance '{key}': no value after the key")
            if key in out:
                raise DataDirError(f"{where}: utterance '{key}': duplicate key")
            out[key] = value
    return out


def write_kaldi_map(path, mapping):
    """Write ``mapping`` as sorted ``<key> <value>`` lines, atomically.

    Arguments
    ---------
    path : str
        Destination file.
    mapping : dict
        key -> value; values that are lists or tuples are joined with spaces.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "spk2utt")
    >>> write_kaldi_map(p, {"s2": ["s2_1"], "s1": ["s1_1", "s1_2"]})
    >>> print(open(p).read(), end="")
    s1 s1_1 s1_2
    s2 s2_1
    """
    with atomic_open(path) as f:
        for key in sorted(mapping):
            value = mapping[key]
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n")


def utt2spk_to_spk2utt(utt2spk):
    """Invert ``utt2spk`` into ``spk2utt`` (utterances in sorted order).

    Example
    -------
    >>> utt2spk_to_spk2utt({"b_2": "b", "a_1": "a", "b_1": "b"})
    {'a': ['a_1'], 'b': ['b_1', 'b_2']}
    """
    spk2utt = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return dict(sorted(spk2utt.items()))


def write_data_dir(path, files):
    """Write a complete data directory; ``spk2utt`` is derived from ``utt2spk``.

    Arguments
    ---------
    path : str
        The data directory (created when missing).
    files : dict
        file name (``"wav.scp"``, ``"text"``, ``"utt2lang"``, ...) -> {utt: value}.
        Must contain ``wav.scp`` and ``utt2spk``.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_data_dir(d, {"wav.scp": {"s1_a": "/x.wav"}, "utt2spk": {"s1_a": "s1"}})
    >>> sorted(os.listdir(d))
    ['spk2utt', 'utt2spk', 'wav.scp']
    """
    for required in ("wav.scp", "utt2spk"):
        if required not in files:
            raise ValueError(f"write_data_dir({path}): '{required}' is required")
    os.makedirs(path, exist_ok=True)
    for name, mapping in files.items():
        write_kaldi_map(os.path.join(path, name), mapping)
    write_kaldi_map(os.path.join(path, "spk2utt"), utt2spk_to_spk2utt(files["utt2spk"]))


class DataDir:
    """A Kaldi-style data directory, read lazily one file at a time.

    Arguments
    ---------
    path : str
        The directory.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_data_dir(d, {"wav.scp": {"s1_a": "/x.wav"}, "utt2spk": {"s1_a": "s1"},
    ...                    "utt2lang": {"s1_a": "hrv"}, "utt2dur": {"s1_a": "1.5"},
    ...                    "text": {"s1_a": "dobar dan"}})
    >>> dd = DataDir(d)
    >>> dd.utt_ids
    ['s1_a']
    >>> dd.metadata_streams()
    ['lang', 'spk', 'text']
    >>> dd.stream("lang")
    {'s1_a': 'hrv'}
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise DataDirError(f"{self.path}: data directory not found")
        self._cache = {}

    def file(self, name):
        """Path of the file ``name`` inside the directory."""
        return os.path.join(self.path, name)

    def has(self, name):
        """Whether the file ``name`` exists."""
        return os.path.isfile(self.file(name))

    def read(self, name):
        """The ``<key> <value>`` map of file ``name`` (cached)."""
        if name not in self._cache:
            self._cache[name] = read_kaldi_map(self.file(name))
        return self._cache[name]

    @property
    def utt_ids(self):
        """Sorted utterance ids, from ``wav.scp`` (or ``feats.scp`` in a feature-only dir)."""
        index = "wav.scp" if self.has("wav.scp") else "feats.scp"
        return sorted(self.read(index))

    def metadata_streams(self):
        """Names of the metadata streams present: ``utt2<key>`` files and ``text``."""
        names = []
        for fname in os.listdir(self.path):
            if fname.startswith("utt2") and len(fname) > 4 and "." not in fname:
                key = fname[4:]
                if key not in BOOKKEEPING_KEYS:
                    names.append(key)
        if self.has("text"):
            names.append("text")
        return sorted(names)

    def stream(self, name):
        """utt -> label string for metadata stream ``name`` (``"text"`` or ``utt2<name>``)."""
        return self.read("text" if name == "text" else f"utt2{name}")

    def durations(self):
        """utt -> duration in seconds, from ``utt2dur``."""
        return {utt: float(v) for utt, v in self.read("utt2dur").items()}
