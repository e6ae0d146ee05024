"""masr.report.compare: differences between table rows with paired bootstrap CIs, from the
per-utterance files the downstream stages write."""

import json
import os

import pytest

from masr.report import compare
from masr.downstream.results_schema import ResultsError
from masr.report.loading import collect
from masr.report.tables import table1, table2, table3

UTTS = ["u1", "u2", "u3", "u4"]
REFS = ["hrv", "srp", "hrv", "srp"]
CONFIG = {"reference": "base", "pairs": [["masr", "lasr"]], "num_samples": 2000}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def langid_run(exp, model, seed, correct_ft, correct_lp, kept="fine_tuned"):
    """A LangID run whose fine-tuned / probe models are right on the utterances flagged 1."""
    folder = os.path.join(exp, "langid", model, f"seed{seed}")

    def block(correct, step):
        acc = sum(correct) / len(correct)
        return {"step": step, "dev_accuracy": 0.5,
                "overall": {"accuracy": acc, "macro_f1": acc, "eer": 0.1, "num_classes": 2, "num_utts": 4},
                "overlapped": {"accuracy": acc, "num_classes": 1, "num_utts": 2},
                "non_overlapped": {"accuracy": acc, "num_classes": 1, "num_utts": 2}}

    def predictions(correct):
        rows = ["utt\treference\tpredicted\tlog_posterior"]
        for utt, ref, ok in zip(UTTS, REFS, correct):
            rows.append(f"{utt}\t{ref}\t{ref if ok else ('srp' if ref == 'hrv' else 'hrv')}\t-0.1")
        return "\n".join(rows) + "\n"

    ft, lp = block(correct_ft, 10), block(correct_lp, 0)
    top = ft if kept == "fine_tuned" else lp
    result = {"task": "langid", "model": model, "seed": seed,
              "data": {"test": "dump/test", "test_id": "t"},
              "selected": {"step": top["step"], "dev_accuracy": 0.5, "kind": kept},
              "linear_probe": lp, "fine_tuned": ft,
              "labels": ["hrv", "srp"], "pretrain_languages": ["hrv"],
              "overall": top["overall"], "overlapped": top["overlapped"], "non_overlapped": top["non_overlapped"],
              "eer_pooling": "pooled",
              "per_language": {"hrv": {"accuracy": 0.5, "num_utts": 2, "overlapped": True},
                               "srp": {"accuracy": 0.5, "num_utts": 2, "overlapped": False}},
              "confusion": [[1, 1], [1, 1]]}
    write(os.path.join(folder, "results.json"), json.dumps(result))
    write(os.path.join(folder, "predictions.fine_tuned.tsv"), predictions(correct_ft))
    write(os.path.join(folder, "predictions.linear_probe.tsv"), predictions(correct_lp))
    write(os.path.join(folder, "predictions.tsv"), predictions(correct_ft if kept == "fine_tuned" else correct_lp))


ROWS = [{"name": "BEST-RQ", "model": "base"}, {"name": "+LASR", "model": "lasr"}, {"name": "+MASR", "model": "masr"}]


@pytest.fixture
def exp(tmp_path):
    exp = str(tmp_path / "exp")
    for seed in (1, 2):
        langid_run(exp, "base", seed, [0, 0, 0, 0], [0, 0, 0, 0])
        langid_run(exp, "lasr", seed, [1, 1, 0, 0], [1, 0, 0, 0])
        langid_run(exp, "masr", seed, [1, 1, 1, 1], [1, 0, 0, 0])
    return exp


