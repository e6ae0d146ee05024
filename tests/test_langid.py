"""masr.downstream.langid: O/NO bookkeeping, test-set checks and a whole tiny fine-tuning run."""

import json
import os

import pytest
import torch

from masr.data.datadir import mapping_id, read_kaldi_map, write_kaldi_map
from masr.downstream import langid
from masr.downstream.finetune import FineTuneModel
from masr.ssl.bestrq import BestRQ
from masr.train.checkpoint import list_checkpoints
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import TINY_LANGID as TINY_LANGID_BASE
from tests.helpers.runs import make_pretrain_run, with_settings

FBANK = "num_mel_bins: 20\nframe_length: 25.0\nframe_shift: 10.0\nsample_rate: 16000\ndither: 0.0\n"

#: The tiny LangID config, linear probe first, 4 steps (2 checkpoints)
TINY_LANGID = with_settings(TINY_LANGID_BASE, head_init="linear_probe", max_steps=4, min_lr_ratio=0.05,
                            keep_checkpoints=100)


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


# ---- O/NO bookkeeping ---------------------------------------------------------------------------
def test_split_by_overlap_by_hand():
    refs = ["a", "a", "b", "b", "c", "c"]
    hyps = ["a", "b", "b", "c", "c", "a"]
    out = langid.split_by_overlap(refs, hyps, seen={"a", "b"})
    o, no = out["overlapped"], out["non_overlapped"]
    assert (o["num_utts"], o["num_classes"], no["num_utts"], no["num_classes"]) == (4, 2, 2, 1)
    assert o["accuracy"] == 0.5 and no["accuracy"] == 0.5
    # O, over {a, b} only: a: P = 1, R = 1/2, F1 = 2/3; b: P = 1/2, R = 1/2, F1 = 1/2 -> 7/12
    # (counting the predicted-but-unreferenced c as a class would give 7/18)
    assert o["macro_f1"] == pytest.approx(7 / 12)
    # NO, over {c} only: P = 1, R = 1/2, F1 = 2/3 (with the predicted a as a class: 1/3)
    assert no["macro_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seen, empty, full", [({"a", "b", "c", "x"}, "non_overlapped", "overlapped"),
                                               (set(), "overlapped", "non_overlapped")])
