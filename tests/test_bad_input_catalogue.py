"""The bad-input catalogue: each kind of broken input a user may hand the toolkit, run through the
recipe's own stages (``recipes/masr.sh``) or, for model files and archives, the entry point that
reads them.

Every case must stop with a non-zero exit status, a message that names the file and the line or
utterance at fault, no Python traceback, and no stamp for the failing stage (nothing is marked
done that is not). The data-dir cases are those of ``tests/test_validate.py`` (``BROKEN``, in
``tests/helpers/validate_cases.py``), met here as stage 1 meets them; the others are listed below.
"""

import os
import pickle
import shutil
import subprocess
import tarfile
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from masr.data.datadir import read_kaldi_map, write_kaldi_map
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import tiny_bestrq_config
from tests.helpers.validate_cases import BROKEN, SPEC, SR, set_value, wav_path

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "masr.sh"
FBANK = ROOT / "egs" / "mini" / "conf" / "fbank.yaml"

#: Stage 3's pretraining: a tiny BEST-RQ, 12 steps (more than one epoch), a checkpoint every 6.
TINY = tiny_bestrq_config(cpu_threads=1, max_steps=12, checkpoint_every=6, max_nonfinite_steps=0)


def recipe(tmp, *options, stage, stop_stage):
    """Run recipes/masr.sh on ``tmp/data/train`` (stage 1's preparation does nothing)."""
    (tmp / "prepare.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    (tmp / "prepare.sh").chmod(0o755)
    (tmp / "tiny.yaml").write_text(TINY)
    args = [RECIPE, "--splits", "train", "--local-data", tmp / "prepare.sh", "--data", tmp / "data",
            "--dump", tmp / "dump", "--exp", tmp / "exp", "--fbank-config", FBANK, "--nj", "1",
            "--pretrain-configs", tmp / "tiny.yaml", "--pretrain-set", "train", "--valid-set", "train",
            "--stage", str(stage), "--stop-stage", str(stop_stage), *options]
    return subprocess.run([str(a) for a in args], cwd=tmp, capture_output=True, text=True, timeout=300)


STAGES = {1: "data", 2: "features", 3: "pretrain"}


def assert_refused(result, tmp, stage, expected, first_stage=1):
    """Non-zero exit, the expected names in the output, no traceback, no stamp of ``stage``; the
    stages the run did before it (from ``first_stage``) did finish."""
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    assert "Traceback" not in out, out
    assert not (tmp / "exp" / "stamps" / f"stage{stage}.{STAGES[stage]}.done").exists()
    for earlier in range(first_stage, stage):
        assert (tmp / "exp" / "stamps" / f"stage{earlier}.{STAGES[earlier]}.done").exists(), out


# ------------------------------------------------------------------ stage 1: the data dir

NEEDS_LANG = {"lang_two_letter", "lang_unknown"}  # URIEL's codes: lang2vec is imported (~2 s)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_stage_1_refuses_a_broken_data_dir(data_dir, kind):
    mutate, expected, *_ = BROKEN[kind]
    mutate(data_dir)
    tmp = Path(data_dir).parents[1]
    options = [] if kind in NEEDS_LANG else ["--validate-opts", "--no-lang"]
    assert_refused(recipe(tmp, *options, stage=1, stop_stage=1), tmp, 1, expected)


def test_stage_1_refuses_a_data_dir_without_utt2dur(data_dir):
    os.remove(os.path.join(data_dir, "utt2dur"))  # valid for Kaldi, but the statistics need durations
    tmp = Path(data_dir).parents[1]
    result = recipe(tmp, "--validate-opts", "--no-lang", stage=1, stop_stage=1)
    assert_refused(result, tmp, 1, [f"{data_dir}/utt2dur: file not found"])


# ------------------------------------------------------------- stage 2: audio to features


def _short_audio(d):
    sf.write(wav_path(d, "spkB-002"), np.zeros(100, dtype=np.float32), SR)  # 6 ms: not one 25 ms frame
    set_value(d, "utt2dur", "spkB-002", "0.01")


def _nan_audio(d):
    x = np.zeros(int(SPEC["spkC-001"][1] * SR), dtype=np.float32)
    x[1000] = np.nan
    sf.write(wav_path(d, "spkC-001"), x, SR, subtype="FLOAT")


def _failing_pipe(d):
    set_value(d, "wav.scp", "spkA-002", f"cat {d}/no-such-file.wav |")


def _garbage_pipe(d):
    set_value(d, "wav.scp", "spkB-001", "echo this is not audio |")


def _not_audio(d):
    with open(wav_path(d, "spkA-001"), "wb") as f:
        f.write(b"RIFF but not really a wav file" * 20)


# (mutation, stage-1 validation options, expected names); --no-audio: a huge corpus's choice,
# which leaves reading the audio to stage 2
FEATURES = {
    "audio_shorter_than_a_frame": (_short_audio, [], ["utterance 'spkB-002'"]),
    "nan_audio_not_validated": (_nan_audio, ["--no-audio"], ["utterance 'spkC-001'", "NaN/inf"]),
    "pipe_that_fails": (_failing_pipe, [], ["utterance 'spkA-002'"]),
    "pipe_that_gives_no_audio": (_garbage_pipe, [], ["utterance 'spkB-001'"]),
    "unreadable_audio_not_validated": (_not_audio, ["--no-audio"], ["utterance 'spkA-001'"]),
}


@pytest.mark.parametrize("kind", sorted(FEATURES))
def test_stage_2_refuses_audio_it_cannot_turn_into_features(data_dir, kind):
    mutate, validate_opts, expected = FEATURES[kind]
    mutate(data_dir)
    tmp = Path(data_dir).parents[1]
    result = recipe(tmp, "--validate-opts", " ".join(["--no-lang", *validate_opts]), stage=1, stop_stage=2)
    assert_refused(result, tmp, 2, [f"{data_dir}/wav.scp", *expected])
    assert not (tmp / "dump" / "train" / "feats.scp").exists()


# ------------------------------------------------------------ stage 3: dump dir, training


def _entries(dump):
    return read_kaldi_map(os.path.join(dump, "feats.scp"))


def _at(dump, utt):
    """``feats.scp:<line>: utterance '<utt>'`` as an error names it."""
    return f"feats.scp:{sorted(_entries(dump)).index(utt) + 1}: utterance '{utt}'"


def _set_entry(dump, utt, entry):
    scp = _entries(dump)
    scp[utt] = entry
    write_kaldi_map(os.path.join(dump, "feats.scp"), scp)


def _feats_pipe(dump):
    _set_entry(dump, "spk1_0001", f"echo hi > {dump}/PWNED |")
    return [_at(dump, "spk1_0001")]


def _feats_missing_ark(dump):
    _set_entry(dump, "spk2_0002", f"{dump}/gone.ark:17")
    return [_at(dump, "spk2_0002"), "gone.ark' not found"]


def _feats_offset_past_end(dump):
    ark = _entries(dump)["spk3_0003"].rsplit(":", 1)[0]
    _set_entry(dump, "spk3_0003", f"{ark}:{os.path.getsize(ark) + 100}")
    return [_at(dump, "spk3_0003"), "past the end"]


def _feats_pickle_in_ark(dump):
    ark = os.path.join(dump, "evil.ark")
    with open(ark, "wb") as f:
        f.write(b"spk0_0004 PKL" + pickle.dumps({"x": 1}))
    _set_entry(dump, "spk0_0004", f"{ark}:10")
    return ["utterance 'spk0_0004'"]


def _feats_not_path_offset(dump):
    _set_entry(dump, "spk1_0005", "ark:/dev/stdin")
    return [_at(dump, "spk1_0005")]


def _num_frames_missing_utt(dump):
    frames = read_kaldi_map(os.path.join(dump, "utt2num_frames"))
    del frames["spk2_0006"]
    write_kaldi_map(os.path.join(dump, "utt2num_frames"), frames)
    return ["utt2num_frames", "spk2_0006"]


def _empty_dump(dump):
    open(os.path.join(dump, "feats.scp"), "w").close()
    return [f"{dump}: dump dir holds no utterances"]


def _nan_features(dump):
    entry = _entries(dump)["spk3_0007"]
    mat = np.array(kaldiio.load_mat(entry))
    mat[3] = np.nan
    ark = os.path.join(dump, "nan.ark")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{ark}.scp") as writer:
        writer("spk3_0007", mat)
    _set_entry(dump, "spk3_0007", read_kaldi_map(f"{ark}.scp")["spk3_0007"])
    return ["feats.scp: utterance 'spk3_0007'", "hold NaN/inf in 1 of", "(first at frame 3)"]


def _cmvn_missing(dump):
    os.remove(os.path.join(dump, "cmvn.ark"))
    return [f"{dump}/cmvn.ark: CMVN statistics not found"]


def _cmvn_nan(dump):
    stats = kaldiio.load_mat(os.path.join(dump, "cmvn.ark")).copy()
    stats[0, 2] = np.nan
    kaldiio.save_mat(os.path.join(dump, "cmvn.ark"), stats)
    return [f"{dump}/cmvn.ark: CMVN statistics hold NaN/inf"]


def _cmvn_wrong_dimension(dump):
    kaldiio.save_mat(os.path.join(dump, "cmvn.ark"), np.ones((2, 41)))
    return [f"{dump}/cmvn.ark", "dimension 40"]


# name: (mutate(dump) -> expected names, extra pretraining options)
DUMPS = {
    "feats_scp_pipe": (_feats_pipe, []),
    "feats_scp_missing_ark": (_feats_missing_ark, []),
    "feats_scp_offset_past_the_end": (_feats_offset_past_end, []),
    "feats_scp_pickle_in_the_ark": (_feats_pickle_in_ark, []),
    "feats_scp_not_path_and_offset": (_feats_not_path_offset, []),
    "utt2num_frames_missing_an_utterance": (_num_frames_missing_utt, []),
    "empty_dump": (_empty_dump, []),
    "max_frames_drops_everything": (lambda d: [f"{d}: all 12 utterances are longer than max_frames 10"],
                                    ["--max_frames", "10"]),
    "nan_features": (_nan_features, []),
    "cmvn_missing": (_cmvn_missing, []),
    "cmvn_nan": (_cmvn_nan, []),
    "cmvn_wrong_dimension": (_cmvn_wrong_dimension, []),
    "unknown_config_key": (lambda d: ["tiny.yaml", "no_such_key"], ["--no_such_key", "1"]),
}


#: Found only when the utterance is read (checkpoints of the steps before it may exist)
READ_TIME = {"feats_scp_pickle_in_the_ark", "nan_features"}


@pytest.mark.parametrize("kind", sorted(DUMPS))
def test_stage_3_refuses_a_broken_dump_or_config(tmp_path, kind):
    dump = make_dump_dir(str(tmp_path / "dump" / "train"), num_utts=12, min_frames=40, max_frames=80)
    mutate, options = DUMPS[kind]
    expected = mutate(dump)
    result = recipe(tmp_path, "--pretrain-opts", " ".join(options), stage=3, stop_stage=3)
    assert_refused(result, tmp_path, 3, expected, first_stage=3)
    assert not (tmp_path / "PWNED").exists() and not (Path(dump) / "PWNED").exists()
    if kind not in READ_TIME:  # found before training starts
        assert not list((tmp_path / "exp" / "tiny" / "checkpoints").glob("step-*"))


def _broken_checkpoints(exp):
    for step in (6, 12):
        open(exp / "checkpoints" / f"step-{step:08d}" / "state.pt", "wb").close()
    return ["no checkpoint can be resumed", "step-00000006: state.pt has 0 bytes"]


def _missing_rng(exp):
    shutil.rmtree(exp / "checkpoints" / "step-00000012")
    os.remove(exp / "checkpoints" / "step-00000006" / "rng.rank0.pt")
    return ["step-00000006: resuming would not continue the run exactly", "--allow-inexact-resume"]


def _other_settings(exp):
    import yaml

    overrides = yaml.safe_load((exp / "overrides.yaml").read_text())
    (exp / "overrides.yaml").write_text(yaml.safe_dump(dict(overrides, lr=0.5)))  # trained with another lr
    return ["holds checkpoints of a run trained with other settings", "overrides lr differ"]


RUNS = {"all_checkpoints_broken": _broken_checkpoints, "rng_file_missing": _missing_rng,
        "run_folder_of_other_settings": _other_settings}


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_stage_3_refuses_to_resume_a_broken_run(tmp_path, kind):
    make_dump_dir(str(tmp_path / "dump" / "train"), num_utts=12, min_frames=40, max_frames=80)
    assert recipe(tmp_path, stage=3, stop_stage=3).returncode == 0
    os.remove(tmp_path / "exp" / "stamps" / "stage3.pretrain.done")  # as if it never finished
    expected = RUNS[kind](tmp_path / "exp" / "tiny")
    assert_refused(recipe(tmp_path, stage=3, stop_stage=3), tmp_path, 3, expected, first_stage=3)


# ------------------------------------------------------------ model files and archives


def _encoder_file(tmp_path, cls=None):
    from masr.ssl.encoder_file import save_encoder
    from masr.ssl.bestrq import BestRQ

    path = tmp_path / "encoder.pt"
    tiny = BestRQ(input_dim=20, d_model=16, num_layers=1, nhead=2, d_ffn=32, kernel_size=3, codebook_size=8)
    save_encoder(tiny, str(path))
    if cls:
        blob = torch.load(path, weights_only=True)
        blob["encoder"]["class"] = cls
        torch.save(blob, path)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, dtype=np.float32), SR)
    return str(path), str(wav)


