"""masr.downstream.results_schema: round trips of the three results files, the stages' writers
through it (same bytes as the dict literals they wrote before), and the checks' messages."""

import json
import os

import numpy as np
import pytest

from masr.downstream import asr_scoring, langid, probe
from masr.downstream.results_schema import (ABSENT, ASRResults, LangIDCandidate, LangIDResults, ProbeResults,
                                            ResultsData, ResultsError, from_json)
from tests.helpers.results_runs import ACC_BASE, asr_run, langid_run, probe_run


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def langid_file(tmp_path, candidates=True):
    obj = load(langid_run(str(tmp_path), "m", 1, ACC_BASE))
    if candidates:  # as a run with head_init: linear_probe writes them, between selected and labels
        block = json.loads(json.dumps({k: obj[k] for k in ("overall", "overlapped", "non_overlapped")}))
        keys = list(obj)
        at = keys.index("labels")
        extra = {"linear_probe": {"step": 0, "dev_accuracy": 0.3, **block},
                 "fine_tuned": {"step": 10, "dev_accuracy": 0.4, **json.loads(json.dumps(block))}}
        obj = {**{k: obj[k] for k in keys[:at]}, **extra, **{k: obj[k] for k in keys[at:]}}
    return obj


@pytest.mark.parametrize("task", ["langid", "langid_candidates", "asr", "probe"])
def test_round_trip(tmp_path, task):
    if task.startswith("langid"):
        obj, kind = langid_file(tmp_path, candidates=task.endswith("candidates")), "langid"
    elif task == "asr":
        obj, kind = load(asr_run(str(tmp_path), "m", 1, {"bos": 1.0}, {"bos": 0.5})), "asr"
    else:
        obj, kind = load(probe_run(str(tmp_path), "m")), "probe"
    record = from_json(obj, "r.json", kind)
    assert record.to_json() == obj and list(record.to_json()) == list(obj)
    assert from_json(record.to_json(), "r.json", kind) == record
    assert json.dumps(record.to_json(), indent=1) == json.dumps(obj, indent=1)


def test_records_give_attributes_and_keep_unknown_keys_last(tmp_path):
    obj = langid_file(tmp_path)
    run = LangIDResults.from_json({**obj, "note": "x"}, "r.json")
    assert run.fine_tuned.step == 10 and run.per_language["hrv"].overlapped is True
    assert run.data.train == "dump/train" and run.extra == {"note": "x"}
    assert list(run.to_json())[-1] == "note"
    probe_only = ProbeResults.from_json({"task": "probe", "model": "m", "tasks": {}}, "r.json")
    assert probe_only.layer is ABSENT and "layer" not in probe_only.to_json()


@pytest.mark.parametrize("change, message", [
    (lambda o: o.pop("eer_pooling"), "missing field 'eer_pooling'"),
    (lambda o: o["overall"].pop("eer"), "missing field 'overall.eer'"),
    (lambda o: o["data"].pop("test_id"), "missing field 'data.test_id'"),
    (lambda o: o.update(seed="1"), "'seed' should be a integer, got \"1\""),
    (lambda o: o.update(overall=[]), "'overall' should be a mapping"),
    (lambda o: o.update(task="asr"), "task 'asr', expected 'langid'"),
    (lambda o: o.update(fine_tuned=None), "'fine_tuned' should be a mapping"),
    (lambda o: o["linear_probe"].pop("step"), "missing field 'linear_probe.step'"),
    (lambda o: o["linear_probe"]["overlapped"].update(num_utts=1.5),
     "'linear_probe.overlapped.num_utts' should be a integer, got 1.5"),
    (lambda o: o["per_language"].update(hrv=[]), "'per_language.hrv' should be a mapping"),
    (lambda o: o["per_language"]["hrv"].update(overlapped=1), "'per_language.hrv.overlapped' should be a boolean"),
    (lambda o: o["confusion"][0].append(1), "'confusion' should be a 4 x 4 matrix of integers"),
])
def test_langid_checks_name_the_file_and_field(tmp_path, change, message):
    obj = langid_file(tmp_path)
    change(obj)
    with pytest.raises(ResultsError, match="^r.json: malformed results file: " + message.replace("(", r"\(")):
        LangIDResults.from_json(obj, "r.json")


def test_asr_and_probe_checks(tmp_path):
    obj = load(asr_run(str(tmp_path), "m", 1, {"bos": 1.0}, {"bos": 0.5}))
    obj["per_language"]["bos"].pop("cer")
    with pytest.raises(ResultsError, match="missing field 'per_language.bos.cer'"):
        from_json(obj, "r.json", "asr")
    obj = load(probe_run(str(tmp_path), "m"))
    obj["tasks"]["language"]["accuracy"] = "high"
    with pytest.raises(ResultsError, match="'tasks.language.accuracy' should be a number or null"):
        from_json(obj, "r.json", "probe")
    with pytest.raises(ResultsError, match="not a JSON object"):
        from_json([obj], "r.json", "probe")


# the stages' writers: the dict literals they wrote before the schema, on the same inputs


