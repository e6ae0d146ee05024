"""masr.downstream.asr: tokenizer, CTC ids, decoding, WER / CER, the long-target filter and a
2-step end-to-end run whose model folder transcribes."""

import json
import os

import pytest
import torch

from masr.data.datadir import mapping_id
from masr.data.dataset import FeatsDataset, collate_feats
from masr.downstream import asr, finetune
from masr.downstream.asr import (BLANK, CTCBeamDecoder, CTCDataset, CTCTokenizer, cer, collapse, ctc_greedy,
                                 ctc_loss, ctc_prefix_beam_search, min_ctc_frames, prepare_tokenizer, score,
                                 train_tokenizer)
from masr.metrics import edit_distance, wer
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import make_pretrain_run

#: 5 scripts: Latin, Cyrillic, Devanagari, Arabic, kana, Hangul
MULTILINGUAL = ["dobar dan hvala", "добар дан хвала", "भूमिका खिलाड़ी उपचार", "اوپر درج ادبی",
                "ともかく かし アップデート", "한다면 그러 회의", "dan dobar"]


def distinct_chars(texts):
    return len({c for t in texts for c in t if c != " "})


# --------------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------------

def test_tokenizer_raises_a_too_small_vocabulary_and_records_it(tmp_path, capsys):
    texts = {f"u{i}": t for i, t in enumerate(MULTILINGUAL)}
    meta = prepare_tokenizer(texts, str(tmp_path), vocab_size=10, model_type="unigram")
    needed = distinct_chars(MULTILINGUAL) + 2  # + the word boundary and <unk>
    assert "raised to" in capsys.readouterr().out
    assert meta["requested_vocab_size"] == 10 and meta["vocab_size"] >= needed
    assert CTCTokenizer(str(tmp_path / "tokenizer" / "sp.model")).vocab_size == meta["vocab_size"]
    assert sorted(os.listdir(tmp_path)) == ["tokenizer"]  # no temporary folder left
    assert sorted(os.listdir(tmp_path / "tokenizer")) == ["sp.model", "sp.vocab", "tokenizer.json"]