def test_infer_refuses_an_encoder_file_naming_a_class_outside_masr(tmp_path, capsys):
    from masr import infer

    encoder, wav = _encoder_file(tmp_path, cls="subprocess.run")
    assert infer.main(["embed", "--model", encoder, wav]) == 1
    err = capsys.readouterr().err
    assert "encoder.pt" in err and "not one of masr's encoders" in err and "Traceback" not in err


def test_infer_refuses_features_of_another_dimension_than_the_encoder_takes(tmp_path, capsys):
    from masr import infer

    encoder, wav = _encoder_file(tmp_path)   # a 20-dim encoder; the default filterbank has 80 bins
    assert infer.main(["embed", "--model", encoder, wav]) == 1
    err = capsys.readouterr().err
    assert f"{encoder}: the encoder takes 20-dim features, the filterbank options give 80 mel bins" in err


def _tar(path, members):
    with tarfile.open(path, "w") as t:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, target
                t.addfile(info)
            else:
                data = target.encode()
                info.size = len(data)
                import io

                t.addfile(info, io.BytesIO(data))


ARCHIVES = {
    "dotdot_member": [("../evil.txt", "file", "x")],
    "absolute_symlink": [("a", "sym", "/etc/passwd")],
    # each link alone stays inside (the per-member check passes); through x/y/z/dl, a leaves
    "symlink_chain_out": [("x/y/z/dl", "sym", "../../.."), ("x/y/z/a", "sym", "dl/../../.."),
                          ("x/y/z/a/evil.txt", "file", "x")],
}


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_archives_that_would_write_outside_their_folder_are_refused(tmp_path, kind):
    from masr.corpora.download import UnsafeArchiveError, safe_extract

    archive = tmp_path / f"{kind}.tar"
    _tar(archive, ARCHIVES[kind])
    target = tmp_path / "x" / "y" / "target"
    with pytest.raises(UnsafeArchiveError, match=f"{archive}: refusing to extract member"):
        safe_extract(str(archive), str(target))
    assert not (tmp_path / "x" / "y" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not target.exists() or not any(p for p in target.rglob("*") if not p.name.startswith("."))


def test_the_catalogue_holds_at_least_40_kinds():
    kinds = (len(BROKEN) + 1 + len(FEATURES) + len(DUMPS) + len(RUNS) + 2 + len(ARCHIVES))
    assert kinds >= 40, kinds
