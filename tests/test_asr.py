"""masr.downstream.asr: the stage's config checks (language model, crops) and a 2-step end-to-end
run whose model folder transcribes (its parts: tests/test_tokenizer.py, test_ctc.py,
test_ctc_decoding.py and test_asr_scoring.py)."""

import json
import os

import pytest
import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.downstream import asr, ctc_decoding, finetune
from masr.downstream.ctc_decoding import CTCBeamDecoder, ctc_greedy
from masr.downstream.tokenizer import CTCTokenizer
from masr.utils.progress import from_config
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import make_pretrain_run


# --------------------------------------------------------------------------------------------------
# config checks
# --------------------------------------------------------------------------------------------------

#: A valid set of the keys check_config reads (as egs/mini/conf/asr.yaml sets them).
CHECKED = {"crop_frames": None, "beam_size": 1, "lm": None, "selection_metric": "wer", "languages": None}


def test_language_model_path_is_checked_not_faked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        ctc_decoding.check_lm(str(tmp_path / "missing.arpa"))
    with pytest.raises(ValueError, match="beam_size > 1"):
        asr.check_config({**CHECKED, "lm": str(tmp_path / "lm.arpa"), "beam_size": 1})
    asr.check_config({**CHECKED, "lm": None, "beam_size": 4})
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\t<unk>\n\n\\end\\\n")
    try:
        import kenlm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="kenlm.*pip install"):
            asr.check_config({**CHECKED, "lm": str(arpa), "beam_size": 4})
        with pytest.raises(ImportError, match="kenlm"):
            CTCBeamDecoder(5, beam_size=4, lm=str(arpa))
    else:  # pragma: no cover - kenlm is not a dependency of the project
        asr.check_config({**CHECKED, "lm": str(arpa), "beam_size": 4})


def test_crop_frames_is_refused():
    with pytest.raises(ValueError, match="crop_frames.*whole utterances"):
        asr.check_config({**CHECKED, "crop_frames": 300})
    asr.check_config({**CHECKED, "crop_frames": None})


# --------------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    dumps = {name: make_dump_dir(str(root / "dump" / name), num_utts=n, min_frames=80, max_frames=160, seed=s)
             for name, n, s in (("train", 16, 0), ("dev", 6, 1), ("test", 6, 2))}
    run_dir = make_pretrain_run(str(root / "exp" / "tiny_ssl"), dumps["train"])
    fbank = root / "fbank.yaml"
    fbank.write_text("num_mel_bins: 20\nframe_shift: 10.0\n")
    return root, dumps, run_dir, str(fbank)


