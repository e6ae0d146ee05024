"""masr.audio: reading wav.scp entries (files and pipes) with resampling."""

import numpy as np
import pytest
import soundfile as sf

from masr.audio import AudioError, audio_info, check_finite, read_audio, resample


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


def _with_nonfinite(n=1000):
    """Silence with a NaN at sample 400 and 11 infs from sample 500: 12 non-finite samples."""
    x = np.zeros(n, dtype=np.float32)
    x[400] = np.nan
    x[500:511] = np.inf
    return x


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_read_audio_refuses_nan_and_inf_naming_the_file(tmp_path, subtype):
    path = tmp_path / "nan.wav"
    sf.write(path, _with_nonfinite(), 16000, subtype=subtype)
    with pytest.raises(AudioError) as err:
        read_audio(str(path))
    assert str(err.value) == f"audio '{path}' has 12 NaN/inf samples (first at sample 400)"


def test_check_finite_decodes_float_files_in_blocks(tmp_path):
    path = tmp_path / "f.wav"
    x = np.zeros(1000, dtype=np.float32)
    sf.write(path, x, 16000, subtype="FLOAT")
    assert check_finite(str(path), block_frames=256) is True  # finite float audio: read, accepted
    x[700] = np.nan  # in the third block of 256 frames
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"has 1 NaN/inf samples \(first at sample 700\)"):
        check_finite(str(path), block_frames=256)


def test_check_finite_does_not_decode_integer_pcm(tmp_path, monkeypatch):
    path = tmp_path / "pcm.wav"
    sf.write(path, _tone(16000), 16000, subtype="PCM_16")

    def no_decoding(*args, **kwargs):
        raise AssertionError("integer PCM was decoded")

    monkeypatch.setattr(sf.SoundFile, "blocks", no_decoding)
    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    assert check_finite(str(path)) is False