def test_tokenizer_is_reused_deterministic_and_guarded(tmp_path, capsys):
    texts = {f"u{i}": t for i, t in enumerate(MULTILINGUAL * 3)}
    model = tmp_path / "a" / "tokenizer" / "sp.model"
    prepare_tokenizer(texts, str(tmp_path / "a"), vocab_size=60, model_type="unigram")
    first = model.read_bytes()
    capsys.readouterr()
    mtime = os.stat(model).st_mtime_ns
    prepare_tokenizer(texts, str(tmp_path / "a"), vocab_size=60, model_type="unigram")
    assert os.stat(model).st_mtime_ns == mtime  # same text, same settings: kept
    prepare_tokenizer(texts, str(tmp_path / "b"), vocab_size=60, model_type="unigram")
    assert (tmp_path / "b" / "tokenizer" / "sp.model").read_bytes() == first  # deterministic
    changed = dict(texts, u0="dobar dan")
    prepare_tokenizer(changed, str(tmp_path / "a"), vocab_size=60, model_type="unigram")  # retrained
    assert json.loads((model.parent / "tokenizer.json").read_text())["text_id"] == mapping_id(changed)
    os.makedirs(tmp_path / "a" / "checkpoints" / "step-00000001")
    (tmp_path / "a" / "checkpoints" / "step-00000001" / "state.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="text_id.*use a new exp_dir"):
        prepare_tokenizer(texts, str(tmp_path / "a"), vocab_size=60, model_type="unigram")


def test_ctc_ids_round_trip(tmp_path):
    size = train_tokenizer(MULTILINGUAL, str(tmp_path / "tok"), vocab_size=80, model_type="unigram")
    tok = CTCTokenizer(str(tmp_path / "tok" / "sp.model"))
    assert tok.num_outputs == size + 1 == tok.vocab_size + 1
    for text in MULTILINGUAL:
        ids = tok.encode(text)
        assert ids and BLANK not in ids and max(ids) < tok.num_outputs
        assert ids == [i + 1 for i in tok.sp.encode(text)]
        assert tok.decode(ids) == text  # no normalisation: the text comes back as it was
        assert tok.decode([BLANK] + ids + [BLANK]) == text  # blanks are ignored
    assert tok.sp.unk_id() == 0 and 1 in tok.encode("dobar Ω")  # sentencepiece <unk> (0) is CTC output 1
    assert tok.sp.bos_id() == tok.sp.eos_id() == -1
    # a bare SentencePiece model works through greedy_decode the same way
    logits = torch.nn.functional.one_hot(torch.tensor([[0] + tok.encode("dan dobar")]), tok.num_outputs).float()
    assert asr.greedy_decode(logits, torch.tensor([logits.shape[1]]), tok.sp) == ["dan dobar"]


# --------------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------------

def test_greedy_collapses_repeats_and_drops_blanks():
    path = torch.tensor([0, 2, 2, 0, 2, 3, 3, 3, 0, 0, 1, 1])
    noise = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    logits = torch.nn.functional.one_hot(path, 4).float() * 5 + noise
    assert ctc_greedy(logits) == [2, 2, 3, 1]
    assert ctc_greedy(logits, length=6) == [2, 2, 3]
    assert collapse([0, 0, 0]) == [] and collapse([]) == [] and collapse([1, 1, 1]) == [1]


def test_prefix_beam_search_agrees_with_greedy_on_peaked_outputs():
    g = torch.Generator().manual_seed(1)
    path = torch.randint(0, 6, (30,), generator=g)
    logits = torch.nn.functional.one_hot(path, 6).float() * 8 + torch.randn(30, 6, generator=g)
    log_probs = torch.log_softmax(logits, -1)
    assert ctc_prefix_beam_search(log_probs, beam_size=4) == ctc_greedy(log_probs) == collapse(path.tolist())
    assert ctc_prefix_beam_search(log_probs, beam_size=1) == ctc_greedy(log_probs)


def test_prefix_beam_search_finds_a_better_labelling_than_greedy():
    # 3 frames over {blank, a, b}: the best path is "_ _ _" (0.4^3 = 0.064), but the paths of "a" add up to more
    probs = torch.tensor([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25], [0.4, 0.35, 0.25]])
    assert ctc_greedy(probs.log()) == []
    assert ctc_prefix_beam_search(probs.log(), beam_size=3) == [1]
    # brute force: the most probable labelling over all 27 paths
    totals = {}
    for a in range(3):
        for b in range(3):
            for c in range(3):
                key = tuple(collapse([a, b, c]))
                totals[key] = totals.get(key, 0.0) + float(probs[0, a] * probs[1, b] * probs[2, c])
    assert max(totals, key=totals.get) == (1,)


#: The project's own prefix beam search (before SpeechBrain's) on log_softmax(4 * randn(60, 8)) of
#: torch.Generator().manual_seed(0), beam 4 (beam 2 gave the greedy hypothesis, less probable).
TODAYS_BEAM_SEED0 = [4, 5, 7, 5, 6, 5, 2, 3, 5, 6, 1, 6, 4, 2, 6, 7, 3, 7, 3, 6, 2, 7, 4, 1, 6, 4, 6, 4, 7, 1, 4, 3,
                     4, 6, 1, 6, 5, 3, 5, 2, 1, 6, 3, 6, 4, 5, 3, 6]


def _log_p(log_probs, ids):
    """log P(labelling) under CTC (the forward algorithm of torch's ctc_loss)."""
    if not ids:
        return float(log_probs[:, BLANK].sum())
    return -float(torch.nn.functional.ctc_loss(log_probs[:, None], torch.tensor([ids]), torch.tensor([len(log_probs)]),
                                               torch.tensor([len(ids)]), reduction="sum"))


