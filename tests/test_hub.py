"""masr.hub: a run packed into a Hugging Face Hub model folder (config.json, model.safetensors,
README.md), loaded back with the same predictions, as data only; downloads by repository id
from a local server that answers like the Hub."""

import hashlib
import http.server
import json
import os
import pickle
import shutil
import threading

import numpy as np
import pytest
import torch
import yaml

from masr import hub, infer
from masr.features.fbank import FbankConfig

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def packed(models, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("packed")
    lid, enc = str(root / "lid"), str(root / "enc")
    hub.save_pretrained(models["langid"], lid)
    assert hub.main(["pack", models["run"], enc, "--fbank-config", models["fbank"]]) == 0
    return {"langid": lid, "embed": enc}


@pytest.fixture
def no_pickle(monkeypatch):
    """Any unpickling (torch.load, pickle) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a packed model must load without unpickling")
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


def _fbank(models):
    with open(models["fbank"], encoding="utf-8") as f:
        return FbankConfig(**yaml.safe_load(f))


# ---- packing and loading ------------------------------------------------------------------------
def test_packed_langid_gives_the_predictions_of_the_run_folder(models, packed, no_pickle, capsys):  # noqa: F811
    assert sorted(os.listdir(packed["langid"])) == ["README.md", "config.json", "model.safetensors"]
    lid = hub.from_pretrained(packed["langid"])
    assert isinstance(lid, infer.LanguageIdentifier) and lid.languages == ["hrv", "srp", "swe"]
    assert lid.fbank.num_mel_bins == 20
    config = json.load(open(os.path.join(packed["langid"], "config.json"), encoding="utf-8"))
    assert config["task"] == "langid" and config["encoder"]["class"] == "masr.ssl.bestrq.BestRQ"
    assert config["source"]["step"] == 2 and config["source"]["checkpoint"] == "step-00000002"
    with monkeypatch_allowing_torch_load():
        run = infer.LanguageIdentifier(models["langid"])
    for wav in models["wavs"]:
        got, want = lid.predict(wav, topk=3), run.predict(wav, topk=3)
        assert [lang for lang, _ in got] == [lang for lang, _ in want]
        assert np.allclose([p for _, p in got], [p for _, p in want], atol=1e-6)
    # masr.infer --model takes the packed folder: the same lines
    assert infer.main(["langid", "--model", packed["langid"], "--topk", "3", *models["wavs"]]) == 0
    packed_out = capsys.readouterr().out
    with monkeypatch_allowing_torch_load():
        assert infer.main(["langid", "--model", models["langid"], "--topk", "3", *models["wavs"]]) == 0
    assert capsys.readouterr().out == packed_out
    model, config = hub.load_model(packed["langid"])
    assert type(model).__name__ == "FineTuneModel" and not model.training


class monkeypatch_allowing_torch_load:
    """Undo :func:`no_pickle` for torch.load within a block (the run folder's checkpoints)."""

    def __enter__(self):
        import importlib

        self.patched = torch.load
        torch.load = importlib.import_module("torch.serialization").load
        return self

    def __exit__(self, *exc):
        torch.load = self.patched


def test_packed_encoder_gives_the_embeddings_of_the_run(models, packed, no_pickle, tmp_path):  # noqa: F811
    assert sorted(os.listdir(packed["embed"])) == ["README.md", "config.json", "model.safetensors"]
    emb = hub.from_pretrained(packed["embed"])
    assert isinstance(emb, infer.Embedder) and emb.fbank == _fbank(models)  # its own filterbank options
    with monkeypatch_allowing_torch_load():
        run = infer.Embedder(models["run"], fbank=_fbank(models))
        run1 = infer.Embedder(models["run"], layer=1, fbank=_fbank(models))
    for wav in models["wavs"]:
        assert np.allclose(emb(wav), run(wav), atol=1e-6)
    out = str(tmp_path / "emb")
    assert infer.main(["embed", "--model", packed["embed"], "--layer", "1", "--wav-scp", models["scp"],
                       "--out", out]) == 0
    import kaldiio

    vectors = dict(kaldiio.load_scp(out + ".scp"))
    assert np.allclose(vectors["rec_b"], run1(models["wavs"][1]), atol=1e-6)


def test_the_packed_folder_holds_no_pickle(packed):
    for folder in packed.values():
        for name in os.listdir(folder):
            assert not name.endswith((".pt", ".bin", ".pkl", ".ckpt"))
            with open(os.path.join(folder, name), "rb") as f:
                assert not f.read(1) == b"\x80"  # no pickle protocol header


def test_tied_weights_are_stored_once_and_loaded_back(tmp_path):
    shared = torch.arange(6.0).reshape(2, 3)
    state = {"a": shared, "b": shared, "c": shared[1], "d": torch.ones(2).expand(3, 2)}
    path = str(tmp_path / "w.safetensors")
    hub.save_weights(state, path)
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        assert sorted(f.keys()) == ["a", "c", "d"]  # b: an alias of a
    back = hub.load_weights(path)
    assert sorted(back) == ["a", "b", "c", "d"]
    for k in state:
        assert torch.equal(back[k], state[k])
    with pytest.raises(hub.PackError, match="not a tensor"):
        hub.save_weights({"x": 3}, path)


# ---- what loading refuses ---------------------------------------------------------------------------
def _crafted(packed, tmp_path, **changes):
    folder = str(tmp_path / "crafted")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(packed["langid"], folder)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config.update(changes)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return folder, config


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen", "torch.nn.Linear"])
def test_a_config_naming_another_class_is_refused(models, packed, tmp_path, capsys, name):  # noqa: F811
    _, config = _crafted(packed, tmp_path)
    folder, _ = _crafted(packed, tmp_path, encoder={**config["encoder"], "class": name})
    with pytest.raises(hub.PackError, match="not one of masr's encoders"):
        hub.from_pretrained(folder)
    assert infer.main(["langid", "--model", folder, models["wavs"][0]]) == 1
    assert "not one of masr's encoders" in capsys.readouterr().err


def test_files_outside_the_folder_are_refused(packed, tmp_path):
    secret = tmp_path / "elsewhere.model"
    secret.write_bytes(b"not yours")
    for tokenizer in ("../elsewhere.model", str(secret), "/etc/passwd"):
        folder, _ = _crafted(packed, tmp_path, task="asr", pooled=False, tokenizer=tokenizer)
        with pytest.raises(hub.PackError, match="tokenizer .* (outside|relative path inside)"):
            hub.load_model(folder)
    folder, _ = _crafted(packed, tmp_path, task="asr", pooled=False, tokenizer="tok.model")
    os.symlink(secret, os.path.join(folder, "tok.model"))  # a link leading out
    with pytest.raises(hub.PackError, match="outside the model folder"):
        hub.load_model(folder)
    folder, _ = _crafted(packed, tmp_path, weights="../model.safetensors")
    with pytest.raises(hub.PackError, match="weights must be"):
        hub.load_model(folder)
    folder, _ = _crafted(packed, tmp_path)
    os.replace(os.path.join(folder, "model.safetensors"), str(tmp_path / "w.safetensors"))
    os.symlink(str(tmp_path / "w.safetensors"), os.path.join(folder, "model.safetensors"))
    with pytest.raises(hub.PackError, match="outside the model folder"):
        hub.load_model(folder)


def test_a_malformed_config_is_refused(packed, tmp_path):
    for changes, message in (({"masr_format": 99}, "masr_format"), ({"task": "tts"}, "task"),
                             ({"labels": ["a"]}, "labels"), ({"fbank": {"evil": 1}}, "fbank"),
                             ({"layer": "1"}, "layer"), ({"num_outputs": 5}, "labels|does not fit")):
        folder, _ = _crafted(packed, tmp_path, **changes)
        with pytest.raises(hub.PackError, match=message):
            hub.load_model(folder)
    _, config = _crafted(packed, tmp_path)
    folder, _ = _crafted(packed, tmp_path, encoder={**config["encoder"], "hparams": {"d_model": 16}})
    with pytest.raises(hub.PackError):
        hub.load_model(folder)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(b"\x80\x04junk")
    with pytest.raises(hub.PackError):
        hub.load_model(folder)


# ---- the model card ------------------------------------------------------------------------------
def test_the_model_card_holds_the_runs_metrics(models, packed):  # noqa: F811
    with open(os.path.join(models["langid"], "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(packed["langid"], "README.md"), encoding="utf-8") as f:
        card = f.read()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "masr" and "masr" in meta["tags"]
    assert meta["language"] == ["hrv", "srp", "swe"] and meta["pipeline_tag"] == "audio-classification"
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["accuracy"] == round(100 * results["overall"]["accuracy"], 2)
    assert metrics["eer"] == round(100 * results["overall"]["eer"], 2)
    overall = [line for line in body.splitlines() if line.startswith("| overall |")][0]
    assert f"{100 * results['overall']['accuracy']:.2f}" in overall
    assert f"{100 * results['overall']['macro_f1']:.2f}" in overall
    assert "seed 1" in body and results["data"]["train"] in body
    assert "none in the results files" in body  # no confidence interval invented


def test_an_encoder_without_results_is_not_evaluated(packed):
    with open(os.path.join(packed["embed"], "README.md"), encoding="utf-8") as f:
        card = f.read()
    meta = yaml.safe_load(card.split("---\n", 2)[1])
    assert "metrics" not in meta and "model-index" not in meta
    assert "Not evaluated" in card


# ---- command line ---------------------------------------------------------------------------------
def test_pack_errors(models, packed, tmp_path, capsys):  # noqa: F811
    assert hub.main(["pack", str(tmp_path / "nope"), str(tmp_path / "out")]) == 1
    assert "error: " in capsys.readouterr().err
    assert hub.main(["pack", models["langid"], packed["langid"]]) == 1  # not empty
    assert "not empty" in capsys.readouterr().err
    assert hub.main(["pack", models["run"], str(tmp_path / "enc80")]) == 1  # 20-dim encoder, 80 bins
    assert "mel bins" in capsys.readouterr().err and not os.path.exists(tmp_path / "enc80")
    os.makedirs(tmp_path / "empty")
    assert hub.main(["pack", str(tmp_path / "empty"), str(tmp_path / "out")]) == 1
    assert "neither a fine-tuned model folder" in capsys.readouterr().err
    assert hub.main(["pack", models["langid"], str(tmp_path / "out"), "--layer", "1"]) == 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".pack.")]  # nothing half-written


# ---- download by repository id --------------------------------------------------------------------
class _FakeHub(http.server.BaseHTTPRequestHandler):
    """The endpoints huggingface_hub.snapshot_download uses: repo info (revision), tree, resolve."""

    repos = {}  # repo id -> folder
    sha = "0123456789abcdef0123456789abcdef01234567"
    requested = []

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=None, content_type="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _files(self, repo):
        folder = self.repos[repo]
        return sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))

    def do_GET(self):
        path = self.path.split("?")[0]
        self.requested.append(path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and "/".join(parts[2:4]) in self.repos:
            repo = "/".join(parts[2:4])
            if parts[4] == "revision":
                info = {"id": repo, "modelId": repo, "sha": self.sha, "private": False,
                        "siblings": [{"rfilename": n} for n in self._files(repo)]}
                return self._send(200, json.dumps(info).encode())
            if parts[4] == "tree":
                entries = []
                for n in self._files(repo):
                    data = open(os.path.join(self.repos[repo], n), "rb").read()
                    entries.append({"type": "file", "path": n, "size": len(data),
                                    "oid": hashlib.sha1(data).hexdigest()})
                return self._send(200, json.dumps(entries).encode())
        if len(parts) >= 5 and parts[2] == "resolve" and "/".join(parts[:2]) in self.repos:
            name = "/".join(parts[4:])
            if name in self._files("/".join(parts[:2])):
                data = open(os.path.join(self.repos["/".join(parts[:2])], name), "rb").read()
                etag = hashlib.sha1(data).hexdigest()
                return self._send(200, data, {"ETag": f'"{etag}"', "X-Repo-Commit": self.sha},
                                  "application/octet-stream")
        return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"})

    do_HEAD = do_GET


@pytest.fixture
def fake_hub(packed, tmp_path):
    repo = str(tmp_path / "repo")
    shutil.copytree(packed["langid"], repo)
    with open(os.path.join(repo, "pytorch_model.bin"), "wb") as f:  # never fetched
        f.write(b"\x80\x04 a pickle")
    _FakeHub.repos = {"someone/tiny-lid": repo}
    _FakeHub.requested = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_from_pretrained_downloads_a_repository_id(models, packed, fake_hub, tmp_path, monkeypatch):  # noqa: F811
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub)  # what from_pretrained passes on as the endpoint
    lid = hub.from_pretrained("someone/tiny-lid", cache_dir=str(tmp_path / "cache"))
    assert isinstance(lid, infer.LanguageIdentifier)
    assert sorted(os.listdir(lid.model_dir)) == ["README.md", "config.json", "model.safetensors"]
    assert not any(p.endswith(".bin") for p in _FakeHub.requested)
    local = hub.from_pretrained(packed["langid"])
    for wav in models["wavs"]:
        assert lid.predict(wav, topk=3) == local.predict(wav, topk=3)
    with pytest.raises(hub.PackError, match="not a model folder, nor a Hub repository id"):
        hub.from_pretrained(str(tmp_path / "a" / "b" / "c"))
