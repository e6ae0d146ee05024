"""Reading audio named by a ``wav.scp`` entry, with soundfile (no FFmpeg needed).

A ``wav.scp`` value is either a file path (any format libsndfile reads: WAV, FLAC, OGG/Opus,
...) or, as in Kaldi, a shell command ending in ``|`` whose standard output is a WAV stream
(e.g. ``sox in.mp3 -t wav -r 16000 - |``).
"""

import io
import math
import os
import subprocess

import numpy as np
import soundfile as sf

TARGET_SAMPLE_RATE = 16000

#: Frames decoded at a time by :func:`check_finite` (bounds its memory: 64k frames per channel).
BLOCK_FRAMES = 1 << 16


class AudioError(RuntimeError):
    """Audio that cannot be read, holds no samples, or holds NaN/inf; the message names the source."""


def is_float_subtype(subtype):
    """Whether a soundfile ``subtype`` stores samples as floating point (so they can be NaN or inf).

    Example
    -------
    >>> is_float_subtype("FLOAT"), is_float_subtype("DOUBLE"), is_float_subtype("PCM_16")
    (True, True, False)
    """
    return subtype is not None and ("FLOAT" in subtype or "DOUBLE" in subtype)


def _nonfinite_message(entry, count, first):
    return f"audio '{entry}' has {count} NaN/inf samples (first at sample {first})"


def _nonfinite(block):
    """(count of non-finite values, first frame holding one) of a (frames, channels) block."""
    bad = ~np.isfinite(block)
    count = int(bad.sum())
    return count, (int(np.argmax(bad.any(axis=1))) if count else None)


def _is_pipe(entry):
    """A ``wav.scp`` command: ends in ``|`` and is not the name of an existing file (a file whose
    name ends in ``|`` is read as a file, never run)."""
    return entry.rstrip().endswith("|") and not os.path.isfile(entry)


def _run_pipe(entry):
    cmd = entry.rstrip()[:-1]
    proc = subprocess.run(cmd, shell=True, capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"command '{cmd}' failed ({proc.returncode}): {err[-1] if err else ''}")
    return io.BytesIO(proc.stdout)


def resample(wave, orig_sr, target_sr):
    """Band-limited polyphase resampling (``scipy.signal.resample_poly``) of a 1-D array.

    Arguments
    ---------
    wave : numpy.ndarray
        Samples, shape (N,).
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    numpy.ndarray
        float32 samples, shape (ceil(N * target_sr / orig_sr),).

    Example
    -------
    >>> resample(np.zeros(8000, dtype=np.float32), 8000, 16000).shape
    (16000,)
    >>> resample(np.zeros(22050, dtype=np.float32), 22050, 16000).shape
    (16000,)
    """
    if orig_sr == target_sr:
        return wave.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(int(orig_sr), int(target_sr))
    return resample_poly(wave, target_sr // g, orig_sr // g).astype(np.float32, copy=False)


def read_audio(entry, target_sr=TARGET_SAMPLE_RATE):
    """Read a ``wav.scp`` entry as mono float32 samples in [-1, 1], resampled to ``target_sr``.

    Arguments
    ---------
    entry : str
        A file path, or a shell command ending in ``|`` that writes audio to stdout.
    target_sr : int or None
        Resample to this rate; ``None`` keeps the file's own rate.

    Returns
    -------
    wave : numpy.ndarray
        float32, shape (N,); the first channel of multi-channel audio (as Kaldi does).
    sample_rate : int

    Raises
    ------
    AudioError
        Missing, unreadable or empty audio, or audio with NaN or inf samples (possible in
        float-coded files; the message gives their count and the first one's sample index,
        counted over all channels).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(p, np.zeros(4000, dtype=np.float32), 8000)
    >>> wave, sr = read_audio(p)
    >>> wave.shape, sr
    ((8000,), 16000)
    >>> sf.write(p, np.full(10, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    >>> read_audio(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.audio.AudioError: audio '...a.wav' has 10 NaN/inf samples (first at sample 0)
    """
    try:
        source = _run_pipe(entry) if _is_pipe(entry) else entry
        wave, sr = sf.read(source, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, OSError
        raise AudioError(f"cannot read audio '{entry}': {e}") from None
    if wave.shape[0] == 0:
        raise AudioError(f"audio '{entry}' holds no samples")
    count, first = _nonfinite(wave)
    if count:
        raise AudioError(_nonfinite_message(entry, count, first))
    wave = wave[:, 0]
    if target_sr is not None and sr != target_sr:
        wave, sr = resample(wave, sr, target_sr), target_sr
    return wave, sr


def audio_info(entry):
    """(num_samples, sample_rate) of a ``wav.scp`` entry without decoding a file path.

    Pipes are run and decoded, since their length is only known by reading them (so a pipe's
    NaN or inf samples are refused here, as by :func:`read_audio`).

    Arguments
    ---------
    entry : str
        A file path, or a shell command ending in ``|``.

    Returns
    -------
    num_samples : int
        Frames (samples per channel).
    sample_rate : int

    Raises
    ------
    AudioError
        Missing or unreadable audio.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(p, np.zeros(4000, dtype=np.float32), 8000)
    >>> audio_info(p)
    (4000, 8000)
    """
    if _is_pipe(entry):
        wave, sr = read_audio(entry, target_sr=None)
        return len(wave), sr
    try:
        info = sf.info(entry)
    except Exception as e:
        raise AudioError(f"cannot read audio '{entry}': {e}") from None
    return info.frames, info.samplerate


def check_finite(path, block_frames=BLOCK_FRAMES):
    """Refuse a float-coded audio file holding NaN or inf samples, decoding it block by block.

    Only files whose soundfile subtype is floating point (``FLOAT``, ``DOUBLE``, ...) are
    decoded: integer PCM (and other integer codings) cannot hold NaN or inf, so those files are
    not read beyond their header. Samples are decoded as float32, as :func:`read_audio` does.

    Arguments
    ---------
    path : str
        An audio file (not a pipe).
    block_frames : int
        Frames decoded at a time, which bounds the memory used.

    Returns
    -------
    bool
        Whether the samples were read (``False`` for integer-coded files).

    Raises
    ------
    AudioError
        Unreadable audio, or NaN/inf samples: the message gives their count (over all channels)
        and the index of the first sample holding one.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> x = np.zeros(1000, dtype=np.float32); x[400:412] = np.nan
    >>> sf.write(p, x, 16000, subtype="PCM_16")
    >>> check_finite(p)
    False
    >>> sf.write(p, x, 16000, subtype="FLOAT")
    >>> check_finite(p, block_frames=256)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.audio.AudioError: audio '...a.wav' has 12 NaN/inf samples (first at sample 400)
    """
    count, first, start = 0, None, 0
    try:
        with sf.SoundFile(path) as f:
            if not is_float_subtype(f.subtype):
                return False
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                n, at = _nonfinite(block)
                if n and first is None:
                    first = start + at
                count += n
                start += len(block)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, OSError
        raise AudioError(f"cannot read audio '{path}': {e}") from None
    if count:
        raise AudioError(_nonfinite_message(path, count, first))
    return True
