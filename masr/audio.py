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


class AudioError(RuntimeError):
    """Audio that cannot be read, or holds no samples; the message names the source."""


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
        Missing, unreadable or empty audio.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(p, np.zeros(4000, dtype=np.float32), 8000)
    >>> wave, sr = read_audio(p)
    >>> wave.shape, sr
    ((8000,), 16000)
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
    wave = wave[:, 0]
    if target_sr is not None and sr != target_sr:
        wave, sr = resample(wave, sr, target_sr), target_sr
    return wave, sr


def audio_info(entry):
    """(num_samples, sample_rate) of a ``wav.scp`` entry without decoding a file path.

    Pipes are run and decoded, since their length is only known by reading them.

    Raises
    ------
    AudioError
        Missing or unreadable audio.
    """
    if _is_pipe(entry):
        wave, sr = read_audio(entry, target_sr=None)
        return len(wave), sr
    try:
        info = sf.info(entry)
    except Exception as e:
        raise AudioError(f"cannot read audio '{entry}': {e}") from None
    return info.frames, info.samplerate
