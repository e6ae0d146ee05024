"""masr.downstream.tokenizer: the SentencePiece tokenizer of a run (raised vocabulary, reuse,
determinism) and its CTC ids."""

import json
import os

import pytest
import torch

from masr.data.datadir import mapping_id
from masr.downstream import ctc_decoding
from masr.downstream.tokenizer import BLANK, CTCTokenizer, prepare_tokenizer, train_tokenizer

#: 5 scripts: Latin, Cyrillic, Devanagari, Arabic, kana, Hangul
MULTILINGUAL = ["dobar dan hvala", "добар дан хвала", "भूमिका खिलाड़ी उपचार", "اوپر درج ادبی",
                "ともかく かし アップデート", "한다면 그러 회의", "dan dobar"]


def distinct_chars(texts):
    return len({c for t in texts for c in t if c != " "})


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
    assert ctc_decoding.greedy_decode(logits, torch.tensor([logits.shape[1]]), tok.sp) == ["dan dobar"]