def test_split_by_overlap_with_an_empty_group(seen, empty, full):
    out = langid.split_by_overlap(["a", "b", "c"], ["a", "c", "c"], seen)
    assert out[empty] == {"accuracy": None, "macro_f1": None, "num_classes": 0, "num_utts": 0}
    assert out[full]["num_utts"] == 3 and out[full]["num_classes"] == 3
    assert out[full]["accuracy"] == pytest.approx(2 / 3)
    # a: F1 1; b: never predicted, F1 0; c: P = 1/2, R = 1, F1 = 2/3
    assert out[full]["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)


def test_evaluate_refuses_test_languages_absent_from_training(tmp_path):
    test = make_dump_dir(str(tmp_path / "test"), num_utts=9)  # hrv, srp, swe
    torch.manual_seed(0)
    encoder = BestRQ(input_dim=20, d_model=32, num_layers=1, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)
    model = FineTuneModel(encoder, num_outputs=2, pooled=True)
    first_swe = sorted(u for u, lang in read_kaldi_map(f"{test}/utt2lang").items() if lang == "swe")[0]
    with pytest.raises(ValueError, match=rf"3 utterances .*absent from training.*{first_swe}: 'swe'"):
        langid.evaluate(model, test, ["hrv", "srp"], seen={"hrv"})


# ---- a whole run -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lid(tmp_path_factory):
    root = tmp_path_factory.mktemp("langid")
    run_dir = make_pretrain_run(str(root / "exp" / "tiny_bestrq"), make_dump_dir(str(root / "pretrain"), seed=0))
    dirs = {name: make_dump_dir(str(root / name), num_utts=n, seed=seed)
            for name, n, seed in (("train", 24, 1), ("dev", 12, 2), ("test", 12, 3))}
    write_kaldi_map(str(root / "pretrain_utt2lang"), {"p1": "hrv", "p2": "srp", "p3": "hrv"})
    (root / "fbank.yaml").write_text(FBANK)
    (root / "langid.yaml").write_text(TINY_LANGID)
    exp_dir = str(root / "exp" / "langid" / "tiny_bestrq" / "seed1")
    argv = [str(root / "langid.yaml"), "--pretrained", run_dir, "--train_dir", dirs["train"],
            "--dev_dir", dirs["dev"], "--test_dir", dirs["test"], "--pretrain_langs", str(root / "pretrain_utt2lang"),
            "--fbank_config", str(root / "fbank.yaml"), "--exp_dir", exp_dir, "--device", "cpu"]
    assert langid.main(argv) == 0
    with open(os.path.join(exp_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    return {"argv": argv, "exp_dir": exp_dir, "results": results, **dirs}


def _tsv(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return rows[0], rows[1:]


def test_results_json_has_what_the_report_reads(lid):
    r = lid["results"]
    assert r["task"] == "langid" and r["model"] == "tiny_bestrq" and r["seed"] == 1
    assert r["data"]["test_id"] == mapping_id(read_kaldi_map(os.path.join(lid["test"], "utt2lang")))
    assert r["labels"] == ["hrv", "srp", "swe"]
    assert r["pretrain_languages"] == ["hrv", "srp"]
    assert r["selected"]["step"] in [step for step, _ in list_checkpoints(os.path.join(lid["exp_dir"], "checkpoints"))]
    assert set(r["overall"]) >= {"accuracy", "macro_f1", "eer", "num_classes", "num_utts"}
    assert r["overall"]["num_utts"] == 12 and r["overall"]["num_classes"] == 3
    assert 0.0 <= r["overall"]["eer"] <= 1.0 and r["eer_pooling"] == "pooled"
    for group in ("overlapped", "non_overlapped"):
        assert set(r[group]) == {"accuracy", "macro_f1", "num_classes", "num_utts"}
    assert set(r["per_language"]) == {"hrv", "srp", "swe"}
    assert len(r["confusion"]) == 3 and all(len(row) == 3 for row in r["confusion"])


def test_results_numbers_are_consistent(lid):
    r = lid["results"]
    overall, n = r["overall"], r["overall"]["num_utts"]
    confusion = r["confusion"]
    assert sum(map(sum, confusion)) == n
    assert sum(confusion[i][i] for i in range(3)) / n == pytest.approx(overall["accuracy"])
    per = r["per_language"]
    assert sum(p["num_utts"] for p in per.values()) == n
    assert sum(p["accuracy"] * p["num_utts"] for p in per.values()) / n == pytest.approx(overall["accuracy"])
    for i, lang in enumerate(r["labels"]):
        assert sum(confusion[i]) == per[lang]["num_utts"]  # rows: reference
        assert confusion[i][i] / per[lang]["num_utts"] == pytest.approx(per[lang]["accuracy"])
        assert per[lang]["overlapped"] == (lang in ("hrv", "srp"))
    o, no = r["overlapped"], r["non_overlapped"]
    assert o["num_utts"] + no["num_utts"] == n
    assert (o["num_classes"], no["num_classes"]) == (2, 1)
    assert o["num_utts"] == per["hrv"]["num_utts"] + per["srp"]["num_utts"]
    weighted = (o["accuracy"] * o["num_utts"] + no["accuracy"] * no["num_utts"]) / n
    assert weighted == pytest.approx(overall["accuracy"])


def test_report_files_and_model_folder(lid):
    exp, r = lid["exp_dir"], lid["results"]
    header, rows = _tsv(os.path.join(exp, "predictions.tsv"))
    assert header == ["utt", "reference", "predicted", "log_posterior"]
    test_langs = read_kaldi_map(os.path.join(lid["test"], "utt2lang"))
    assert [row[0] for row in rows] == sorted(test_langs)
    assert all(row[1] == test_langs[row[0]] and row[2] in r["labels"] and float(row[3]) <= 0 for row in rows)
    assert sum(row[1] == row[2] for row in rows) / len(rows) == pytest.approx(r["overall"]["accuracy"])

    header, rows = _tsv(os.path.join(exp, "confusion.tsv"))
    assert header[1:] == r["labels"]
    assert [[int(v) for v in row[1:]] for row in rows] == r["confusion"]

    header, rows = _tsv(os.path.join(exp, "per_language.tsv"))
    assert header == ["language", "overlapped", "utterances", "accuracy"]
    assert {row[0]: (row[1], int(row[2])) for row in rows} == {
        lang: ("O" if p["overlapped"] else "NO", p["num_utts"]) for lang, p in r["per_language"].items()}

    header, rows = _tsv(os.path.join(exp, "selection.tsv"))
    steps = [step for step, _ in list_checkpoints(os.path.join(exp, "checkpoints"))]
    assert [int(row[0]) for row in rows] == steps and max(steps) == 4
    assert [int(row[0]) for row in rows if row[2] == "*"] == [r["selected"]["step"]]
    assert float(next(row[1] for row in rows if row[2] == "*")) == pytest.approx(r["selected"]["dev_accuracy"], abs=1e-6)

    with open(os.path.join(exp, "model.json"), encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["task"] == "langid" and spec["labels"] == r["labels"] and spec["pooled"] is True
    assert spec["fbank"]["num_mel_bins"] == 20
    assert spec["encoder"]["class"] == "masr.ssl.bestrq.BestRQ"
    assert spec["checkpoint"] == os.path.join("checkpoints", f"step-{r['selected']['step']:08d}")


def test_running_again_resumes_without_retraining(lid, capsys):
    ckpt_dir = os.path.join(lid["exp_dir"], "checkpoints")
    before = {path: os.path.getmtime(os.path.join(path, "state.pt")) for _, path in list_checkpoints(ckpt_dir)}
    assert langid.main(lid["argv"]) == 0
    out = capsys.readouterr().out
    assert "already at step 4" in out and "training from step" not in out
    with open(os.path.join(lid["exp_dir"], "train_log.txt"), encoding="utf-8") as f:
        assert "already at step 4 >= max_steps 4" in f.read()
    assert {path: os.path.getmtime(os.path.join(path, "state.pt")) for _, path in list_checkpoints(ckpt_dir)} == before
    with open(os.path.join(lid["exp_dir"], "results.json"), encoding="utf-8") as f:
        again = json.load(f)
    assert again == lid["results"]
