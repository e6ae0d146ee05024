"""In-process eSpeak NG through ctypes, from the ``espeakng-loader`` wheel (no apt, no network).

eSpeak NG is a formant synthesizer: robotic, but it speaks ~100 languages with their own
letter-to-sound rules, and its voice *variants* (``+m1`` .. ``+f5``) plus pitch, pitch range and
rate give distinguishable pseudo-speakers. The library keeps global state, so there is one
engine per process (use one process per parallel job, never threads), and each utterance is
synthesized in a forked child so that no state leaks from one utterance to the next.

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

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SynthError(RuntimeError):
    """eSpeak NG could not be loaded, or refused a voice or a text."""


class Espeak:
    """The eSpeak NG engine of this process.

    Arguments
    ---------
    library : str or None
        Path of ``libespeak-ng.so``; default: the one bundled by ``espeakng-loader``.
    data_path : str or None
        Folder holding ``espeak-ng-data``'s contents; default: the bundled one.

    Example
    -------
    >>> tts = Espeak()
    >>> tts.sample_rate
    22050
    >>> wav = tts.synth("dobar dan", voice="hr+m3", rate=160, pitch=40)
    >>> wav.dtype, wav.ndim, len(wav) > tts.sample_rate // 2
    (dtype('int16'), 1, True)
    """

    _instance_pid = None

    def __init__(self, library=None, data_path=None):
        if library is None or data_path is None:
            try:
                import espeakng_loader
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise SynthError("the 'espeakng-loader' package is not installed (see requirements.txt)") from e
            library = library or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        try:
            self._lib = ctypes.CDLL(library)
        except OSError as e:
            raise SynthError(f"cannot load eSpeak NG library '{library}': {e}") from None
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        # The data path is the folder *containing* espeak-ng-data when given that way.
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

    def synth(self, text, voice, rate=175, pitch=50, pitch_range=50, word_gap=0, seed=0):
        """Synthesize ``text`` and return 16-bit samples at ``self.sample_rate``.

        eSpeak NG carries state from one utterance to the next (e.g. its pitch-flutter phase),
        so the same call would not give the same samples twice. Each utterance is therefore
        synthesized in a child process forked from this one, whose engine has never spoken:
        the result depends only on the arguments (a fork costs ~1-5 ms; Linux/macOS only).

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
            int16 samples, shape (N,).
        """
        args = (text, voice, rate, pitch, pitch_range, word_gap, seed)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesize once, send the result, exit without cleanup
            os.close(read_fd)
            try:
                payload = b"\0" + self._synth_here(*args).tobytes()
            except BaseException as e:  # noqa: BLE001 - everything must reach the parent
                payload = b"\1" + str(e).encode()
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            payload = inp.read()
        _, status = os.waitpid(pid, 0)
        if not payload or status != 0:
            raise SynthError(f"eSpeak NG child process failed (status {status}) on {text!r} with voice '{voice}'")
        if payload[:1] == b"\1":
            raise SynthError(payload[1:].decode(errors="replace"))
        return np.frombuffer(payload[1:], dtype=np.int16).copy()

    def _synth_here(self, text, voice, rate, pitch, pitch_range, word_gap, seed):
        if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SynthError(f"eSpeak NG has no voice '{voice}'")
        for name, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range), ("wordgap", word_gap)):
            self._lib.espeak_SetParameter(_PARAM[name], int(value), 0)
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        if self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != _EE_OK:
            raise SynthError(f"eSpeak NG failed on text {text!r} with voice '{voice}'")
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise SynthError(f"eSpeak NG produced no audio for {text!r} with voice '{voice}'")
        return np.concatenate(self._chunks)
