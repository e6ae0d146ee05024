"""eSpeak NG through ctypes, from the ``espeakng-loader`` wheel (no apt, no network).

eSpeak NG is a formant synthesizer: robotic, but it speaks ~100 languages with their own
letter-to-sound rules, and its voice *variants* (``+m1`` .. ``+f5``) plus pitch, pitch range and
rate give distinguishable pseudo-speakers.

Determinism. The library keeps global state from one utterance to the next (e.g. its
pitch-flutter phase), so synthesizing the same text twice in one process gives different
samples. :class:`Espeak` therefore runs a small *zygote* process (a fresh interpreter that has
loaded the library and never spoken) and synthesizes every utterance in a child forked from it:
the samples depend only on the arguments, whatever was synthesized before and in whichever
worker. Forking the small zygote costs about a millisecond, independent of how much memory the
calling process holds (Linux/macOS only: it needs ``fork``).

The C API used (``speak_lib.h``)::

    int  espeak_Initialize(espeak_AUDIO_OUTPUT output, int buflength, const char *path, int options);
    void espeak_SetSynthCallback(int (*cb)(short *wav, int numsamples, espeak_EVENT *events));
    int  espeak_SetVoiceByName(const char *name);
    int  espeak_SetParameter(espeak_PARAMETER parameter, int value, int relative);
    int  espeak_Synth(const void *text, size_t size, unsigned int position, int position_type,
                      unsigned int end_position, unsigned int flags, unsigned int *uid, void *user_data);
    int  espeak_Synchronize(void);
    void espeak_ng_SetRandSeed(long seed);
"""

import ctypes
import os
import pickle
import struct
import subprocess
import sys

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SynthError(RuntimeError):
    """eSpeak NG could not be loaded, or refused a voice or a text."""


class _Engine:
    """The library loaded in *this* process (used inside the zygote's children)."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise SynthError("the 'espeakng-loader' package is not installed (see requirements.txt)") from e
        library, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            lib = self._lib = ctypes.CDLL(library)
        except OSError as e:
            raise SynthError(f"cannot load eSpeak NG library '{library}': {e}") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        # espeak_Initialize wants the folder *containing* espeak-ng-data.
        parent = os.path.dirname(os.path.abspath(data_path))
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, parent.encode(), 0)
        if self.sample_rate <= 0:
            raise SynthError(f"espeak_Initialize failed with data '{data_path}'")
        self._libc = ctypes.CDLL(None)  # eSpeak NG also draws from libc's rand()
        self._chunks = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def synth(self, text, voice, rate, pitch, pitch_range, word_gap, seed):
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SynthError(f"eSpeak NG has no voice '{voice}'")
        for name, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range), ("wordgap", word_gap)):
            self._lib.espeak_SetParameter(_PARAM[name], int(value), 0)
        self._lib.espeak_ng_SetRandSeed(seed)
        self._libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        if self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != _EE_OK:
            raise SynthError(f"eSpeak NG failed on text {text!r} with voice '{voice}'")
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise SynthError(f"eSpeak NG produced no audio for {text!r} with voice '{voice}'")
        return np.concatenate(self._chunks)


# ---- framing of the zygote protocol: 8-byte length, then a pickle ----------------------------

def _send(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))


def _serve(requests, replies):
    """The zygote's loop: one forked child per request, the child's answer relayed back."""
    try:
        engine = _Engine()
    except SynthError as e:
        _send(replies, ("error", str(e)))
        return
    _send(replies, ("ready", engine.sample_rate))
    while True:
        try:
            args = _receive(requests)
        except EOFError:
            return
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: speak once from the pristine state, answer, exit without cleanup
            os.close(read_fd)
            try:
                answer = ("ok", engine.synth(*args).tobytes())
            except BaseException as e:  # noqa: BLE001 - every failure must reach the caller
                answer = ("error", str(e))
            with os.fdopen(write_fd, "wb") as out:
                _send(out, answer)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            try:
                answer = _receive(inp)
            except EOFError:
                answer = None
        _, status = os.waitpid(pid, 0)
        if answer is None:
            answer = ("error", f"eSpeak NG crashed (wait status {status}) on {args[0]!r} with voice '{args[1]}'")
        _send(replies, answer)


class Espeak:
    """eSpeak NG: deterministic synthesis through a zygote process (see the module docstring).

    Example
    -------
    >>> tts = Espeak()
    >>> tts.sample_rate
    22050
    >>> wav = tts.synth("dobar dan", voice="hr+m3", rate=160, pitch=40)
    >>> wav.dtype, wav.ndim, len(wav) > tts.sample_rate // 2
    (dtype('int16'), 1, True)
    >>> bool((wav == tts.synth("dobar dan", voice="hr+m3", rate=160, pitch=40)).all())
    True
    >>> tts.close()
    """

    def __init__(self):
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen([sys.executable, "-m", "masr.synth.espeak"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        kind, value = self._call(None)
        if kind != "ready":
            self.close()
            raise SynthError(value)
        self.sample_rate = value

    def _call(self, request):
        try:
            if request is not None:
                _send(self._proc.stdin, request)
            return _receive(self._proc.stdout)
        except (EOFError, BrokenPipeError):
            raise SynthError(f"the eSpeak NG zygote process exited (code {self._proc.poll()})") from None

    def synth(self, text, voice, rate=175, pitch=50, pitch_range=50, word_gap=0, seed=0):
        """Synthesize ``text`` and return 16-bit samples at ``self.sample_rate``.

        Arguments
        ---------
        text : str
            UTF-8 text in the voice's language.
        voice : str
            eSpeak voice name, optionally with a variant: ``"sv"``, ``"sv+f2"``.
        rate : int
            Words per minute (80-450).
        pitch, pitch_range : int
            Base pitch and pitch range, 0-100 (50 is the voice's default).
        word_gap : int
            Extra pause between words, in units of 10 ms.
        seed : int
            Seed of the synthesizer's noise sources (breath, frication).

        Returns
        -------
        numpy.ndarray
            int16 samples, shape (N,); the same arguments always give the same samples.

        Raises
        ------
        SynthError
            Unknown voice, or no audio produced.
        """
        kind, value = self._call((text, voice, int(rate), int(pitch), int(pitch_range), int(word_gap), int(seed)))
        if kind != "ok":
            raise SynthError(value)
        return np.frombuffer(value, dtype=np.int16).copy()

    def close(self):
        """Stop the zygote process (also done when the object is garbage-collected)."""
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=10)
            proc.stdout.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
