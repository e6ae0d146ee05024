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

import hashlib
import math
import os
import re
import struct

from masr.utils.fileio import atomic_open

#: ``utt2<key>`` files that describe the recording, not a label of it.
BOOKKEEPING_KEYS = ("dur", "num_frames")

#: The UTF-8 byte-order mark, refused at the start of a ``<key> <value>`` file.
UTF8_BOM = b"\xef\xbb\xbf"

#: A ``feats.scp`` entry as the features stage writes it: ``<ark path>:<byte offset>``.
_ARK_ENTRY = re.compile(r"(?P<path>.+):(?P<offset>[0-9]+)")


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
        On a missing file, a UTF-8 byte-order mark at its start, undecodable bytes, a carriage
        return, an empty line, an empty value or a repeated key; the message names the file and
        line (and the utterance where there is one).

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
            if lineno == 1 and raw.startswith(UTF8_BOM):
                raise DataDirError(
                    f"{where}: the file starts with a UTF-8 byte-order mark (BOM); save it without one "
                    f"(e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path})"
                )
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


def mapping_id(mapping):
    """A digest of ``{utt: label}``: results computed on the same utterances and labels share it.

    Example
    -------
    >>> mapping_id({"u1": "hrv", "u2": "srp"}) == mapping_id({"u2": "srp", "u1": "hrv"})
    True
    >>> mapping_id({"u1": "hrv"}) == mapping_id({"u1": "srp"})
    False
    """
    digest = hashlib.sha256()
    for utt in sorted(mapping):
        digest.update(f"{utt} {mapping[utt]}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


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
        """utt -> duration in seconds, from ``utt2dur``.

        Raises
        ------
        DataDirError
            A missing ``utt2dur`` (the message says how to make one), or a value that is not a
            positive number of seconds (the message names the line and utterance).
        """
        if not self.has("utt2dur"):
            raise DataDirError(
                f"{self.file('utt2dur')}: file not found; utterance durations are needed here: write one "
                f"'<utt> <seconds>' line per utterance (the corpus preparation of masr.corpora writes it; "
                f"in Kaldi: utils/data/get_utt2dur.sh {self.path})"
            )
        out = {}
        for lineno, (utt, text) in enumerate(self.read("utt2dur").items(), start=1):
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise DataDirError(f"{self.file('utt2dur')}:{lineno}: utterance '{utt}': duration '{text}' "
                                   f"is not a positive number of seconds")
            out[utt] = value
        return out


def parse_ark_entry(entry):
    """Split a ``feats.scp`` entry ``<ark path>:<byte offset>`` into its path and offset.

    Only this form, which :mod:`masr.features.extract` writes, is accepted: the offset is the
    decimal digits after the last ``:``, and the path holds no ``|``. Kaldi's other forms (a
    command ending or starting in ``|``, a whole-file ``-``, a ``[rows,cols]`` slice) are refused,
    so that no entry can make a reader run a command.

    Arguments
    ---------
    entry : str
        The value of a ``feats.scp`` line.

    Returns
    -------
    path : str
    offset : int
        Byte offset of the matrix in the ark (just after the ``<utt> `` key).

    Raises
    ------
    ValueError
        Any other form; the message says what is wrong (the caller adds file, line, utterance).

    Example
    -------
    >>> parse_ark_entry("/dump/train/data/feats.1.ark:1234")
    ('/dump/train/data/feats.1.ark', 1234)
    >>> parse_ark_entry("gunzip -c feats.ark.gz |")
    Traceback (most recent call last):
    ...
    ValueError: entry 'gunzip -c feats.ark.gz |' is not '<ark path>:<byte offset>'
    """
    match = _ARK_ENTRY.fullmatch(entry)
    if match is None:
        raise ValueError(f"entry '{entry}' is not '<ark path>:<byte offset>'")
    path = match.group("path")
    if "|" in path:
        raise ValueError(f"entry '{entry}': the ark path contains '|' (commands are not run)")
    if path.strip() != path or path == "-":
        raise ValueError(f"entry '{entry}': '{path}' is not a file path")
    return path, int(match.group("offset"))


def _check_claimed_size(f, offset, path):
    """Refuse a Kaldi binary matrix header claiming more elements than the file holds bytes (a
    crafted or damaged header would otherwise make the reader allocate whatever it claims)."""
    f.seek(offset + 2)
    kind = f.read(3)
    if kind in (b"FM ", b"DM ", b"FV ", b"DV "):
        dims = []
        for _ in range(2 if kind[1:2] == b"M" else 1):
            raw = f.read(5)
            if len(raw) < 5 or raw[0] != 4:
                raise ValueError(f"malformed Kaldi matrix header at byte {offset} of '{path}'")
            dims.append(struct.unpack("<i", raw[1:])[0])
    elif kind in (b"CM ", b"CM2", b"CM3"):
        raw = f.read(16)
        if len(raw) < 16:
            raise ValueError(f"malformed Kaldi matrix header at byte {offset} of '{path}'")
        dims = list(struct.unpack("<ii", raw[8:]))
    else:
        raise ValueError(f"no Kaldi binary matrix or vector at byte {offset} of '{path}' (found {kind!r})")
    elements, remaining = 1, os.fstat(f.fileno()).st_size - f.tell()
    for d in dims:
        if d < 0:
            raise ValueError(f"malformed Kaldi matrix header at byte {offset} of '{path}' (dimension {d})")
        elements *= d
    if elements > remaining:  # every element takes at least one byte
        raise ValueError(f"the Kaldi matrix at byte {offset} of '{path}' claims {'x'.join(map(str, dims))} "
                         f"elements, more than the {remaining} bytes left in the file (damaged or crafted)")


def read_ark_entry(entry):
    """Read the Kaldi binary matrix or vector that a ``feats.scp`` entry points at.

    The entry is checked by :func:`parse_ark_entry`; the ark is opened as a plain file, and the
    object at the offset must be a Kaldi binary matrix or vector (``FM``, ``DM``, ``FV``, ``DV``
    or compressed ``CM``/``CM2``/``CM3``), parsed by ``kaldiio.matio.read_matrix_or_vector``.
    No command is ever run and no pickled or text object is loaded.

    Arguments
    ---------
    entry : str
        ``<ark path>:<byte offset>``.

    Returns
    -------
    numpy.ndarray
        (rows, cols) for a matrix, (dim,) for a vector.

    Raises
    ------
    ValueError
        A malformed entry, or no complete Kaldi binary matrix or vector at the offset.
    OSError
        An ark that cannot be opened.

    Example
    -------
    >>> import tempfile, kaldiio, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> with kaldiio.WriteHelper(f"ark,scp:{d}/a.ark,{d}/a.scp") as w:
    ...     w("u1", np.arange(6, dtype=np.float32).reshape(3, 2))
    >>> entry = read_kaldi_map(f"{d}/a.scp")["u1"]
    >>> read_ark_entry(entry).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    from kaldiio.matio import read_matrix_or_vector

    path, offset = parse_ark_entry(entry)
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(5)
        if head[:2] != b"\0B":
            raise ValueError(f"no Kaldi binary matrix at byte {offset} of '{path}' (found {head[:2]!r})")
        _check_claimed_size(f, offset, path)
        f.seek(offset)
        try:
            array, size = read_matrix_or_vector(f, return_size=True)
        except (AssertionError, ValueError, TypeError, struct.error, UnicodeDecodeError) as e:
            raise ValueError(f"malformed Kaldi matrix at byte {offset} of '{path}': "
                             f"{type(e).__name__}: {e}") from None
        # kaldiio counts the size exactly for the uncompressed types only; a truncated compressed
        # matrix fails to reshape above
        if head[2:5] in (b"FM ", b"DM ", b"FV ", b"DV ") and f.tell() - offset < size:
            raise ValueError(f"truncated Kaldi matrix at byte {offset} of '{path}' "
                             f"({f.tell() - offset} of {size} bytes)")
    return array
