"""Results files of the downstream stages, as the report reads them, for the report tests
(``tests/test_report_results.py``, ``tests/test_report_paper.py``, ``tests/test_results_schema.py``)."""

import json
import os

LABELS = ["bos", "hrv", "rus", "srp"]
PRETRAIN = ["hrv", "srp"]  # O = hrv, srp; NO = bos, rus
PNG = b"\x89PNG\r\n\x1a\n"
HEADER = {"machine": "test machine", "commit": "abc123", "date": "2026-01-01 00:00 UTC"}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def langid_run(exp, model, seed, acc, o=0.5, no=0.25, overall=0.375, f1=0.3, eer=0.2, test_id="t1",
               confusion=None):
    """A LangID results.json; ``acc`` maps language -> accuracy (5 test utterances each)."""
    if confusion is None:
        confusion = [[5 if i == j else 0 for j in range(4)] for i in range(4)]
    result = {
        "task": "langid", "model": model, "seed": seed,
        "data": {"train": "dump/train", "dev": "dump/dev", "test": "dump/test", "test_id": test_id},
        "selected": {"step": 10 * seed, "dev_accuracy": 0.4},
        "labels": LABELS, "pretrain_languages": PRETRAIN,
        "overall": {"accuracy": overall, "macro_f1": f1, "eer": eer, "num_classes": 4, "num_utts": 20},
        "overlapped": {"accuracy": o, "macro_f1": f1, "num_classes": 2, "num_utts": 10},
        "non_overlapped": {"accuracy": no, "macro_f1": f1, "num_classes": 2, "num_utts": 10},
        "eer_pooling": "pooled",
        "per_language": {lang: {"accuracy": acc[lang], "num_utts": 5, "overlapped": lang in PRETRAIN}
                         for lang in LABELS},
        "confusion": confusion,
    }
    return write_json(os.path.join(exp, "langid", model, f"seed{seed}", "results.json"), result)


def asr_run(exp, model, seed, wer, cer, test_id="a1"):
    result = {
        "task": "asr", "model": model, "seed": seed, "data": {"test_id": test_id}, "vocab_size": 300,
        "decoding": "greedy", "selected": {"step": 5, "dev_wer": 0.99},
        "per_language": {lang: {"wer": wer[lang], "cer": cer[lang], "num_words": 10, "num_utts": 5}
                         for lang in wer},
        "average": {"wer": sum(wer.values()) / len(wer), "cer": sum(cer.values()) / len(cer)},
        "overall": {"wer": 0.9, "cer": 0.5},
    }
    return write_json(os.path.join(exp, "asr", model, f"seed{seed}", "results.json"), result)


def probe_run(exp, model, language=0.7, emotion=0.4, folds=(0.3, 0.5), data_id="p1"):
    tasks = {
        "language": {"dataset": "mini", "label": "utt2lang", "protocol": "split", "accuracy": language,
                     "fold_accuracies": [language], "num_classes": 4, "num_train": 60, "num_test": 20,
                     "data_id": data_id},
        "emotion": {"dataset": "emo", "label": "utt2emo", "protocol": "kfold", "accuracy": emotion,
                    "fold_accuracies": list(folds), "num_classes": 3, "num_train": 40, "num_test": 10,
                    "data_id": "e1"},
    }
    return write_json(os.path.join(exp, "probe", model, "results.json"),
                      {"task": "probe", "model": model, "layer": None, "tasks": tasks})


ACC_BASE = {"bos": 0.4, "hrv": 0.5, "rus": 0.2, "srp": 0.6}
ACC_MASR = {"bos": 0.5, "hrv": 0.55, "rus": 0.1, "srp": 0.6}