def test_library_beam_search_gives_todays_hypotheses_on_a_fixed_case():
    lp = [torch.log_softmax(torch.randn(60, 8, generator=torch.Generator().manual_seed(s)) * 4, -1) for s in range(3)]
    assert ctc_prefix_beam_search(lp[0], beam_size=4) == TODAYS_BEAM_SEED0
    assert ctc_greedy(lp[0]) != TODAYS_BEAM_SEED0  # the case is one where the beam matters
    # beam 2: today's search kept the greedy hypothesis; the library's finds the beam-4 one, more probable
    assert ctc_prefix_beam_search(lp[0], beam_size=2) == TODAYS_BEAM_SEED0
    assert _log_p(lp[0], TODAYS_BEAM_SEED0) > _log_p(lp[0], ctc_greedy(lp[0]))
    for x in lp[1:]:  # seeds 1 and 2: today's beam 2 and 4 hypotheses were the greedy ones
        for beam in (2, 4):
            assert ctc_prefix_beam_search(x, beam_size=beam) == ctc_greedy(x)
    # with a length: the padding frames are not decoded
    padded = torch.cat([lp[0], torch.log_softmax(torch.randn(7, 8) * 4, -1)])
    assert CTCBeamDecoder(8, beam_size=4).best_ids(padded, length=60) == TODAYS_BEAM_SEED0


def test_decode_batch_beam_detokenises_like_greedy(tmp_path):
    train_tokenizer(MULTILINGUAL, str(tmp_path / "tok"), vocab_size=80, model_type="unigram")
    tok = CTCTokenizer(str(tmp_path / "tok" / "sp.model"))
    texts = ["dan dobar", "добар дан хвала"]
    paths = [[0] + [x for i in tok.encode(t) for x in (i, i, 0)] for t in texts]
    length = max(map(len, paths))
    logits = torch.stack([torch.nn.functional.one_hot(torch.tensor(p + [0] * (length - len(p))), tok.num_outputs)
                          for p in paths]).float() * 6
    lengths = torch.tensor([len(p) for p in paths])
    assert asr.decode_batch(logits, lengths, tok, beam_size=1) == texts
    assert asr.decode_batch(logits, lengths, tok, beam_size=3) == texts


def test_language_model_path_is_checked_not_faked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        asr.check_lm(str(tmp_path / "missing.arpa"))
    with pytest.raises(ValueError, match="beam_size > 1"):
        asr.check_config({"lm": str(tmp_path / "lm.arpa"), "beam_size": 1})
    asr.check_config({"lm": None, "beam_size": 4})
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\t<unk>\n\n\\end\\\n")
    try:
        import kenlm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="kenlm.*pip install"):
            asr.check_config({"lm": str(arpa), "beam_size": 4})
        with pytest.raises(ImportError, match="kenlm"):
            CTCBeamDecoder(5, beam_size=4, lm=str(arpa))
    else:  # pragma: no cover - kenlm is not a dependency of the project
        asr.check_config({"lm": str(arpa), "beam_size": 4})


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------

def _todays_rates(refs, hyps):
    """WER and CER as the project computed them before SpeechBrain's ErrorRateStats: masr.metrics.edit_distance
    of each pair, summed."""
    w = [edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps)]
    c = [edit_distance(list(r.replace(" ", "")), list(h.replace(" ", ""))) for r, h in zip(refs, hyps)]
    return (sum(x["errors"] for x in w) / sum(x["ref_len"] for x in w),
            sum(x["errors"] for x in c) / sum(x["ref_len"] for x in c))


@pytest.mark.parametrize("refs,hyps", [
    (["the cat sat", "on the mat", "ともかく"], ["the bat sat down", "on mat", "ともかくか"]),
    (["a b c", "d e"], ["", "d e"]),  # an empty hypothesis: all deletions
    (["", "a b"], ["x y", "a b"]),  # an empty reference: insertions, no word
    (["", "a"], ["", ""]),
    (["a b c d", "a b"], ["a x d e", "b a"]),  # tied alignments
    (["добар дан хвала", "한다면 그러 회의"], ["добар дан", "한다면그러 회의 회"]),
])
def test_wer_and_cer_agree_with_todays_numbers(refs, hyps):
    todays_wer, todays_cer = _todays_rates(refs, hyps)
    assert wer(refs, hyps)["wer"] == todays_wer  # same integer counts, same division: exactly equal
    assert cer(refs, hyps)["cer"] == todays_cer


