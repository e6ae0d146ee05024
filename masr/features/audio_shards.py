"""Audio shards: encoded audio in plain tar files, from which the filterbanks are computed on the fly.

Stored features of 429k hours take about 49 TB (80 float32 values per 10 ms: 256 kbit/s, as much as
16 kHz 16-bit audio before compression); the audio itself, as FLAC, takes about half of that
(lossless), as Ogg Opus a small fraction (lossy). With ``--audio-shards`` the features stage
(:mod:`masr.features.extract`) writes, instead of feature arks::

    <out>/data/audio.<k>.tar   plain (uncompressed) tar files, one per shard
    <out>/audio.scp            utt -> <out>/data/audio.<k>.tar:<byte offset of the member's header>
    <out>/fbank.json           the FbankConfig, so readers compute the same filterbanks

``audio.scp`` has the ``<path>:<byte offset>`` shape of ``feats.scp``
(:func:`masr.data.datadir.parse_ark_entry` parses it, :func:`masr.data.shards.shard_of_items`
works unchanged). The offset is that of the member's 512-byte tar header, so a reader seeks there
and reads one header and the member's bytes. Members are named by their index in the shard
(``000000.flac``, ``000001.opus``, ...): short names, never GNU long-name headers; ``tar tf``
lists them.

**What a member holds** (:func:`member_bytes`). The reader decodes a member and resamples it to
the target rate with :func:`masr.audio.resample`, exactly as :func:`masr.audio.read_audio` does a
file (:func:`decode_member`); so a member holding the source's samples at the source's rate gives
the very features of a stored dump. Where the source allows it, a member is therefore lossless:

- a plain file in FLAC or Ogg Opus, mono, is copied byte for byte, at whatever rate it has (no
  re-encoding; a 22.05 or 48 kHz FLAC thus takes more disk than 16 kHz would);
- audio whose samples are 16-bit values (16-bit PCM WAV, a WAV pipe, ...) is stored as 16-bit
  FLAC: at the target rate, or at the source file's own rate where that is lower (8 kHz telephone
  audio: half the samples, and features still exact).

Any other audio (float or 24-bit sources, lossy codecs such as MP3 or Vorbis, non-FLAC sources
above the target rate, pipes that need resampling) is stored as decoded by ``read_audio``, at the
target rate, encoded with the chosen codec:

- ``flac``: 16-bit FLAC, the resolution of nearly every speech corpus. This quantises the float
  decode (half a 16-bit step at most), which moves the log-mel features in the low-energy mel bins
  (``tests/test_audio_shards.py``, a float source: max / mean absolute difference 0.002 / 4e-5 at
  a 0 dBFS peak, 0.04 / 4e-4 at -20 dBFS, 0.16 / 4e-3 at -40 dBFS; far below what the lossy
  codecs such sources mostly come from, e.g. MP3, change). (24-bit
  FLAC was measured too: resampled speech then takes 124 MB per hour, more than the stored
  features' 115, since its low bits are noise to FLAC; and even a one-ulp change of the float32
  samples moves the lowest mel bins by up to 7e-4, so no re-encoding keeps them within 1e-4.)
- ``opus``: Ogg Opus (where the installed libsndfile supports it, see :func:`check_codec`), for far
  less disk. Opus is lossy: features computed from Opus shards are *not* those of a stored dump
  (and ``cmvn.ark`` is that of the source audio); the frame counts are kept (Opus keeps the
  sample count). That is the user's choice of disk over fidelity. FLAC and Opus files are still
  copied unchanged; 16-bit audio is encoded to Opus too.

Samples are clipped to [-1, 1] before encoding (FLAC stores integers); the features of a float
source with louder samples thus differ from the stored ones.
"""

import collections
import io
import os
import stat
import tarfile

import numpy as np
import soundfile as sf

from masr.audio import AudioError, resample
from masr.data.datadir import parse_ark_entry

#: Codecs for audio that must be encoded (``--audio-codec``).
CODECS = ("flac", "opus")

#: The listing of an audio dump (instead of ``feats.scp``), and its filterbank options.
AUDIO_SCP = "audio.scp"
FBANK_JSON = "fbank.json"

_BLOCK = tarfile.BLOCKSIZE

#: Sample rates a member may have (anything else is a damaged or crafted file).
MIN_RATE, MAX_RATE = 1000, 384000

#: Tar files a reading process keeps open (an LRU, per process): consecutive items of a batch come
#: from the few shards a rank reads at a time, so a file is not opened per utterance.
OPEN_FILES = 8
_open = collections.OrderedDict()   # path -> (fd, size); emptied in a forked child (another pid)
_open_pid = [None]


def check_codec(codec):
    """Refuse a codec that is unknown or that this libsndfile cannot encode.

    Example
    -------
    >>> check_codec("flac")
    >>> check_codec("mp3")
    Traceback (most recent call last):
    ...
    ValueError: unknown audio codec 'mp3' (choose from flac, opus)
    """
    if codec not in CODECS:
        raise ValueError(f"unknown audio codec '{codec}' (choose from {', '.join(CODECS)})")
    if codec == "opus" and "OPUS" not in sf.available_subtypes("OGG"):
        raise ValueError(f"audio codec 'opus': this libsndfile ({sf.__libsndfile_version__}) cannot write "
                         f"Ogg Opus (needs libsndfile >= 1.0.29 built with Opus); use --audio-codec flac")


