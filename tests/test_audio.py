"""masr.audio: reading wav.scp entries (files and pipes) with resampling."""

import numpy as np
import pytest
import soundfile as sf

from masr.audio import AudioError, audio_info, read_audio, resample


def _tone(sr, seconds=0.5, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr, fmt", [(16000, "WAV"), (8000, "WAV"), (22050, "FLAC"), (44100, "WAV")])
def test_read_resamples_to_16k_and_keeps_the_tone(tmp_path, sr, fmt):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, _tone(sr), sr, format=fmt)
    wave, out_sr = read_audio(str(path))
    assert out_sr == 16000 and wave.dtype == np.float32
    assert abs(len(wave) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440.0) < 3.0  # the tone survives


def test_multichannel_takes_first_channel(tmp_path):
    path = tmp_path / "st.wav"
    stereo = np.stack([_tone(16000), np.zeros(8000, dtype=np.float32)], axis=1)
    sf.write(path, stereo, 16000)
    wave, _ = read_audio(str(path))
    np.testing.assert_allclose(wave, _tone(16000), atol=1e-4)


def test_pipe_entry(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(8000), 8000)
    wave, sr = read_audio(f"cat {path} |")
    assert sr == 16000 and abs(len(wave) - 8000) <= 1
    assert audio_info(f"cat {path} |") == (4000, 8000)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "cannot read audio"),
    (lambda p: p.write_bytes(b"RIFF garbage"), "cannot read audio"),
    (lambda p: sf.write(p, np.zeros(0, dtype=np.float32), 16000), "holds no samples"),
])
def test_bad_audio_is_a_clear_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as err:
        read_audio(str(path))
    assert "bad.wav" in str(err.value)


def test_failing_pipe_names_the_command():
    with pytest.raises(AudioError, match="command 'false ' failed"):
        read_audio("false |")


def test_resample_identity_and_length():
    x = np.ones(100, dtype=np.float32)
    assert resample(x, 16000, 16000) is x
    assert resample(np.ones(441), 22050, 16000).shape == (320,)