def _evaluation():
    refs, hyps = ["hrv", "hrv", "srp", "swe"], ["hrv", "srp", "srp", "hrv"]
    return {"labels": ["hrv", "srp", "swe"], "pretrain_languages": ["hrv", "srp"],
            "overall": {"accuracy": 0.5, "macro_f1": 0.4, "eer": 0.25, "num_classes": 3, "num_utts": 4},
            **langid.split_by_overlap(refs, hyps, {"hrv", "srp"}), "eer_pooling": "pooled",
            "per_language": {"hrv": {"accuracy": 0.5, "num_utts": 2, "overlapped": True},
                             "srp": {"accuracy": 1.0, "num_utts": 1, "overlapped": True},
                             "swe": {"accuracy": 0.0, "num_utts": 1, "overlapped": False}},
            "confusion": [[1, 1, 0], [0, 1, 0], [1, 0, 0]]}


@pytest.mark.parametrize("with_probe", [True, False])
def test_langid_writer_bytes(with_probe):
    results, dirs = _evaluation(), {"train": "dump/train", "dev": "dump/dev", "test": "dump/test"}
    candidates = {"linear_probe": (0, "ckpt0", 0.3) if with_probe else None, "fine_tuned": (10, "ckpt10", 0.4)}
    step, dev_acc, kept = 10, 0.4, "fine_tuned"
    old_models = {kind: {"step": best[0], "dev_accuracy": best[2],
                         **{k: results[k] for k in ("overall", "overlapped", "non_overlapped")}}
                  for kind, best in candidates.items() if best is not None}
    old = {"task": "langid", "model": "tiny", "seed": 1, "data": {**dirs, "test_id": "abc"},
           "selected": {"step": step, "dev_accuracy": dev_acc, "kind": kept}, **old_models, **results}
    models = {kind: LangIDCandidate.from_evaluation(best[0], best[2], results)
              for kind, best in candidates.items() if best is not None}
    new = LangIDResults.from_evaluation(model="tiny", seed=1, data=ResultsData(**dirs, test_id="abc"),
                                        selected={"step": step, "dev_accuracy": dev_acc, "kind": kept},
                                        candidates=models, evaluation=results).to_json()
    assert json.dumps(new, indent=1, ensure_ascii=False) == json.dumps(old, indent=1, ensure_ascii=False)
    assert LangIDResults.from_json(new, "r.json").to_json() == new


@pytest.mark.parametrize("lm", [None, "lm.arpa"])
def test_asr_writer_bytes(lm):
    scores = asr_scoring.score({"a": "x y", "b": "z z"}, {"a": "x y", "b": "w"}, {"a": "l1", "b": "l2"})
    data = {"train": "dump/train", "dev": "dump/dev", "test": "dump/test", "test_id": "abc"}
    selected = {"step": 5, "dev_wer": 0.4, "metric": "wer"}
    old = {"task": "asr", "model": "tiny", "seed": 3, "data": data, "vocab_size": 20, "decoding": "greedy",
           "languages": ["l1", "l2"], "selected": selected, **scores}
    if lm is not None:
        old["lm"] = str(lm)
    new = ASRResults.from_scores(model="tiny", seed=3, data=ResultsData(**data), vocab_size=20, decoding="greedy",
                                 languages=["l1", "l2"], selected=selected, scores=scores,
                                 lm=ABSENT if lm is None else str(lm)).to_json()
    assert json.dumps(new, indent=1, ensure_ascii=False) == json.dumps(old, indent=1, ensure_ascii=False)
    assert ASRResults.from_json(new, "r.json").to_json() == new


def test_probe_stage_writes_the_same_bytes(tmp_path, monkeypatch):
    """probe.run with a stand-in encoder: its results.json is the old dict literal's bytes."""
    utts = [f"u{i}" for i in range(12)]
    rng = np.random.default_rng(0)
    emo = {u: "happy" if i % 2 else "sad" for i, u in enumerate(utts)}
    spk = {u: f"s{i % 4}" for i, u in enumerate(utts)}
    vectors = {u: np.array([2.0, -2.0] if emo[u] == "happy" else [-2.0, 2.0]) + rng.normal(size=2) for u in utts}
    files = {"utt2emo": emo, "utt2spk": spk}
    dump = tmp_path / "dump"
    dump.mkdir()
    for name, mapping in files.items():
        (dump / name).write_text("".join(f"{u} {v}\n" for u, v in mapping.items()))
    monkeypatch.setattr(probe, "load_encoder", lambda source: None)
    monkeypatch.setattr(probe, "cached_embeddings", lambda *args, **kwargs: vectors)
    tasks = [{"name": "emotion", "label": "utt2emo", "protocol": "group_folds", "data": "d", "groups": "utt2spk",
              "folds": 2, "speaker_independent": True},
             {"name": "speaker", "label": "utt2spk", "protocol": "within_group", "data": "d", "groups": "utt2spk",
              "every": 3}]
    exp = tmp_path / "exp" / "probe" / "tiny"
    config = {"pretrained": str(tmp_path / "tiny.pt"), "exp_dir": str(exp), "datasets": {"d": str(dump)},
              "tasks": tasks, "layer": None, "progress": False, "batch_frames": 30000, "l2": 1e-3}
    returned = probe.run(config)
    read_file = lambda dataset, name: files[name]  # noqa: E731
    old = {"task": "probe", "model": probe.run_name(config["pretrained"]), "layer": None, "checkpoint": config["pretrained"], "tasks": {}}
    for task in tasks:
        old["tasks"][task["name"]] = probe.run_task(task, {"d": vectors}, read_file, 1e-3)
    with open(os.path.join(exp, "results.json"), encoding="utf-8") as f:
        text = f.read()
    assert text == json.dumps(old, indent=1) + "\n"
    assert returned == old
    assert ProbeResults.from_json(json.loads(text), "r.json").to_json() == old
