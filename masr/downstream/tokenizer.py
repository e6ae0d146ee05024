"""The ASR tokenizer: SentencePiece pieces as CTC outputs (for :mod:`masr.downstream.asr`).

A SentencePiece model (``model_type``, ``vocab_size`` of the config) trained on the transcripts of
``train_dir`` (its ``text``), kept in ``<exp_dir>/tokenizer/`` (``sp.model``, ``sp.vocab`` and
``tokenizer.json``: the digest of the training text and the settings; a later run with the same
text and settings reuses it). Character coverage is 1.0: every character of the training text
(26 languages, Latin, Cyrillic, Devanagari, Arabic script, kana, Hangul) is a piece, so the
vocabulary cannot be smaller than the number of distinct characters + 2 (the word boundary ``▁``
and ``<unk>``); a smaller ``vocab_size`` is raised to that (a printed line says so,
``tokenizer.json`` and ``results.json`` record the final size). Training is deterministic: every
sentence, in utterance-id order, one thread.

Text normalisation: none. ``text`` is taken as already normalised by the corpus preparation,
and SentencePiece's own normalisation is switched off (``normalization_rule_name: identity``;
its default NFKC would rewrite some characters of the references); only runs of spaces are
collapsed. Hypotheses and references are compared as they are (:mod:`masr.downstream.asr_scoring`).

CTC outputs (:class:`CTCTokenizer`): ``vocab_size + 1``, the blank is 0 and SentencePiece piece
``i`` is output ``i + 1`` (``<unk>``, piece 0, is output 1; no BOS / EOS).
"""

import os
import re
import shutil
import tempfile

from masr.data.datadir import mapping_id
from masr.downstream import finetune
from masr.train.checkpoint import list_checkpoints

#: CTC blank output; SentencePiece piece i is output i + PIECE_OFFSET.
BLANK = 0
PIECE_OFFSET = 1
#: Folder of the tokenizer inside the exp dir, and its files.
TOKENIZER_DIR = "tokenizer"
TOKENIZER_MODEL = os.path.join(TOKENIZER_DIR, "sp.model")


def required_vocab_size(sentences):
    """The smallest SentencePiece vocabulary that covers every character of ``sentences``.

    With character coverage 1.0 every distinct character is a piece; the space becomes the word
    boundary piece ``▁``, and ``<unk>`` takes one more id.

    Arguments
    ---------
    sentences : list of str

    Returns
    -------
    int

    Example
    -------
    >>> required_vocab_size(["ab a", "ба"])  # a, b, б, а + ▁ + <unk>
    6
    """
    chars = set()
    for sentence in sentences:
        chars.update(sentence)
    chars.discard(" ")
    return len(chars) + 2