def _copyable(entry):
    """The member suffix when the ``wav.scp`` entry is a file to copy unchanged, else None."""
    if not os.path.isfile(entry):   # a command ending in '|' is never copied
        return None
    try:
        info = sf.info(entry)
    except Exception:  # read_audio decoded it, but be safe: encode instead
        return None
    if info.channels != 1:
        return None
    if info.format == "FLAC":
        return "flac"
    if info.format == "OGG" and info.subtype == "OPUS":
        return "opus"
    return None


def _is_16_bit(wave):
    """Whether every float32 sample is a 16-bit PCM value (k / 32768, -32768 <= k < 32768)."""
    scaled = wave * np.float32(32768)
    return bool(np.array_equal(scaled, np.round(scaled)) and scaled.min() >= -32768 and scaled.max() < 32768)


def _encode(wave, sample_rate, **kwargs):
    buf = io.BytesIO()
    try:
        sf.write(buf, wave, sample_rate, **kwargs)
    except Exception as e:  # e.g. Opus at a rate it does not support
        raise ValueError(f"cannot encode the audio as {kwargs} at {sample_rate} Hz: {e}") from None
    return buf.getvalue()


def member_bytes(entry, wave, sample_rate, target_sr, codec="flac"):
    """The bytes of an utterance's shard member, and the member's suffix (module docstring).

    Arguments
    ---------
    entry : str
        The utterance's ``wav.scp`` entry (a file path or a command ending in ``|``).
    wave : numpy.ndarray
        Its samples at their own rate, as ``masr.audio.read_audio(entry, None)`` returns them:
        float32, mono (the first channel).
    sample_rate : int
        Their rate.
    target_sr : int
        The filterbanks' rate (``FbankConfig.sample_rate``).
    codec : str
        ``"flac"`` or ``"opus"``, for audio that is not copied.

    Returns
    -------
    data : bytes
        The encoded audio (the source file's bytes when copied).
    suffix : str
        ``"flac"`` or ``"opus"``.

    Raises
    ------
    ValueError
        An unknown or unsupported codec, or audio it cannot encode.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.flac")
    >>> sf.write(p, np.zeros(1600, dtype=np.float32), 16000)
    >>> data, suffix = member_bytes(p, np.zeros(1600, np.float32), 16000, 16000)
    >>> data == open(p, "rb").read(), suffix      # a FLAC file: copied, at whatever rate it has
    (True, 'flac')
    >>> data, suffix = member_bytes("sph2pipe a.sph |", np.full(800, 0.25, np.float32), 8000, 16000)
    >>> suffix, sf.info(io.BytesIO(data)).samplerate  # 16-bit audio at 8 kHz: lossless, kept at 8 kHz
    ('flac', 8000)
    >>> data, suffix = member_bytes("sox a.mp3 -t wav - |", np.full(1600, 0.1, np.float32), 16000, 16000)
    >>> suffix, sf.info(io.BytesIO(data)).subtype   # float samples: 16-bit FLAC of them
    ('flac', 'PCM_16')
    """
    check_codec(codec)
    suffix = _copyable(entry)
    if suffix is not None:
        with open(entry, "rb") as f:
            return f.read(), suffix
    wave = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    if codec == "opus":
        return _encode(resample(wave, sample_rate, target_sr), target_sr, format="OGG", subtype="OPUS"), "opus"
    if sample_rate <= target_sr and _is_16_bit(wave):   # lossless: resampled when read, as read_audio does
        return _encode(wave, sample_rate, format="FLAC", subtype="PCM_16"), "flac"
    return _encode(resample(wave, sample_rate, target_sr), target_sr, format="FLAC", subtype="PCM_16"), "flac"


def decode_member(data, target_sr, max_samples=None):
    """Decode a member's bytes as :func:`masr.audio.read_audio` decodes a file.

    Arguments
    ---------
    data : bytes
        FLAC or Ogg Opus (any format libsndfile reads).
    target_sr : int
        Resampled to this rate (:func:`masr.audio.resample`, as ``read_audio`` does) if needed.
    max_samples : int or None
        Refuse audio that would give more samples at ``target_sr`` (checked from the header, before
        decoding: a crafted member cannot make a reader allocate more).

    Returns
    -------
    numpy.ndarray
        float32, shape (N,): the first channel.

    Raises
    ------
    AudioError
        Undecodable or empty audio, a rate outside [``MIN_RATE``, ``MAX_RATE``], more samples than
        ``max_samples``, or NaN/inf samples.
    """
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, ...
        raise AudioError(f"cannot decode the audio: {e}") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(f"the audio claims {info.samplerate} Hz, outside [{MIN_RATE}, {MAX_RATE}]")
    if max_samples is not None and info.frames * target_sr > max_samples * info.samplerate:
        raise AudioError(f"the audio claims {info.frames} samples at {info.samplerate} Hz, more than the "
                         f"{max_samples} its frame count allows at {target_sr} Hz")
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"cannot decode the audio: {e}") from None
    if wave.shape[0] == 0:
        raise AudioError("the audio holds no samples")
    wave = wave[:, 0]
    if not np.isfinite(wave).all():
        raise AudioError("the audio holds NaN/inf samples")
    return resample(wave, sr, target_sr)


