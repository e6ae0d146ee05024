"""Model and checkpoint files are data: loading a crafted one raises instead of running code."""

import json
import os

import pytest
import torch

from masr.downstream.finetune import load_finetuned
from masr.downstream.pretrained import load_encoder
from masr.ssl.encoder_file import encoder_from_spec, encoder_spec
from masr.ssl.bestrq import BestRQ
from masr.train.checkpoint import CheckpointError, load_checkpoint, load_model_weights, save_checkpoint


class RunsCode:
    """Unpickling this calls os.system: what a malicious model file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny():
    return BestRQ(input_dim=20, d_model=16, num_layers=1, nhead=2, d_ffn=32, kernel_size=3, codebook_size=8)


def test_a_pickled_payload_in_encoder_pt_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    with open(tmp_path / "encoder.pt", "wb") as f:
        torch.save({"encoder": RunsCode(str(marker)), "state_dict": {}}, f)
    with pytest.raises(ValueError, match="encoder.pt: not an encoder file.*UnpicklingError"):
        load_encoder(str(tmp_path / "encoder.pt"))
    assert not marker.exists()


def test_a_pickled_payload_in_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = save_checkpoint(str(tmp_path / "checkpoints"), 1, {"model": tiny().state_dict(), "x": RunsCode(str(marker))})
    with pytest.raises(CheckpointError, match="state.pt: cannot be loaded.*UnpicklingError"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="state.pt: cannot be loaded.*UnpicklingError"):
        load_model_weights(tiny(), path)
    assert not marker.exists()


def test_an_honest_checkpoint_loads_with_its_random_state(tmp_path):
    path = save_checkpoint(str(tmp_path / "checkpoints"), 1, {"model": tiny().state_dict(), "trainer": {"step": 1}})
    state, rng = load_checkpoint(path)
    assert state["trainer"]["step"] == 1 and set(rng) >= {"python", "numpy", "torch"}


@pytest.mark.parametrize("name", ["subprocess.run", "os.system", "masr.ssl.bestrq.torch.load", "builtins.eval"])
def test_model_files_may_only_name_masr_encoders(name):
    spec = encoder_spec(tiny())
    spec["class"] = name
    with pytest.raises(ValueError, match="not one of masr's encoders"):
        encoder_from_spec(spec)


def test_encoder_hparams_must_be_plain_values():
    spec = encoder_spec(tiny())
    spec["hparams"]["cmvn"] = {"__class__": "x", "nested": [object()]}
    with pytest.raises(ValueError, match="hparams must be a mapping of numbers, strings"):
        encoder_from_spec(spec)


def test_a_fine_tuned_model_cannot_point_outside_its_folder(tmp_path):
    outside = tmp_path / "elsewhere"
    save_checkpoint(str(outside), 1, {"model": {}})
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    spec = {"task": "langid", "encoder": encoder_spec(tiny()), "num_outputs": 3, "pooled": True, "layer": None,
            "checkpoint": "../elsewhere/step-00000001"}
    (model_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="outside the model folder"):
        load_finetuned(str(model_dir))


def test_a_file_whose_name_ends_in_a_pipe_is_read_as_a_file_not_run(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    from masr.audio import read_audio

    monkeypatch.chdir(tmp_path)
    name = "x; touch PWNED |"
    sf.write(str(tmp_path / "a.wav"), np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    os.rename(tmp_path / "a.wav", tmp_path / name)
    wave, sr = read_audio(name)
    assert wave.shape == (1600,) and sr == 16000
    assert not (tmp_path / "PWNED").exists()


def test_infer_takes_only_files_as_positional_arguments(tmp_path, monkeypatch, capsys):
    from masr import infer

    monkeypatch.chdir(tmp_path)
    assert infer.main(["embed", "--model", str(tmp_path), "touch PWNED |"]) == 1
    assert "'touch PWNED |' is not a file" in capsys.readouterr().err
    assert not (tmp_path / "PWNED").exists()
