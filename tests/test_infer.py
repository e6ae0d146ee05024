"""masr.infer: the language of a recording, and utterance embeddings, from Python and the CLI."""

import json
import os
import re
import shutil

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import yaml

from masr import infer
from masr.audio import AudioError
from masr.features.fbank import FbankConfig

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


# ---- LangID -----------------------------------------------------------------------------------
def test_language_identifier_gives_the_topk_languages_most_likely_first(models):
    lid = infer.LanguageIdentifier(models["langid"])
    assert lid.languages == ["hrv", "srp", "swe"]
    assert lid.fbank.num_mel_bins == 20  # the filterbanks stored with the model
    wave, _ = sf.read(models["wavs"][0], dtype="float32")
    top = lid.predict(wave, topk=2)
    assert len(top) == 2 and len({lang for lang, _ in top}) == 2
    assert all(lang in lid.languages and 0.0 < p <= 1.0 for lang, p in top)
    assert top[0][1] >= top[1][1] and sum(p for _, p in top) <= 1.0 + 1e-6
    # a path gives the same answer as its samples
    from_path = lid.predict(models["wavs"][0], topk=2)
    assert [lang for lang, _ in from_path] == [lang for lang, _ in top]
    assert np.allclose([p for _, p in from_path], [p for _, p in top], atol=1e-5)
    # more than there are languages: all of them, a distribution
    everything = lid.predict(wave, topk=10)
    assert sorted(lang for lang, _ in everything) == lid.languages
    assert sum(p for _, p in everything) == pytest.approx(1.0, abs=1e-5)
    assert everything[:2] == top


def test_language_identifier_refuses_audio_too_short_for_one_frame(models):
    with pytest.raises((AudioError, ValueError), match="short"):
        infer.LanguageIdentifier(models["langid"]).predict(np.zeros(100, np.float32))


def test_cli_names_the_file_too_short_for_one_frame(models, tmp_path, capsys):
    short = str(tmp_path / "click.wav")
    sf.write(short, np.zeros(100, np.float32), 16000)
    assert infer.main(["langid", "--model", models["langid"], models["wavs"][0], short]) == 1
    assert "click.wav" in capsys.readouterr().err


def test_cli_langid_prints_one_line_per_file(models, capsys):
    assert infer.main(["langid", "--model", models["langid"], "--topk", "2", *models["wavs"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    lid = infer.LanguageIdentifier(models["langid"])
    for line, wav in zip(lines, models["wavs"]):
        path, *pairs = line.split(" ")
        assert path == wav and len(pairs) == 2
        assert all(re.fullmatch(r"(hrv|srp|swe):[01]\.\d{3}", pair) for pair in pairs)
        assert pairs == [f"{lang}:{p:.3f}" for lang, p in lid.predict(wav, topk=2)]


def test_cli_langid_reads_a_wav_scp(models, capsys):
    assert infer.main(["langid", "--model", models["langid"], "--wav-scp", models["scp"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["rec_a", "rec_b"]
    assert all(len(line.split(" ")) == 2 for line in lines)  # top-1 by default


def _fake_asr_folder(models):
    """A model folder that says it is an ASR model (only ``task`` matters before the tokenizer)."""
    folder = str(models["root"] / "exp" / "asr" / "tiny_bestrq" / "seed1")
    if not os.path.isdir(folder):
        shutil.copytree(models["langid"], folder)
        with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
            spec = json.load(f)
        spec["task"] = "asr"
        with open(os.path.join(folder, "model.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
    return folder


def test_a_model_of_another_task_is_refused(models, capsys):
    asr_dir = _fake_asr_folder(models)
    with pytest.raises(ValueError, match=rf"{re.escape(asr_dir)}: a 'asr' model, not a 'langid' model"):
        infer.LanguageIdentifier(asr_dir)
    with pytest.raises(ValueError, match="a 'langid' model, not a 'asr' model"):
        infer.Transcriber(models["langid"])
    assert infer.main(["langid", "--model", asr_dir, models["wavs"][0]]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "error:" in captured.err and "not a 'langid' model" in captured.err


def test_cli_errors(models, tmp_path, capsys):
    missing = str(tmp_path / "not_trained")
    os.makedirs(missing)
    assert infer.main(["langid", "--model", missing, models["wavs"][0]]) == 1
    assert re.search(rf"error: .*{re.escape(missing)}", capsys.readouterr().err)
    assert infer.main(["langid", "--model", models["langid"], str(tmp_path / "nope.wav")]) == 1
    assert "nope.wav" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="give audio files or --wav-scp"):
        infer.main(["langid", "--model", models["langid"]])


# ---- embeddings -------------------------------------------------------------------------------
def test_cli_embed_writes_a_kaldiio_ark(models, tmp_path, capsys):
    out = str(tmp_path / "emb")
    assert infer.main(["embed", "--model", models["run"], "--fbank-config", models["fbank"],
                       "--wav-scp", models["scp"], "--out", out]) == 0
    assert "wrote 2 embeddings" in capsys.readouterr().out
    vectors = dict(kaldiio.load_scp(out + ".scp"))
    assert sorted(vectors) == ["rec_a", "rec_b"]
    with open(models["fbank"], encoding="utf-8") as f:
        embedder = infer.Embedder(models["run"], fbank=FbankConfig(**yaml.safe_load(f)))
    for utt, wav in (("rec_a", models["wavs"][0]), ("rec_b", models["wavs"][1])):
        assert vectors[utt].shape == (32,)
        assert np.allclose(vectors[utt], embedder(wav), atol=1e-5)
    assert not np.allclose(vectors["rec_a"], vectors["rec_b"])


def test_cli_embed_prints_without_out(models, capsys):
    assert infer.main(["embed", "--model", models["run"], "--fbank-config", models["fbank"], "--layer", "1",
                       models["wavs"][1]]) == 0
    [line] = capsys.readouterr().out.splitlines()
    path, *values = line.split(" ")
    assert path == models["wavs"][1] and len(values) == 32
    with open(models["fbank"], encoding="utf-8") as f:
        layer1 = infer.Embedder(models["run"], layer=1, fbank=FbankConfig(**yaml.safe_load(f)))(models["wavs"][1])
    assert np.allclose([float(v) for v in values], layer1, atol=1e-4)
