"""masr.utils.progress: progress bars on a terminal of rank 0 only, never changing what is iterated."""

import io

import kaldiio
import numpy as np
import pytest

from masr.data.datadir import read_kaldi_map
from masr.features.extract import extract_features, main
from masr.features.fbank import FbankConfig
from masr.utils.progress import ENV_VAR, from_config, progress, progress_enabled
from tests.helpers.datadirs import make_data_dir


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def stderr(monkeypatch):
    """Return a function installing a fresh stderr (a terminal or not); RANK and MASR_PROGRESS unset."""
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)

    def install(tty):
        stream = _Terminal() if tty else io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        return stream

    return install


@pytest.mark.parametrize("enabled", [None, False, True])
@pytest.mark.parametrize("tty", [False, True])
def test_same_items_in_the_same_order(stderr, enabled, tty):
    stderr(tty)
    items = [3, "a", None, (1, 2), 3]
    assert list(progress(iter(items), desc="x", enabled=enabled)) == items
    assert list(progress(items, total=99, enabled=enabled)) == items   # a wrong total changes nothing
    assert list(progress(iter([]), total=0, enabled=enabled)) == []


def test_off_when_stderr_is_not_a_terminal(stderr):
    err = stderr(tty=False)
    assert not progress_enabled()
    for _ in progress(range(50), desc="quiet"):
        pass
    with progress(total=5, desc="quiet") as bar:
        bar.update(5)
    assert err.getvalue() == ""


def test_on_for_a_terminal_and_when_forced(stderr):
    err = stderr(tty=True)
    assert progress_enabled()
    assert sum(progress(range(10), desc="shown")) == 45
    assert "shown" in err.getvalue() and "10/10" in err.getvalue()
    err = stderr(tty=False)
    assert progress_enabled(True)
    assert list(progress(range(3), desc="forced", enabled=True)) == [0, 1, 2]
    assert "forced" in err.getvalue()


def test_off_on_other_ranks_even_when_forced(stderr, monkeypatch):
    err = stderr(tty=True)
    monkeypatch.setenv("RANK", "1")
    assert not progress_enabled() and not progress_enabled(True)
    assert list(progress(range(4), desc="rank1", enabled=True)) == [0, 1, 2, 3]
    assert err.getvalue() == ""
    monkeypatch.setenv("RANK", "0")
    assert progress_enabled()


def test_environment_and_config(stderr, monkeypatch):
    stderr(tty=True)
    monkeypatch.setenv(ENV_VAR, "0")
    assert not progress_enabled()
    stderr(tty=False)
    monkeypatch.setenv(ENV_VAR, "1")
    assert progress_enabled() and not progress_enabled(False)
    assert from_config({"progress": False}) is False
    assert from_config({"progress": True}) is None and from_config({}) is None and from_config(None) is None
    stderr(tty=True)
    monkeypatch.delenv(ENV_VAR)
    assert not progress_enabled(from_config({"progress": False}))


def _dump(path):
    feats = dict(kaldiio.load_scp(str(path / "feats.scp")))
    return read_kaldi_map(path / "utt2num_frames"), feats


@pytest.mark.parametrize("nj", [1, 2])
def test_extraction_unchanged_and_silent_when_not_a_terminal(tmp_path, stderr, capfd, nj):
    data, lengths = make_data_dir(tmp_path)
    err = stderr(tty=False)
    quiet = extract_features(str(data), str(tmp_path / "quiet"), FbankConfig(), nj=nj)
    assert err.getvalue() == "" and capfd.readouterr().err == ""
    err = stderr(tty=False)
    shown = extract_features(str(data), str(tmp_path / "shown"), FbankConfig(), nj=nj, show_progress=True)
    assert "6/6" in err.getvalue()
    assert quiet["utterances"] == shown["utterances"] == len(lengths) and quiet["frames"] == shown["frames"]
    (frames_a, feats_a), (frames_b, feats_b) = _dump(tmp_path / "quiet"), _dump(tmp_path / "shown")
    assert frames_a == frames_b and sorted(feats_a) == sorted(feats_b) == sorted(lengths)
    for utt in feats_a:
        np.testing.assert_array_equal(feats_a[utt], feats_b[utt])


def test_extraction_config_turns_the_bar_off(tmp_path, stderr, capsys):
    data, _ = make_data_dir(tmp_path, n=2)
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 80\nprogress: false\n")
    err = stderr(tty=True)
    assert main([str(conf), "--data", str(data), "--out", str(tmp_path / "dump")]) == 0
    assert err.getvalue() == ""
    assert "2 utterances" in capsys.readouterr().out


def test_prediction_bar_counts_utterances_and_changes_nothing(tmp_path, stderr):
    """finetune.predict (LangID's test and dev scoring) with a bar gives the same logits."""
    import torch

    from masr.downstream import finetune
    from masr.ssl.bestrq import BestRQ
    from tests.helpers.dumps import make_dump_dir

    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=7)
    torch.manual_seed(0)
    encoder = BestRQ(input_dim=20, d_model=16, num_layers=1, nhead=2, d_ffn=32, kernel_size=3, codebook_size=8)
    model = finetune.FineTuneModel(encoder, num_outputs=3, pooled=True)
    plain = finetune.predict(model, dump, batch_frames=300)
    err = stderr(tty=False)
    shown = finetune.predict(model, dump, batch_frames=300, desc="lid", show_progress=True)
    assert "lid" in err.getvalue() and "7/7" in err.getvalue()
    assert [u for u, _, _ in shown] == [u for u, _, _ in plain]
    for (_, a, n), (_, b, m) in zip(plain, shown):
        assert n == m and torch.equal(a, b)