def test_two_step_run_writes_results_and_a_loadable_model(recipe, capsys):
    from masr.report.loading import load_results

    root, dumps, run_dir, fbank = recipe
    exp = root / "exp" / "asr" / "tiny_ssl" / "seed3"
    conf = root / "asr.yaml"
    conf.write_text(open(os.path.join(os.path.dirname(__file__), "..", "egs", "mini", "conf", "asr.yaml")).read())
    argv = [str(conf), "--pretrained", run_dir, "--train_dir", dumps["train"], "--dev_dir", dumps["dev"],
            "--test_dir", dumps["test"], "--exp_dir", str(exp), "--seed", "3", "--fbank_config", fbank,
            "--max_steps", "2", "--freeze_encoder_steps", "1", "--warmup_steps", "1", "--checkpoint_every", "1",
            "--vocab_size", "20", "--max_batch_frames", "800", "--progress", "false", "--device", "cpu",
            "--languages", "null"]
    assert asr.main(argv) == 0
    out = capsys.readouterr().out
    assert "test: average WER" in out and "selected step" in out
    results = load_results(str(exp / "results.json"), "asr")  # the report stage's schema check
    assert set(results) - {"_path"} == {"task", "model", "seed", "data", "vocab_size", "decoding", "selected",
                                        "languages", "per_language", "average", "overall"}
    assert results["model"] == "tiny_ssl" and results["seed"] == 3 and results["decoding"] == "greedy"
    assert set(results["data"]) == {"train", "dev", "test", "test_id"}
    metric = results["selected"]["metric"]
    assert set(results["selected"]) == {"step", f"dev_{metric}", "metric"} and results["selected"]["step"] in (1, 2)
    assert sorted(results["per_language"]) == ["hrv", "srp", "swe"]
    for entry in results["per_language"].values():
        assert set(entry) == {"wer", "cer", "num_words", "num_utts"}
    assert sum(e["num_utts"] for e in results["per_language"].values()) == 6
    assert results["vocab_size"] == json.loads((exp / "tokenizer" / "tokenizer.json").read_text())["vocab_size"]
    lines = (exp / "hypotheses.tsv").read_text().splitlines()
    assert lines[0] == "utt\tlang\treference\thypothesis" and len(lines) == 7
    assert (exp / "per_language.tsv").read_text().startswith("language\t")
    assert (exp / "wer_details.test.txt").read_text().startswith("%WER ")
    assert (exp / "cer_details.test.txt").read_text().startswith("%WER ")
    assert (exp / "selection.tsv").read_text().count("*") == 1

    model, spec = finetune.load_finetuned(str(exp))
    assert spec["task"] == "asr" and spec["tokenizer"] == "tokenizer/sp.model" and spec["decoding"] == "greedy"
    assert spec["num_outputs"] == results["vocab_size"] + 1 and spec["fbank"]["num_mel_bins"] == 20
    data = FeatsDataset(dumps["test"])
    batch = collate_feats([data[i] for i in range(3)])
    hyps = ctc_decoding.transcribe(model, spec, str(exp), batch["feats"], batch["lengths"])
    logits, lengths = model(batch["feats"], batch["lengths"])
    tok = CTCTokenizer(str(exp / "tokenizer" / "sp.model"))
    assert hyps == [tok.decode(ctc_greedy(x, n)) for x, n in zip(logits, lengths.tolist())]
    capsys.readouterr()
    every = ctc_decoding.transcribe_dir(model, tok, dumps["test"], progress=True)  # the test-set bar, forced
    assert "decoding test" in capsys.readouterr().err and len(every) == 6
    ctc_decoding.transcribe_dir(model, tok, dumps["test"], progress=from_config({"progress": False}))
    assert "decoding" not in capsys.readouterr().err
    # a head that always says the first piece of "dan": one output per utterance (repeats collapse)
    piece = tok.encode("dan")[0]
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[piece] = 10.0
    for beam_size in (None, 2):
        assert ctc_decoding.transcribe(model, spec, str(exp), batch["feats"], batch["lengths"], beam_size) == \
            [tok.decode([piece])] * 3

    # a finished run started again trains nothing more and gives the same results
    assert asr.main(argv) == 0
    again = json.loads((exp / "results.json").read_text())
    assert again["average"] == results["average"] and again["selected"] == results["selected"]


def test_ctc_fine_tuning_overfits_a_dozen_utterances(recipe, tmp_path):
    """The learning check: CTC fine-tuning through the stage's own entry point must memorise 12
    training utterances (6 distinct transcripts) to a low CER within 600 steps (~10 s). Fails when ASR stops
    learning (a broken loss, targets, lengths, learning rates, decoding or checkpoint selection)."""
    root, dumps, run_dir, fbank = recipe
    train = make_dump_dir(str(tmp_path / "train"), num_utts=12, min_frames=100, max_frames=140, seed=5)
    exp = tmp_path / "exp"
    conf = root / "asr_overfit.yaml"
    conf.write_text(open(os.path.join(os.path.dirname(__file__), "..", "egs", "mini", "conf", "asr.yaml")).read())
    argv = [str(conf), "--pretrained", run_dir, "--train_dir", train, "--dev_dir", train, "--test_dir", train,
            "--exp_dir", str(exp), "--seed", "1", "--fbank_config", fbank, "--languages", "null",
            "--max_steps", "600", "--warmup_steps", "10", "--checkpoint_every", "150", "--dropout", "0.0",
            "--max_batch_frames", "600", "--lr", "0.01", "--encoder_lr", "0.01", "--decay", "constant",
            "--progress", "false", "--device", "cpu", "--cpu_threads", "1"]
    assert asr.main(argv) == 0
    results = json.loads((exp / "results.json").read_text())
    # measured: CER 0.12 at step 600 (WER 0.39); all-blank outputs give CER 1.0
    assert results["overall"]["cer"] < 0.3, results["overall"]
    first = (exp / "selection.tsv").read_text().splitlines()[1].split("\t")  # step 150: on the blank plateau
    assert float(first[1]) > 0.6 and results["selected"]["step"] == 600