def test_wer_and_cer_agree_with_todays_numbers_on_random_cases():
    import random

    rng = random.Random(0)
    words = ["a", "b", "ab", "ba", "c"]
    for _ in range(200):
        refs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(4)]
        hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(4)]
        if not any(r.split() for r in refs):
            continue
        assert (wer(refs, hyps)["wer"], cer(refs, hyps)["cer"]) == _todays_rates(refs, hyps)


def test_score_writes_per_utterance_alignments(tmp_path):
    refs = {"u2": "p q", "u1": "x y z", "u3": ""}
    hyps = {"u2": "p r", "u1": "", "u3": "w"}
    langs = {"u1": "aaa", "u2": "bbb", "u3": "bbb"}
    out = score(refs, hyps, langs, details_dir=str(tmp_path), set_name="test")
    assert out == score(refs, hyps, langs)  # writing the details changes no number
    assert out["overall"]["wer"] == pytest.approx(5 / 5) and out["overall"]["cer"] == pytest.approx(5 / 5)
    wer_text = (tmp_path / "wer_details.test.txt").read_text()
    cer_text = (tmp_path / "cer_details.test.txt").read_text()
    assert wer_text.startswith("%WER 100.00 [ 5 / 5, 1 ins, 3 del, 1 sub ]")
    assert cer_text.startswith("%WER 100.00 [ 5 / 5, 1 ins, 3 del, 1 sub ]")  # SpeechBrain's header says WER
    assert [line.split(",")[0] for line in wer_text.splitlines() if line.startswith("u")] == ["u1", "u2", "u3"]
    assert "p ; q\n= ; S\np ; r\n" in wer_text  # reference, operations, hypothesis
    assert "  x   ;   y   ;   z  \n  D   ;   D   ;   D  \n" in wer_text



def test_wer_and_cer_hand_computed():
    refs = ["the cat sat", "on the mat", "ともかく"]
    hyps = ["the bat sat down", "on mat", "ともかくか"]
    # words: sub cat->bat, ins down | del the | sub ともかく -> ともかくか  => 4 errors / 7 words
    w = wer(refs, hyps)
    assert (w["substitutions"], w["deletions"], w["insertions"], w["words"]) == (2, 1, 1, 7)
    # chars without spaces: thecatsat/thebatsatdown: 1 sub + 4 ins; onthemat/onmat: 3 del; +1 ins  => 9 / 21
    c = cer(refs, hyps)
    assert (c["substitutions"], c["deletions"], c["insertions"], c["chars"]) == (1, 3, 5, 21)
    assert c["cer"] == pytest.approx(9 / 21)
    assert cer(["a b"], ["ab"])["cer"] == 0.0  # spaces do not count
    assert cer(["abc"], [""])["cer"] == 1.0
    with pytest.raises(ValueError):
        cer([" "], ["a"])


def test_score_averages_over_languages_and_pools_overall():
    refs = {"a1": "x y z w", "a2": "x", "b1": "p q"}
    hyps = {"a1": "x y z w", "a2": "x", "b1": "p r"}
    langs = {"a1": "aaa", "a2": "aaa", "b1": "bbb"}
    out = score(refs, hyps, langs)
    assert out["per_language"]["aaa"] == {"wer": 0.0, "cer": 0.0, "num_words": 5, "num_utts": 2}
    assert out["per_language"]["bbb"]["wer"] == 0.5 and out["per_language"]["bbb"]["cer"] == 0.5
    assert out["average"] == {"wer": 0.25, "cer": 0.25}
    assert out["overall"]["wer"] == pytest.approx(1 / 7) and out["overall"]["cer"] == pytest.approx(1 / 7)