def _train_sentencepiece(sentences, folder, vocab_size, model_type):
    """``folder/sp.model`` and ``folder/sp.vocab`` (piece, score). The model goes through memory, not
    ``model_prefix``: SentencePiece would record that (temporary) path in the model."""
    import io

    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=proto, model_type=model_type, vocab_size=vocab_size,
        character_coverage=1.0, normalization_rule_name="identity",
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=1,
        hard_vocab_limit=False,  # a tiny corpus may not have vocab_size pieces: take what it has
        minloglevel=2)
    with open(os.path.join(folder, "sp.model"), "wb") as f:
        f.write(proto.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    with open(os.path.join(folder, "sp.vocab"), "w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")


def train_tokenizer(sentences, out_dir, vocab_size, model_type="unigram", meta=None):
    """Train a SentencePiece model on ``sentences`` into ``out_dir`` (``sp.model``, ``sp.vocab``).

    The model is trained in a temporary folder next to ``out_dir``, which then replaces
    ``out_dir`` (a crash never leaves half a tokenizer). A ``vocab_size`` below
    :func:`required_vocab_size` is raised to it, with a printed line.

    Arguments
    ---------
    sentences : list of str
        The training transcripts.
    out_dir : str
    vocab_size : int
        Requested number of pieces.
    model_type : str
        ``unigram``, ``bpe``, ``char`` or ``word``.
    meta : dict or None
        Written to ``out_dir/tokenizer.json`` with ``vocab_size`` (the final size) added.

    Returns
    -------
    int
        The number of pieces of the trained model (may be below the requested size when the text
        has fewer distinct pieces to offer).
    """
    import sentencepiece as spm

    sentences = list(sentences)
    if not sentences:
        raise ValueError(f"{out_dir}: no transcript to train the tokenizer on")
    size = int(vocab_size)
    required = required_vocab_size(sentences)
    if required > size:
        print(f"tokenizer: vocab_size {size} is below the {required} pieces that cover the {required - 2} "
              f"distinct characters of the training text (character coverage 1.0): raised to {required}", flush=True)
        size = required
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tokenizer.")
    try:
        try:
            _train_sentencepiece(sentences, tmp, size, model_type)
        except RuntimeError as e:  # SentencePiece counted more required characters than we did
            m = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(e))
            if not m:
                raise
            print(f"tokenizer: SentencePiece needs {m.group(1)} pieces: vocab_size raised to {m.group(1)}", flush=True)
            _train_sentencepiece(sentences, tmp, int(m.group(1)), model_type)
        final = spm.SentencePieceProcessor(model_file=os.path.join(tmp, "sp.model")).get_piece_size()
        if meta is not None:
            finetune.write_json(os.path.join(tmp, "tokenizer.json"), {**meta, "vocab_size": final})
        old = None
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(dir=parent, prefix=".tokenizer.old.")
            os.rename(out_dir, os.path.join(old, "tokenizer"))
        os.rename(tmp, out_dir)
        tmp = None
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def prepare_tokenizer(texts, exp_dir, vocab_size, model_type="unigram"):
    """The tokenizer of a run: ``<exp_dir>/tokenizer``, trained on ``texts`` unless already there.

    ``tokenizer/tokenizer.json`` records the digest of the training text (:func:`masr.data.datadir.mapping_id`) and the
    settings; a tokenizer with the same ones is reused. One trained on other text or settings is
    replaced, unless the run already has checkpoints (their output layer belongs to it): then
    ValueError.

    Arguments
    ---------
    texts : dict
        utt -> transcript (``text`` of the training set).
    exp_dir : str
    vocab_size : int
    model_type : str

    Returns
    -------
    dict
        The contents of ``tokenizer.json``: ``text_id``, ``model_type``, ``requested_vocab_size``,
        ``vocab_size`` (final), ``character_coverage``, ``normalization``, ``num_sentences``.
    """
    import json

    out_dir = os.path.join(exp_dir, TOKENIZER_DIR)
    meta_file = os.path.join(out_dir, "tokenizer.json")
    wanted = {"text_id": mapping_id(texts), "model_type": model_type, "requested_vocab_size": int(vocab_size),
              "character_coverage": 1.0, "normalization": "identity", "num_sentences": len(texts)}
    if os.path.isfile(meta_file) and os.path.isfile(os.path.join(out_dir, "sp.model")):
        with open(meta_file, encoding="utf-8") as f:
            meta = json.load(f)
        if all(meta.get(k) == v for k, v in wanted.items()):
            return meta
        if list_checkpoints(os.path.join(exp_dir, "checkpoints")):
            differ = sorted(k for k, v in wanted.items() if meta.get(k) != v)
            raise ValueError(f"{out_dir}: the tokenizer of this run was trained with other {', '.join(differ)} "
                             f"than now, and the run's checkpoints depend on it; use a new exp_dir")
    final = train_tokenizer([texts[u] for u in sorted(texts)], out_dir, vocab_size, model_type, meta=wanted)
    return {**wanted, "vocab_size": final}


class CTCTokenizer:
    """SentencePiece pieces as CTC outputs: the blank is 0, piece ``i`` is output ``i + 1``.

    Arguments
    ---------
    model_file : str or sentencepiece.SentencePieceProcessor
        A SentencePiece ``sp.model``, or the model loaded.

    Attributes
    ----------
    vocab_size : int
        SentencePiece pieces.
    num_outputs : int
        CTC outputs (``vocab_size + 1``).

    Example
    -------
    >>> import tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "tok")
    >>> size = train_tokenizer(["dobar dan", "hvala dan"], d, vocab_size=4, model_type="char")
    tokenizer: vocab_size 4 is below the 11 pieces that cover the 9 distinct characters of the training text (character coverage 1.0): raised to 11
    >>> tok = CTCTokenizer(os.path.join(d, "sp.model"))
    >>> tok.num_outputs == tok.vocab_size + 1 == size + 1
    True
    >>> ids = tok.encode("dan dobar")
    >>> BLANK in ids, tok.decode(ids)
    (False, 'dan dobar')
    """

    def __init__(self, model_file):
        import sentencepiece as spm

        if isinstance(model_file, spm.SentencePieceProcessor):
            self.model_file, self.sp = None, model_file
        else:
            self.model_file, self.sp = model_file, spm.SentencePieceProcessor(model_file=model_file)
        self.vocab_size = self.sp.get_piece_size()
        self.num_outputs = self.vocab_size + PIECE_OFFSET

    def encode(self, text):
        """CTC output ids (list of int, no blank) of a transcript."""
        return [i + PIECE_OFFSET for i in self.sp.encode(text)]

    def decode(self, ids):
        """Transcript of CTC output ids (blanks ignored)."""
        return self.sp.decode([int(i) - PIECE_OFFSET for i in ids if int(i) != BLANK])