def write_member(f, index, data, suffix):
    """Append one member ``<index:06d>.<suffix>`` to a tar file being written; its header's offset.

    Arguments
    ---------
    f : binary file
        Open for writing at the end of the previous member (or at 0).
    index : int
        The member's index in the shard.
    data : bytes
    suffix : str

    Returns
    -------
    int
        The byte offset of the member's 512-byte header (the ``audio.scp`` offset).
    """
    info = tarfile.TarInfo(f"{index:06d}.{suffix}")
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    offset = f.tell()
    f.write(info.tobuf(format=tarfile.USTAR_FORMAT))
    f.write(data)
    f.write(tarfile.NUL * (-len(data) % _BLOCK))
    return offset


def finish_tar(f):
    """End a tar file written by :func:`write_member` (two zero blocks)."""
    f.write(tarfile.NUL * (2 * _BLOCK))


def read_member(entry):
    """The bytes of the tar member that an ``audio.scp`` entry points at.

    The entry is checked by :func:`masr.data.datadir.parse_ark_entry` (``<tar path>:<offset>``,
    no command is ever run) and the tar is opened as a plain file; at the offset must be the
    512-byte header of a regular file member, whose ``size`` bytes follow.

    Arguments
    ---------
    entry : str
        ``<tar path>:<byte offset of the member's header>``.

    Returns
    -------
    bytes

    The tar stays open for the next entries (an LRU of :data:`OPEN_FILES` per process, read with
    ``pread``): consecutive items come from the few shards a rank reads at a time, so a file is
    opened per shard, not per utterance (a metadata round trip each on a network file system).

    Raises
    ------
    ValueError
        A malformed entry, an offset past the end, no valid tar header at the offset (or not a
        regular file's), or a truncated member; the message names the entry.
    OSError
        A tar that cannot be opened.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.tar")
    >>> with open(p, "wb") as f:
    ...     offsets = [write_member(f, i, data, "flac") for i, data in enumerate([b"abc", b"de"])]
    ...     finish_tar(f)
    >>> offsets, read_member(f"{p}:{offsets[1]}")
    ([0, 1024], b'de')
    >>> tarfile.open(p).getnames()
    ['000000.flac', '000001.flac']
    >>> read_member(f"{p}:3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: audio entry '...a.tar:3': no tar header at byte 3 (...)
    """
    path, offset = parse_ark_entry(entry)
    fd, end = _opened(path)
    if offset + _BLOCK > end:
        raise ValueError(f"audio entry '{entry}': offset {offset} is past the end of '{path}' "
                         f"({end} bytes, a tar header takes {_BLOCK})")
    try:
        info = tarfile.TarInfo.frombuf(os.pread(fd, _BLOCK, offset), "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        raise ValueError(f"audio entry '{entry}': no tar header at byte {offset} ({e})") from None
    if not info.isreg():
        raise ValueError(f"audio entry '{entry}': the tar member '{info.name}' at byte {offset} "
                         f"is not a regular file (type {info.type!r})")
    if info.size < 0 or offset + _BLOCK + info.size > end:
        raise ValueError(f"audio entry '{entry}': the tar member '{info.name}' is truncated or damaged "
                         f"({info.size} bytes claimed, {end - offset - _BLOCK} in the file)")
    data = os.pread(fd, info.size, offset + _BLOCK)
    if len(data) != info.size:   # the tar shrank since this process opened it
        raise ValueError(f"audio entry '{entry}': the tar member '{info.name}' is truncated "
                         f"({info.size} bytes claimed, {len(data)} read)")
    return data


def close_open_files():
    """Close the tars this process keeps open (:data:`OPEN_FILES`). A process reading a dump keeps
    its newest tars open: a tar replaced or deleted under it is read as it was when opened (do not
    extract again into a dump in use), until this is called."""
    for fd, _ in _open.values():
        os.close(fd)
    _open.clear()


def _opened(path):
    """(file descriptor, size) of a tar, from this process's small LRU of open files."""
    if _open_pid[0] != os.getpid():   # a forked DataLoader worker: close its copies of the parent's
        for fd, _ in _open.values():
            os.close(fd)
        _open.clear()
        _open_pid[0] = os.getpid()
    if path in _open:
        _open.move_to_end(path)
        return _open[path]
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO must not block
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"'{path}' is not a plain file")
        _open[path] = (fd, os.fstat(fd).st_size)
    except BaseException:
        os.close(fd)
        raise
    while len(_open) > OPEN_FILES:
        os.close(_open.popitem(last=False)[1][0])
    return _open[path]