def cells(text, label):
    line = next(l for l in text.splitlines() if l.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_table1_differences_hand_computed(exp):
    text = table1(ROWS, collect(exp, "langid"), CONFIG)
    assert "| comparison | seeds | Δ LP accuracy [95% CI] | Δ FT accuracy [95% CI] |" in text
    # +MASR right on all 4, BEST-RQ on none: +100 whatever the resample, significant
    assert cells(text, "+MASR − BEST-RQ") == ["+MASR − BEST-RQ", "1, 2", "+25.0 [+0.0, +75.0]", "+100.0 [+100.0, +100.0]*"]
    # FT: MASR - LASR = 1 - 0.5 = +50 points (the 2 utterances LASR misses)
    assert cells(text, "+MASR − +LASR")[3].startswith("+50.0 [")
    # LP: identical models: exactly 0, not significant
    assert cells(text, "+MASR − +LASR")[2] == "+0.0 [+0.0, +0.0]"
    assert "paired bootstrap over test utterances" in text
    # the LP and FT columns and which one dev kept
    assert cells(text, "+LASR")[2:3] == ["25.0 ± 0.0"] and cells(text, "+LASR")[-1] == "FT 2/2"


def test_only_common_seeds_are_compared(exp):
    langid_run(exp, "masr", 3, [1, 1, 1, 1], [1, 1, 1, 1])
    text = table1(ROWS, collect(exp, "langid"), CONFIG)
    assert cells(text, "+MASR − BEST-RQ")[1] == "1, 2"


def test_missing_outcome_file_is_a_note_naming_it(exp):
    os.remove(os.path.join(exp, "langid", "lasr", "seed2", "predictions.fine_tuned.tsv"))
    text = table1(ROWS, collect(exp, "langid"), CONFIG)
    assert "Differences between rows: not computed:" in text
    assert os.path.join("lasr", "seed2", "predictions.fine_tuned.tsv") in text


def test_different_test_sets_are_an_error(exp):
    path = os.path.join(exp, "langid", "lasr", "seed1", "predictions.fine_tuned.tsv")
    with open(path) as f:
        lines = f.read().splitlines()
    write(path, "\n".join(lines[:-1]) + "\n")  # one utterance fewer
    with pytest.raises(ResultsError, match="Table 1: confidence intervals: .*lacks 1 utterance"):
        table1(ROWS, collect(exp, "langid"), CONFIG)


def test_asr_differences_are_corpus_level(tmp_path):
    exp = str(tmp_path / "exp")
    hyps = {"base": ["x y", "c"], "masr": ["a b", "c"]}  # refs "a b" (2 words), "c d e" (3 words)
    for model, (h1, h2) in hyps.items():
        folder = os.path.join(exp, "asr", model, "seed1")
        per_lang = {"hrv": {"wer": 0.5, "cer": 0.5, "num_words": 5, "num_utts": 2}}
        write(os.path.join(folder, "results.json"), json.dumps(
            {"task": "asr", "model": model, "seed": 1, "data": {"test_id": "a"}, "selected": {"step": 1, "dev_wer": 1.0},
             "per_language": per_lang, "average": {"wer": 0.5, "cer": 0.5}, "overall": {"wer": 0.5, "cer": 0.5}}))
        write(os.path.join(folder, "hypotheses.tsv"),
              f"utt\tlang\treference\thypothesis\nu1\thrv\ta b\t{h1}\nu2\thrv\tc d e\t{h2}\n")
    text = table3([{"name": "BEST-RQ", "model": "base"}, {"name": "+MASR", "model": "masr"}],
                  collect(exp, "asr"), {"reference": "base", "num_samples": 500})
    # WER: masr 2/5, base 4/5 -> -40.0; CER (no spaces): masr 2/5 chars, base 4/5 -> -40.0
    row = cells(text, "+MASR − BEST-RQ")
    assert row[2].startswith("-40.0 [") and row[3].startswith("-40.0 [")
    assert "lower is better" in text


def test_probe_differences(tmp_path):
    exp = str(tmp_path / "exp")
    for model, predicted in (("base", ["a", "a", "a", "a"]), ("masr", ["a", "b", "a", "b"])):
        folder = os.path.join(exp, "probe", model, "seed1")
        task = {"dataset": "d", "label": "utt2x", "protocol": "split", "accuracy": 0.5, "fold_accuracies": [0.5],
                "num_classes": 2, "num_train": 4, "num_test": 4, "data_id": "p"}
        write(os.path.join(folder, "results.json"),
              json.dumps({"task": "probe", "model": model, "seed": 1, "layer": None, "tasks": {"language": task}}))
        write(os.path.join(folder, "predictions", "language.tsv"),
              "fold\tdataset\tutt\treference\tpredicted\n" +
              "".join(f"0\ttest\tu{i}\t{ref}\t{p}\n" for i, (ref, p) in enumerate(zip("abab", predicted))))
    text = table2([{"name": "BEST-RQ", "model": "base"}, {"name": "+MASR", "model": "masr"}],
                  collect(exp, "probe"), {"reference": "base", "num_samples": 500})
    # per-item differences (0, 1, 0, 1): a resample of all 0s or all 1s has probability 1/16 > 2.5%
    assert cells(text, "+MASR − BEST-RQ")[2] == "+50.0 [+0.0, +100.0]"


def test_compare_config_is_checked():
    compare.check_compare_config(CONFIG, "r.yaml")
    for bad, key in (({"pairs": [["a"]]}, "compare.pairs"), ({"num_samples": 0}, "compare.num_samples"),
                     ({"reference": 3}, "compare.reference"), ({"other": 1}, "unknown key 'other'")):
        with pytest.raises(ValueError, match=f"r.yaml: .*{key}"):
            compare.check_compare_config(bad, "r.yaml")
