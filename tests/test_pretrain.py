"""masr.train.pretrain: the run keeps its config, and refuses to resume with other settings."""

import os

import pytest
import torch
import yaml

from masr.train.checkpoint import load_model_weights
from masr.train.run import RunConfigMismatch, save_run_config


def _fake_checkpoint(exp):
    os.makedirs(exp / "checkpoints" / "step-00000010")
    torch.save({"model": {}}, exp / "checkpoints" / "step-00000010" / "state.pt")


def test_saves_config_and_overrides_and_checks_them_on_resume(tmp_path):
    conf, exp = tmp_path / "c.yaml", tmp_path / "exp"
    conf.write_text("lr: 0.1\nmax_steps: 10\nlog_every: 5\n")
    save_run_config(str(conf), [str(conf), "--device", "cpu", "--lr", "0.2", "--exp_dir", str(exp)], str(exp))
    assert (exp / "config.yaml").read_text() == conf.read_text()
    assert "lr: 0.2" in (exp / "overrides.yaml").read_text() and "device" not in (exp / "overrides.yaml").read_text()
    _fake_checkpoint(exp)
    # resuming with the same settings, or only logging ones changed, is fine
    save_run_config(str(conf), ["--lr", "0.2", "--exp_dir", str(exp), "--log_every", "1"], str(exp))
    with pytest.raises(RunConfigMismatch, match="overrides lr differ"):
        save_run_config(str(conf), ["--lr", "0.3", "--exp_dir", str(exp)], str(exp))
    conf.write_text("lr: 0.1\nmax_steps: 20\nlog_every: 5\n")
    with pytest.raises(RunConfigMismatch, match="the config file"):
        save_run_config(str(conf), ["--lr", "0.2", "--exp_dir", str(exp)], str(exp))


def test_init_from_a_checkpoint_of_another_model_is_an_error(tmp_path):
    torch.save({"model": {"something.else": torch.zeros(1)}}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="none of its parameters belongs to Linear"):
        load_model_weights(torch.nn.Linear(2, 2), str(tmp_path / "state.pt"))


def test_weighted_sampling_reads_the_mix_weights(tmp_path):
    # a pretraining mix (masr.corpora.mix) carries utt2corpus and weights.tsv into the dump dir
    from masr.corpora.mix import write_weights
    from masr.data.datadir import read_kaldi_map, write_kaldi_map
    from masr.ssl.bestrq import BestRQ
    from masr.train.pretrain import build_pretrain_trainer
    from tests.helpers.dumps import make_dump_dir
    from tests.helpers.runs import pretrain_config

    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=12, langs=("hrv", "srp"))
    langs = read_kaldi_map(os.path.join(dump, "utt2lang"))
    write_kaldi_map(os.path.join(dump, "utt2corpus"), {u: "cv" for u in langs})
    write_weights(os.path.join(dump, "weights.tsv"), {("cv", "hrv"): 6, ("cv", "srp"): 6},
                  {("cv", "hrv"): 0.75, ("cv", "srp"): 0.25})
    model = BestRQ(input_dim=20, d_model=16, num_layers=1, nhead=2, d_ffn=32, kernel_size=3, codebook_size=8)
    config = pretrain_config(dump, str(tmp_path / "exp"), model, max_batch_frames=600, max_steps=1,
                             weighted_sampling=True)
    sampler = build_pretrain_trainer(config).sampler
    utts = sorted(langs)
    expected = [0.75 / 6 if langs[u] == "hrv" else 0.25 / 6 for u in utts]
    assert sampler.weights == pytest.approx(expected)


@pytest.mark.parametrize("module", ["masr.train.pretrain", "masr.downstream.langid", "masr.downstream.asr"])
def test_entry_points_report_a_config_mismatch_as_an_error(tmp_path, capsys, module):
    # every training entry point goes through training_run: a run folder trained with other
    # settings stops before anything is built, with exit status 2 and a message naming it
    import importlib

    conf, exp = tmp_path / "c.yaml", tmp_path / "exp"
    entry = importlib.import_module(module)
    keys = {key: None for key in entry.CONFIG_KEYS}  # every key the step reads must be declared
    valid = {"beam_size": 1, "selection_metric": "wer"}  # what asr.check_config checks first
    conf.write_text(yaml.safe_dump({**keys, **valid, "exp_dir": None, "lr": 0.1, "cpu_threads": 1}))
    save_run_config(str(conf), [str(conf), "--lr", "0.2", "--exp_dir", str(exp)], str(exp))
    _fake_checkpoint(exp)
    main = entry.main
    argv = [str(conf), "--device", "cpu", "--lr", "0.3", "--exp_dir", str(exp)]
    assert main(argv) == 2
    assert f"{exp} holds checkpoints of a run trained with other settings" in capsys.readouterr().err
