"""masr.synth.espeak: in-process eSpeak NG through ctypes."""

import numpy as np
import pytest

from masr.synth.espeak import Espeak, SynthError


@pytest.fixture(scope="module")
def tts():
    return Espeak()


def test_speaks_each_confusable_language(tts):
    for voice, text in [("hr", "dobar dan"), ("sr", "добар дан"), ("ja", "ありがとう"), ("ko", "감사합니다"),
                        ("ur", "شکریہ"), ("hi", "धन्यवाद"), ("nb", "takk skal du ha")]:
        wav = tts.synth(text, voice)
        assert wav.dtype == np.int16 and len(wav) > tts.sample_rate // 4, voice
        assert np.abs(wav).max() > 1000, voice  # not silence


def test_same_call_same_samples_whatever_came_before(tts):
    first = tts.synth("dobar dan prijatelji", "hr+m3", rate=160, pitch=40, seed=7)
    tts.synth("something else entirely", "en+f2", rate=190, pitch=70, pitch_range=80, seed=1)
    again = tts.synth("dobar dan prijatelji", "hr+m3", rate=160, pitch=40, seed=7)
    np.testing.assert_array_equal(first, again)


def test_voice_parameters_change_the_audio(tts):
    slow = tts.synth("dobar dan prijatelji", "hr", rate=120)
    fast = tts.synth("dobar dan prijatelji", "hr", rate=240)
    assert len(slow) > 1.4 * len(fast)
    assert not np.array_equal(tts.synth("dobar dan", "hr+m1"), tts.synth("dobar dan", "hr+f3"))


def test_unknown_voice_is_a_clear_error(tts):
    with pytest.raises(SynthError, match="no voice 'tl'"):
        tts.synth("kumusta", "tl")