# --------------------------------------------------------------------------------------------------
# training data and loss
# --------------------------------------------------------------------------------------------------

def test_min_ctc_frames_counts_a_blank_between_repeats():
    assert min_ctc_frames([1, 1, 1]) == 5 and min_ctc_frames([1, 2, 1]) == 3


def test_ctc_loss_matches_the_per_utterance_definition():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 4, generator=g)
    lengths, targets = torch.tensor([6, 4]), [[1, 2, 2], [3]]
    per_utt = [torch.nn.functional.ctc_loss(torch.log_softmax(logits[b, :lengths[b]], -1), torch.tensor(targets[b]),
                                            lengths[b:b + 1], torch.tensor([len(targets[b])]), reduction="sum")
               for b in range(2)]
    expected = (per_utt[0] / 3 + per_utt[1] / 1) / 2
    assert ctc_loss(logits, lengths, targets) == pytest.approx(float(expected), rel=1e-5)
    # an impossible alignment gives 0, not inf
    assert float(ctc_loss(logits[:1, :2], torch.tensor([2]), [[1, 1, 1]])) == 0.0


class _Tok:
    """One CTC output per character (a = 1, b = 2, ...), spaces dropped."""

    def encode(self, text):
        return [ord(c) - ord("a") + 1 for c in text if c != " "]


def test_targets_longer_than_the_encoder_output_are_dropped(tmp_path):
    dump = make_dump_dir(str(tmp_path / "d"), num_utts=12, min_frames=10, max_frames=60, seed=3)
    data = FeatsDataset(dump)
    texts = {u: "ab" * (i + 1) for i, u in enumerate(data.utt_ids)}  # 2 .. 24 tokens
    kept = CTCDataset(data, texts, _Tok(), torch.nn.Module())
    out = {u: ((n - 1) // 2 - 1) // 2 for u, n in zip(data.utt_ids, data.num_frames)}  # 4x subsampling
    expected = [u for u in data.utt_ids if len(texts[u]) > out[u]]
    assert expected and len(expected) < len(data)  # the case is tested both ways
    assert [d[0] for d in kept.dropped] == expected
    assert kept.utt_ids == [u for u in data.utt_ids if u not in expected]
    assert kept.num_frames == [n for u, n in zip(data.utt_ids, data.num_frames) if u not in expected]
    item = kept[0]
    assert item["utt"] == kept.utt_ids[0] and item["targets"] == _Tok().encode(texts[item["utt"]])
    assert collate_feats([kept[0], kept[1]])["targets"] == [kept.targets[0], kept.targets[1]]


def test_crop_frames_is_refused():
    with pytest.raises(ValueError, match="crop_frames.*whole utterances"):
        asr.check_config({"crop_frames": 300})
    asr.check_config({"crop_frames": None})


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
    from masr.report.results import load_results

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
    hyps = asr.transcribe(model, spec, str(exp), batch["feats"], batch["lengths"])
    logits, lengths = model(batch["feats"], batch["lengths"])
    tok = CTCTokenizer(str(exp / "tokenizer" / "sp.model"))
    assert hyps == [tok.decode(ctc_greedy(x, n)) for x, n in zip(logits, lengths.tolist())]
    capsys.readouterr()
    every = asr.transcribe_dir(model, tok, dumps["test"], progress=True)  # the test-set bar, forced
    assert "decoding test" in capsys.readouterr().err and len(every) == 6
    asr.transcribe_dir(model, tok, dumps["test"], progress=asr.from_config({"progress": False}))
    assert "decoding" not in capsys.readouterr().err
    # a head that always says the first piece of "dan": one output per utterance (repeats collapse)
    piece = tok.encode("dan")[0]
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[piece] = 10.0
    for beam_size in (None, 2):
        assert asr.transcribe(model, spec, str(exp), batch["feats"], batch["lengths"], beam_size) == \
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
