"""Speech recognition: CTC fine-tuning of a pretrained encoder (paper Table 3).

Usage (the recipe runs it once per pretrained model and seed)::

    python -m masr.downstream.asr conf/asr.yaml --pretrained exp/continue_masr \\
        --train_dir dump/train --dev_dir dump/dev --test_dir dump/test \\
        --exp_dir exp/asr/continue_masr/seed1 --seed 1

Tokenizer. A SentencePiece model (``model_type``, ``vocab_size`` of the config) trained on the
transcripts of ``train_dir`` (its ``text``), kept in ``<exp_dir>/tokenizer/`` (``sp.model``,
``sp.vocab`` and ``tokenizer.json``: the digest of the training text and the settings; a later
run with the same text and settings reuses it). Character coverage is 1.0: every character of
the training text (26 languages, Latin, Cyrillic, Devanagari, Arabic script, kana, Hangul) is a
piece, so the vocabulary cannot be smaller than the number of distinct characters + 2 (the word
boundary ``▁`` and ``<unk>``); a smaller ``vocab_size`` is raised to that (a printed line says so,
``tokenizer.json`` and ``results.json`` record the final size). Training is deterministic: every
sentence, in utterance-id order, one thread.

Text normalisation: none. ``text`` is taken as already normalised by the corpus preparation,
and SentencePiece's own normalisation is switched off (``normalization_rule_name: identity``;
its default NFKC would rewrite some characters of the references); only runs of spaces are
collapsed. Hypotheses and references are compared as they are.

Model. The encoder with a linear layer over its frames (:class:`masr.downstream.finetune.FineTuneModel`,
``pooled=False``) giving ``vocab_size + 1`` CTC outputs: the blank is 0 and SentencePiece piece
``i`` is output ``i + 1`` (``<unk>``, piece 0, is output 1; no BOS / EOS). Loss: CTC
(``torch.nn.functional.ctc_loss`` on float32 log-softmax, the encoder's output lengths,
``zero_infinity``) with PyTorch's ``"mean"`` reduction: each utterance's loss divided by its number
of target tokens, averaged over the batch, so that long transcripts do not dominate a batch and
the loss scale does not depend on the tokenizer's granularity. Whole utterances are used
(``crop_frames`` must be null: the transcript covers the whole utterance); training utterances
whose transcript cannot be aligned by CTC (more target tokens, plus one blank between each pair
of repeated tokens, than encoder output frames) are dropped, counted, printed and listed in
``<exp_dir>/dropped_train_utts.tsv``. Training: a frozen-encoder warm-up, then the whole model
(see :mod:`masr.downstream.finetune`).

Decoding: greedy (``beam_size: 1``: best output per frame, repeats collapsed, blanks removed), or
SpeechBrain's CTC prefix beam search (``beam_size: k > 1``, :class:`CTCBeamDecoder`), without
language model (``lm: null``, the default) or with a KenLM n-gram model over words (``lm:
path/to/lm.arpa`` or ``.bin``, with ``beam_size > 1``; it needs the ``kenlm`` Python bindings, not
installed by this project: a run with ``lm`` set and no bindings stops at once, before training,
saying what to install). ``lm`` is used on dev (selection) and test. Selection: the checkpoint
with the lowest dev WER (``selection_metric: wer``) or CER (``cer``). ``languages`` (a list of
``utt2lang`` codes, or null for all) restricts training, selection and test to those languages.
The test-set decoding shows a tqdm bar (utterances, :mod:`masr.utils.progress`) on rank 0 when
stderr is a terminal (``progress: false`` turns it off).

Report (``results.json``, ``per_language.tsv``, ``hypotheses.tsv``, and the per-utterance
alignments ``wer_details.test.txt`` and ``cer_details.test.txt`` of SpeechBrain's
``ErrorRateStats.write_stats``), on test: WER and CER per language (``utt2lang`` of the test dir),
their unweighted mean over languages and their corpus-level values. CER is computed on characters
with the spaces removed, so that it measures scripts written without word boundaries (Japanese) too.
"""

import os
import re
import shutil
import sys
import tempfile

import torch

from masr.data.datadir import DataDir, DataDirError, mapping_id
from masr.data.dataset import FeatsDataset, collate_feats
from masr.data.sampler import DynamicBucketBatchSampler
from masr.downstream import finetune
from masr.downstream.pretrained import run_name
from masr.metrics import error_rate_stats, wer
from masr.nnet.conformer import Conv2dSubsampling
from masr.train import distributed
from masr.train.checkpoint import list_checkpoints
from masr.train.run import (
    TRAINING_ERRORS,
    RunConfigMismatch,
    add_training_arguments,
    error_text,
    seed_everything,
    training_run,
)
from masr.utils.config import make_parser, parse_arguments
from masr.utils.fileio import atomic_open
from masr.utils.progress import from_config
from masr.utils.progress import progress as progress_bar

#: CTC blank output; SentencePiece piece i is output i + PIECE_OFFSET.
BLANK = 0
PIECE_OFFSET = 1
#: Folder of the tokenizer inside the exp dir, and its files.
TOKENIZER_DIR = "tokenizer"
TOKENIZER_MODEL = os.path.join(TOKENIZER_DIR, "sp.model")


# --------------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# training data
# --------------------------------------------------------------------------------------------------

def min_ctc_frames(target):
    """Output frames CTC needs to emit ``target``: one per token, plus a blank between repeats.

    Example
    -------
    >>> min_ctc_frames([5, 5, 3, 5]), min_ctc_frames([1, 2, 3]), min_ctc_frames([])
    (5, 3, 0)
    """
    return len(target) + sum(a == b for a, b in zip(target, target[1:]))


def encoder_output_lengths(encoder, num_frames):
    """Encoder output frames for inputs of ``num_frames`` frames, without running it.

    The encoder's own subsampling (``encoder.subsampling.output_lengths``) when it has one, else
    :meth:`masr.nnet.conformer.Conv2dSubsampling.output_lengths` (4x).

    Example
    -------
    >>> encoder_output_lengths(torch.nn.Module(), [6, 7, 100])
    [0, 1, 24]
    """
    sub = getattr(encoder, "subsampling", None)
    fn = sub.output_lengths if sub is not None and hasattr(sub, "output_lengths") else Conv2dSubsampling.output_lengths
    return fn(torch.tensor(list(num_frames), dtype=torch.long)).tolist()


class CTCDataset(torch.utils.data.Dataset):
    """The training utterances CTC can align, each with its target ids.

    Arguments
    ---------
    dataset : masr.data.dataset.FeatsDataset
        The training utterances (features).
    texts : dict
        utt -> transcript.
    tokenizer : CTCTokenizer
    encoder : masr.ssl.base.SSLModel
        Gives the output lengths (:func:`encoder_output_lengths`).

    Attributes
    ----------
    utt_ids, num_frames : list
        Of the kept utterances (``num_frames`` is what the batch sampler reads).
    dropped : list of (utt, input frames, output frames, frames CTC needs)
        Utterances whose target needs more output frames than the encoder gives.

    Items are those of ``dataset`` with ``targets`` (list of int) added.
    """

    def __init__(self, dataset, texts, tokenizer, encoder):
        missing = [u for u in dataset.utt_ids if u not in texts]
        if missing:
            raise DataDirError(f"{dataset.dump_dir}/text: utterance '{missing[0]}' has no transcript "
                               f"({len(missing)} of {len(dataset)} utterances)")
        self.dataset = dataset
        out_frames = encoder_output_lengths(encoder, dataset.num_frames)
        self.indices, self.targets, self.dropped = [], [], []
        for i, (utt, n, t) in enumerate(zip(dataset.utt_ids, dataset.num_frames, out_frames)):
            target = tokenizer.encode(texts[utt])
            need = min_ctc_frames(target)
            if need > t:
                self.dropped.append((utt, n, t, need))
                continue
            self.indices.append(i)
            self.targets.append(target)
        self.utt_ids = [dataset.utt_ids[i] for i in self.indices]
        self.num_frames = [dataset.num_frames[i] for i in self.indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return dict(self.dataset[self.indices[i]], targets=self.targets[i])


def ctc_loss(logits, out_lengths, targets):
    """CTC loss of a batch (blank 0), each utterance's loss divided by its target length, averaged.

    Arguments
    ---------
    logits : torch.Tensor
        (B, T', C) outputs of the model (any float dtype; the loss is computed in float32).
    out_lengths : torch.LongTensor
        (B,) valid output frames.
    targets : list of list of int
        Target ids per utterance (no blank).

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> logits = torch.zeros(2, 4, 3)  # uniform over 3 outputs
    >>> loss = ctc_loss(logits, torch.tensor([4, 3]), [[1, 2], [1]])
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T', B, C)
    flat = torch.tensor([t for target in targets for t in target], dtype=torch.long, device=logits.device)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long, device=logits.device)
    return torch.nn.functional.ctc_loss(log_probs, flat, out_lengths.to(logits.device), target_lengths, blank=BLANK,
                                        reduction="mean", zero_infinity=True)


# --------------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------------

def ctc_greedy(scores, length=None):
    """Greedy CTC decoding of one utterance: best output per frame, repeats collapsed, blanks removed.

    Arguments
    ---------
    scores : torch.Tensor
        (T', C) logits or log-probabilities.
    length : int or None
        Valid frames (None: all).

    Returns
    -------
    list of int
        Output ids (no blank).

    Example
    -------
    >>> # frames: a a _ a b b _ _ b   (a = 1, b = 2, _ = blank)
    >>> best = torch.tensor([1, 1, 0, 1, 2, 2, 0, 0, 2])
    >>> ctc_greedy(torch.nn.functional.one_hot(best, 3).float())
    [1, 1, 2, 2]
    >>> ctc_greedy(torch.nn.functional.one_hot(best, 3).float(), length=4)
    [1, 1]
    """
    return collapse(scores[:length].argmax(-1).tolist())


def collapse(best_path):
    """Output ids of a frame-level CTC path: repeats merged, then blanks removed.

    Example
    -------
    >>> collapse([0, 3, 3, 0, 3, 4, 4, 0])
    [3, 3, 4]
    """
    out, prev = [], None
    for t in best_path:
        if t != prev and t != BLANK:
            out.append(t)
        prev = t
    return out


#: Private-use characters (Unicode plane 15) that stand for CTC outputs in the library's searcher,
#: which works on strings: output i is chr(_OUTPUT_CHAR + i), so that a hypothesis maps back to ids.
_OUTPUT_CHAR = 0xF0000
_MAX_OUTPUTS = 0xFFFFE - _OUTPUT_CHAR


class CTCBeamDecoder:
    """CTC prefix beam search through SpeechBrain's ``speechbrain.decoders.ctc.CTCPrefixBeamSearcher``.

    Without language model (``lm=None``) the searcher is given one private-use character per CTC
    output as its vocabulary, so that its prefixes are exactly the output-id sequences (the
    SentencePiece pieces would make it merge prefixes by their text, and mark words by ``▁``);
    the best prefix is mapped back to ids and detokenised by :class:`CTCTokenizer`. The searcher's
    default pruning is kept: at each frame the outputs with log-probability above
    ``token_prune_logp`` (and the best one) extend the prefixes, and prefixes more than
    ``-beam_prune_logp`` below the best are dropped.

    With ``lm`` (the path of a KenLM n-gram model over words, ``.arpa`` or ``.bin``) the searcher is
    given the SentencePiece pieces (blank first), builds words at the ``▁`` boundaries and adds
    ``lm_weight`` x the LM log-probability + ``word_bonus`` per word (shallow fusion, SpeechBrain's
    ``KenlmScorer``); the hypothesis is the searcher's text. That needs the ``kenlm`` Python
    bindings, which this project does not install: without them ImportError says what to install.

    Why the library's search replaced the project's own (pure Python, top-``beam_size`` outputs per
    frame): measured on random (T'=200, C=50) log-softmax matrices, 5 seeds, beam 4 and 10, on 2
    shared CPU cores (speechbrain 1.1.2), hypotheses compared by their CTC log P: on peaked outputs (logits
    ``5 * randn``) both give the same hypotheses (10/10 without the library's pruning, 7/10 with it,
    the others within 0.01 in log P); on flat outputs (``randn``) they disagree on 5/10 and the
    library's hypothesis is always at least as probable (log P up to 2.9 higher: the project's
    search only extended each prefix with the ``beam_size`` best outputs of the frame). The
    library's is slower: 23 ms / utterance against 4.7 ms (peaked, beam 4; 48 ms against 5 ms at
    C = 1000), 165 ms against 5 ms (flat). Greedy decoding (``beam_size: 1``, the default of every
    recipe) does not use it.

    Arguments
    ---------
    num_outputs : int
        CTC outputs (blank included).
    beam_size : int
    lm : str or None
        KenLM model path, or None.
    tokenizer : CTCTokenizer or None
        Needed with ``lm`` (its pieces are the searcher's vocabulary).
    lm_weight, word_bonus : float
        Shallow-fusion weights (SpeechBrain's ``alpha``, ``beta``), with ``lm`` only.
    token_prune_logp, beam_prune_logp : float
        The searcher's pruning thresholds (its defaults).

    Example
    -------
    >>> lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()  # P("") = 0.36 < P("a") = 0.64
    >>> ctc_greedy(lp), CTCBeamDecoder(2, beam_size=2).best_ids(lp)
    ([], [1])
    """

    def __init__(self, num_outputs, beam_size, lm=None, tokenizer=None, lm_weight=0.5, word_bonus=1.5,
                 token_prune_logp=-5.0, beam_prune_logp=-10.0):
        from speechbrain.decoders.ctc import CTCPrefixBeamSearcher

        self.num_outputs, self.lm = int(num_outputs), lm
        if lm is None:
            if self.num_outputs > _MAX_OUTPUTS:
                raise ValueError(f"beam search: at most {_MAX_OUTPUTS} CTC outputs, got {self.num_outputs}")
            vocab = [chr(_OUTPUT_CHAR + i) for i in range(self.num_outputs)]
            # space_token: the blank's symbol (the blank never reaches the searcher's word-boundary
            # branch), which spares the warning of a vocabulary without space
            kwargs = {"vocab_list": vocab, "space_token": vocab[BLANK]}
        else:
            check_lm(lm)
            if tokenizer is None:
                raise ValueError("beam search with a language model needs the tokenizer (its pieces)")
            pieces = [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.vocab_size)]
            kwargs = {"vocab_list": ["<blank>"] + pieces, "kenlm_model_path": str(lm), "alpha": float(lm_weight),
                      "beta": float(word_bonus)}
        self.searcher = CTCPrefixBeamSearcher(blank_index=BLANK, beam_size=int(beam_size),
                                              token_prune_min_logp=token_prune_logp,
                                              beam_prune_logp=beam_prune_logp, **kwargs)

    def best_text(self, log_probs, length=None):
        """The searcher's best hypothesis (str) for (T', C) log-probabilities."""
        log_probs = log_probs[:length].float().cpu().numpy()
        return self.searcher.decode_log_probs(log_probs, log_probs.shape[0])[0].text

    def best_ids(self, log_probs, length=None):
        """Output ids (no blank) of the best prefix, without language model."""
        if self.lm is not None:
            raise ValueError("best_ids: with a language model the hypothesis is text (best_text)")
        return [ord(c) - _OUTPUT_CHAR for c in self.best_text(log_probs, length) if c != " "]

    def transcripts(self, log_probs, lengths, tokenizer):
        """Transcripts (list of str) of a batch of (B, T', C) log-probabilities."""
        if self.lm is not None:
            return [self.best_text(lp, n) for lp, n in zip(log_probs, lengths)]
        return [tokenizer.decode(self.best_ids(lp, n)) for lp, n in zip(log_probs, lengths)]


def check_lm(lm):
    """Refuse a language model that cannot be used: a missing file, or no ``kenlm`` bindings."""
    if not os.path.isfile(str(lm)):
        raise FileNotFoundError(f"lm: {lm}: no such file (a KenLM n-gram model, .arpa or .bin)")
    try:
        import kenlm  # noqa: F401
    except ImportError:
        raise ImportError(f"lm: {lm}: decoding with an n-gram language model needs the kenlm Python bindings "
                          "(SpeechBrain's KenlmScorer), which are not installed; install them with "
                          "'pip install https://github.com/kpu/kenlm/archive/master.zip', or set lm: null") from None


def ctc_prefix_beam_search(log_probs, beam_size, length=None):
    """CTC prefix beam search without language model, for one utterance (:class:`CTCBeamDecoder`).

    With ``beam_size`` 1 it is :func:`ctc_greedy`.

    Arguments
    ---------
    log_probs : torch.Tensor
        (T', C) log-probabilities (log-softmax of the logits).
    beam_size : int
    length : int or None
        Valid frames (None: all).

    Returns
    -------
    list of int
        Output ids of the best prefix (no blank).

    Example
    -------
    >>> # two frames, P(blank) = 0.6, P(a) = 0.4 each: the best path is "_ _" (0.36) but
    >>> # P("a") = 0.4 * 0.4 + 0.4 * 0.6 + 0.6 * 0.4 = 0.64
    >>> lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    >>> ctc_greedy(lp), ctc_prefix_beam_search(lp, beam_size=2)
    ([], [1])
    """
    if beam_size <= 1:
        return ctc_greedy(log_probs, length)
    return _beam_decoder(log_probs.shape[-1], beam_size).best_ids(log_probs, length)


_DECODERS = {}


def _beam_decoder(num_outputs, beam_size, lm=None, tokenizer=None):
    key = (int(num_outputs), int(beam_size), lm, id(tokenizer) if lm is not None else None)
    if key not in _DECODERS:
        _DECODERS[key] = CTCBeamDecoder(num_outputs, beam_size, lm=lm, tokenizer=tokenizer)
    return _DECODERS[key]


def decoding_name(beam_size):
    """``"greedy"`` or ``"beam<k>"`` (results.json, model.json).

    Example
    -------
    >>> decoding_name(1), decoding_name(4)
    ('greedy', 'beam4')
    """
    return "greedy" if int(beam_size) <= 1 else f"beam{int(beam_size)}"


def beam_size_of(decoding):
    """Inverse of :func:`decoding_name`.

    Example
    -------
    >>> beam_size_of("greedy"), beam_size_of("beam4")
    (1, 4)
    """
    if decoding == "greedy":
        return 1
    m = re.fullmatch(r"beam(\d+)", str(decoding))
    if not m:
        raise ValueError(f"decoding '{decoding}': expected 'greedy' or 'beam<k>'")
    return int(m.group(1))


def decode_batch(logits, lengths, tokenizer, beam_size=1, lm=None):
    """Transcripts of a batch of model outputs.

    Arguments
    ---------
    logits : torch.Tensor
        (B, T', C) model outputs.
    lengths : torch.LongTensor
        (B,) valid output frames.
    tokenizer : CTCTokenizer
    beam_size : int
        1: greedy; more: CTC prefix beam search (:class:`CTCBeamDecoder`).
    lm : str or None
        KenLM model for the beam search (:class:`CTCBeamDecoder`); ignored by greedy decoding.

    Returns
    -------
    list of str
    """
    lengths = lengths.cpu().tolist()
    if beam_size <= 1:
        best = logits.argmax(-1).cpu().tolist()
        return [tokenizer.decode(collapse(path[:n])) for path, n in zip(best, lengths)]
    log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
    return _beam_decoder(log_probs.shape[-1], beam_size, lm, tokenizer).transcripts(log_probs, lengths, tokenizer)


def greedy_decode(logits, lengths, tokenizer):
    """Greedy transcripts of a batch: :func:`decode_batch` with ``beam_size`` 1.

    Arguments
    ---------
    logits : torch.Tensor
        (B, T', C) model outputs.
    lengths : torch.LongTensor
        (B,) valid output frames.
    tokenizer : CTCTokenizer or sentencepiece.SentencePieceProcessor
        The run's tokenizer (a bare SentencePiece model is wrapped: output ``i + 1`` is its piece ``i``).

    Returns
    -------
    list of str
    """
    if not isinstance(tokenizer, CTCTokenizer):
        tokenizer = CTCTokenizer(tokenizer)
    return decode_batch(logits, lengths, tokenizer, beam_size=1)


@torch.no_grad()
def transcribe_dir(model, tokenizer, dump_dir, batch_frames=20000, device=None, beam_size=1, utts=None, lm=None,
                   progress=False):
    """Transcribe every utterance of a dump dir (or those of ``utts``).

    Like :func:`masr.downstream.finetune.predict`, but each batch is decoded as it comes, so that
    the (T', vocabulary) outputs of the whole set are never held at once. ``lm``: see
    :func:`decode_batch`. ``progress``: the ``enabled`` of :func:`masr.utils.progress.progress`
    (a bar of the utterances done; None: on rank 0 when stderr is a terminal; False: none).

    Returns
    -------
    dict
        utt -> hypothesis, in utterance-id order.
    """
    device = device or torch.device("cpu")
    dataset = FeatsDataset(dump_dir, utts=utts)
    sampler = DynamicBucketBatchSampler(dataset.num_frames, batch_frames, shuffle=False)
    was_training = model.training
    model.eval()
    out = {}
    with progress_bar(total=len(dataset), desc=f"decoding {os.path.basename(os.path.normpath(dump_dir))}", unit="utt",
                      enabled=progress) as bar:
        for indices in sampler:
            batch = collate_feats([dataset[i] for i in indices])
            logits, lengths = model(batch["feats"].to(device), batch["lengths"].to(device))
            out.update(zip(batch["utt"], decode_batch(logits, lengths, tokenizer, beam_size, lm)))
            bar.update(len(indices))
    model.train(was_training)
    return {utt: out[utt] for utt in sorted(out)}


_TOKENIZERS = {}


@torch.no_grad()
def transcribe(model, spec, model_dir, feats, lengths, beam_size=None, lm=None):
    """Transcripts of a batch of filterbanks with a model of :func:`finetune.load_finetuned`.

    Arguments
    ---------
    model : masr.downstream.finetune.FineTuneModel
        In eval mode.
    spec : dict
        Its ``model.json`` (``tokenizer``, ``decoding``).
    model_dir : str
        The fine-tuned model folder (the tokenizer path in ``spec`` is relative to it).
    feats : torch.Tensor
        (B, T, F) filterbanks as configured by ``spec["fbank"]`` (no CMVN: the model applies it).
    lengths : torch.LongTensor
        (B,) valid frames.
    beam_size : int or None
        None: the decoding stored in ``spec``.
    lm : str or None
        KenLM model for the beam search (:class:`CTCBeamDecoder`).

    Returns
    -------
    list of str
    """
    path = os.path.join(model_dir, spec["tokenizer"])
    if path not in _TOKENIZERS:
        _TOKENIZERS[path] = CTCTokenizer(path)
    if beam_size is None:
        beam_size = beam_size_of(spec.get("decoding", "greedy"))
    device = next(model.parameters()).device
    logits, out_lengths = model(feats.to(device), lengths.to(device))
    return decode_batch(logits, out_lengths, _TOKENIZERS[path], beam_size, lm)


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------

def cer(references, hypotheses):
    """Corpus-level character error rate, spaces removed (:func:`masr.metrics.error_rate_stats`).

    Each string loses its spaces (so that word boundaries, which some scripts do not write, do not
    count) and is aligned character by character; the counts are summed: CER = total errors / total
    reference characters.

    Arguments
    ---------
    references : list of str
    hypotheses : list of str
        Same length.

    Returns
    -------
    dict
        ``cer`` (float, may exceed 1), ``substitutions``, ``deletions``, ``insertions``, ``errors``
        and ``chars`` (total reference characters). ValueError when the lists differ in length or
        when the references have no character.

    Example
    -------
    >>> out = cer(["ab cd", "ef"], ["abxd", "e fg"])  # 1 substitution + 1 insertion / 6 chars
    >>> out["cer"], out["substitutions"], out["insertions"], out["chars"]
    (0.3333333333333333, 1, 1, 6)
    >>> cer(["ともかく"], ["とかく"])["cer"]  # one deletion
    0.25
    """
    try:
        totals, _ = error_rate_stats(references, hypotheses, unit="char")
    except ValueError as e:
        message = str(e) if "differ in length" in str(e) else "the references have no character"
        raise ValueError(f"cer: {message}") from None
    return {"cer": totals["rate"], "substitutions": totals["substitutions"], "deletions": totals["deletions"],
            "insertions": totals["insertions"], "errors": totals["errors"], "chars": totals["tokens"]}


#: Per-utterance alignments of the test set, next to results.json (``{unit}`` wer / cer, ``{set}`` test).
DETAILS_FILE = "{unit}_details.{set}.txt"


def score(references, hypotheses, languages, details_dir=None, set_name="test"):
    """Per-language, average and overall WER / CER.

    Every number comes from :func:`masr.metrics.error_rate_stats` (SpeechBrain's
    ``ErrorRateStats``) on words (WER) and on characters without spaces (CER, as :func:`cer`).

    Arguments
    ---------
    references, hypotheses, languages : dict
        utt -> reference, hypothesis, language (same utterances).
    details_dir : str or None
        When given, ``wer_details.<set_name>.txt`` and ``cer_details.<set_name>.txt`` are written
        there: ``ErrorRateStats.write_stats`` of all utterances (the corpus-level summary, in %, then
        one alignment per utterance, in utterance-id order).
    set_name : str

    Returns
    -------
    dict
        ``per_language`` (``{lang: {"wer", "cer", "num_words", "num_utts"}}``, languages sorted),
        ``average`` (``{"wer", "cer"}``: unweighted means over languages) and ``overall``
        (``{"wer", "cer"}``: corpus-level).

    Example
    -------
    >>> out = score({"a": "x y", "b": "z"}, {"a": "x y", "b": "w"}, {"a": "l1", "b": "l2"})
    >>> out["per_language"]["l2"], out["average"], out["overall"]["wer"]
    ({'wer': 1.0, 'cer': 1.0, 'num_words': 1, 'num_utts': 1}, {'wer': 0.5, 'cer': 0.5}, 0.3333333333333333)
    """
    utts = sorted(references)
    missing = [u for u in utts if u not in hypotheses or u not in languages]
    if missing:
        raise ValueError(f"utterance '{missing[0]}' has no hypothesis or no language")
    per_language = {}
    for lang in sorted({languages[u] for u in utts}):
        mine = [u for u in utts if languages[u] == lang]
        refs, hyps = [references[u] for u in mine], [hypotheses[u] for u in mine]
        w = wer(refs, hyps)
        per_language[lang] = {"wer": w["wer"], "cer": cer(refs, hyps)["cer"], "num_words": w["words"],
                              "num_utts": len(mine)}
    refs, hyps = [references[u] for u in utts], [hypotheses[u] for u in utts]
    overall = {}
    for unit in ("wer", "cer"):
        try:
            totals, stats = error_rate_stats(refs, hyps, ids=utts, unit="word" if unit == "wer" else "char")
        except ValueError as e:
            raise ValueError(f"{unit}: {e}") from None
        overall[unit] = totals["rate"]
        if details_dir is not None:
            with atomic_open(os.path.join(details_dir, DETAILS_FILE.format(unit=unit, set=set_name))) as f:
                stats.write_stats(f)
    mean = lambda key: sum(r[key] for r in per_language.values()) / len(per_language)  # noqa: E731
    return {"per_language": per_language, "average": {"wer": mean("wer"), "cer": mean("cer")}, "overall": overall}


def references_of(dump_dir, utts, stream="text"):
    """utt -> value of ``stream`` for ``utts``; DataDirError naming the file when one is missing."""
    data = DataDir(dump_dir)
    fname = "text" if stream == "text" else f"utt2{stream}"
    if not data.has(fname):
        raise DataDirError(f"{dump_dir}: no '{fname}'")
    values = data.stream(stream)
    missing = [u for u in utts if u not in values]
    if missing:
        raise DataDirError(f"{data.file(fname)}: utterance '{missing[0]}' is missing "
                           f"({len(missing)} of {len(utts)} utterances)")
    return {u: values[u] for u in utts}


def write_reports(exp_dir, results, references, hypotheses, languages):
    """``per_language.tsv`` and ``hypotheses.tsv`` (utt, lang, reference, hypothesis)."""
    with atomic_open(os.path.join(exp_dir, "per_language.tsv")) as f:
        f.write("language\tutterances\twords\twer\tcer\n")
        for lang, r in results["per_language"].items():
            f.write(f"{lang}\t{r['num_utts']}\t{r['num_words']}\t{r['wer']:.4f}\t{r['cer']:.4f}\n")
        for name in ("average", "overall"):
            f.write(f"{name}\t\t\t{results[name]['wer']:.4f}\t{results[name]['cer']:.4f}\n")
    with atomic_open(os.path.join(exp_dir, "hypotheses.tsv")) as f:
        f.write("utt\tlang\treference\thypothesis\n")
        for utt in sorted(references):
            f.write(f"{utt}\t{languages[utt]}\t{references[utt]}\t{hypotheses[utt]}\n")


# --------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------

def utterances_of_languages(dump_dir, languages):
    """The utterances of a dump dir whose ``utt2lang`` is in ``languages`` (None: all of them).

    Raises DataDirError naming the dump dir when it has no ``utt2lang`` or none of the languages.
    """
    if languages is None:
        return None
    data = DataDir(dump_dir)
    if not data.has("utt2lang"):
        raise DataDirError(f"{dump_dir}: no 'utt2lang', needed to keep the ASR languages {list(languages)}")
    wanted = set(languages)
    utts = {u for u, lang in data.stream("lang").items() if lang in wanted}
    if not utts:
        raise DataDirError(f"{data.file('utt2lang')}: no utterance of the ASR languages {sorted(wanted)}")
    return utts


def check_config(config):
    """Refuse settings that make no sense for CTC ASR."""
    if config.get("crop_frames"):
        raise ValueError(f"crop_frames: {config['crop_frames']}: ASR trains on whole utterances (the transcript "
                         "covers all of it, a crop would not match it); set crop_frames: null and bound the "
                         "utterance length with max_frames instead")
    if int(config.get("beam_size", 1)) < 1:
        raise ValueError(f"beam_size must be >= 1, got {config['beam_size']}")
    if config.get("lm") is not None:
        if int(config.get("beam_size", 1)) <= 1:
            raise ValueError(f"lm: {config['lm']}: a language model needs beam search (beam_size > 1)")
        check_lm(config["lm"])
    if config.get("selection_metric", "wer") not in ("wer", "cer"):
        raise ValueError(f"selection_metric must be 'wer' or 'cer', got {config['selection_metric']!r}")
    languages = config.get("languages")
    if languages is not None and (isinstance(languages, str) or not languages
                                  or not all(isinstance(x, str) for x in languages)):
        raise ValueError(f"languages must be null (all) or a non-empty list of utt2lang codes, got {languages!r}")


def run(config, rank=0, world_size=1, device=None):
    """Fine-tune, select on dev WER and evaluate on test; returns the results (rank 0) or None."""
    check_config(config)
    device = device or torch.device("cpu")
    exp_dir = config["exp_dir"]
    seed_everything(config["seed"] + rank)
    languages = config.get("languages")
    subset = {name: utterances_of_languages(config[name], languages) for name in ("train_dir", "dev_dir", "test_dir")}
    train_utts = sorted(DataDir(config["train_dir"]).read("feats.scp"))
    if subset["train_dir"] is not None:
        train_utts = [u for u in train_utts if u in subset["train_dir"]]
    train_texts = references_of(config["train_dir"], train_utts)
    if rank == 0:
        meta = prepare_tokenizer(train_texts, exp_dir, config["vocab_size"], config.get("model_type", "unigram"))
    distributed.barrier()  # the other ranks read the tokenizer rank 0 trained
    tokenizer = CTCTokenizer(os.path.join(exp_dir, TOKENIZER_MODEL))
    encoder = finetune.pretrained_encoder(config)
    train = CTCDataset(FeatsDataset(config["train_dir"], max_frames=config.get("max_frames"), utts=train_utts),
                       train_texts, tokenizer, encoder)
    if rank == 0:
        print(f"tokenizer: {meta['model_type']}, {tokenizer.vocab_size} pieces (requested "
              f"{meta['requested_vocab_size']}) + blank = {tokenizer.num_outputs} CTC outputs", flush=True)
        if train.dropped:
            print(f"train: dropped {len(train.dropped)} of {len(train.dropped) + len(train)} utterances whose "
                  f"transcript needs more CTC frames than the encoder gives (list: dropped_train_utts.tsv)", flush=True)
        with atomic_open(os.path.join(exp_dir, "dropped_train_utts.tsv")) as f:
            f.write("utt\tinput_frames\toutput_frames\tctc_frames_needed\n")
            for row in train.dropped:
                f.write("\t".join(map(str, row)) + "\n")
    if not len(train):
        raise DataDirError(f"{config['train_dir']}: no training utterance left (see {exp_dir}/dropped_train_utts.tsv)")
    model = finetune.FineTuneModel(encoder, tokenizer.num_outputs, pooled=False, layer=config.get("layer"),
                                   freeze_encoder_steps=config.get("freeze_encoder_steps", 0),
                                   dropout=config.get("dropout", 0.1))

    def step_fn(model, batch):
        logits, out_lengths = model(batch["feats"], batch["lengths"])
        loss = ctc_loss(logits, out_lengths, batch["targets"])
        valid = torch.arange(logits.shape[1], device=logits.device)[None] < out_lengths[:, None]
        blank = ((logits.argmax(-1) == BLANK) & valid).sum() / valid.sum().clamp(min=1)
        return loss, {"blank_fraction": blank.detach()}

    trainer = finetune.build_finetune_trainer(config, model, train, step_fn, rank, world_size, device)
    trainer.fit()
    if rank != 0:
        return None
    model = trainer._unwrapped()
    frames = config.get("eval_batch_frames", 20000)
    beam_size = int(config.get("beam_size", 1))
    lm = config.get("lm")
    dev_refs = None

    metric = config.get("selection_metric", "wer")

    def dev_error_rate(m):
        nonlocal dev_refs
        hyps = transcribe_dir(m, tokenizer, config["dev_dir"], frames, device, beam_size, subset["dev_dir"], lm)
        dev_refs = dev_refs or references_of(config["dev_dir"], list(hyps))
        refs = [dev_refs[u] for u in hyps]
        return wer(refs, list(hyps.values()))["wer"] if metric == "wer" else cer(refs, list(hyps.values()))["cer"]

    step, path, dev_score = finetune.select_checkpoint(model, exp_dir, dev_error_rate, higher_is_better=False,
                                                       device=device)
    hyps = transcribe_dir(model, tokenizer, config["test_dir"], frames, device, beam_size, subset["test_dir"], lm,
                          progress=from_config(config))
    refs = references_of(config["test_dir"], list(hyps))
    langs = references_of(config["test_dir"], list(hyps), "lang")
    scores = score(refs, hyps, langs, details_dir=exp_dir, set_name="test")
    results = {"task": "asr", "model": run_name(config["pretrained"]),
               "seed": config["seed"],
               "data": {"train": config["train_dir"], "dev": config["dev_dir"], "test": config["test_dir"],
                        "test_id": mapping_id(refs)},
               "vocab_size": tokenizer.vocab_size, "decoding": decoding_name(beam_size),
               "languages": sorted(set(langs.values())),
               "selected": {"step": step, f"dev_{metric}": dev_score, "metric": metric}, **scores}
    if lm is not None:
        results["lm"] = str(lm)
    write_reports(exp_dir, results, refs, hyps, langs)
    finetune.save_model_spec(exp_dir, model, "asr", path, finetune.read_fbank_config(config["fbank_config"]),
                             tokenizer=TOKENIZER_MODEL, blank=BLANK, decoding=decoding_name(beam_size))
    finetune.write_json(os.path.join(exp_dir, "results.json"), results)
    return results


def main(argv=None):
    parser = add_training_arguments(make_parser("Fine-tune a pretrained encoder for speech recognition (CTC)."))
    args, config = parse_arguments(parser, argv)
    check_config(config)
    try:
        with training_run(args, config, argv) as (rank, world, device):
            results = run(config, rank, world, device)
    except RunConfigMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TRAINING_ERRORS as e:
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 1
    if results:
        avg, overall, sel = results["average"], results["overall"], results["selected"]
        print(f"test: average WER {avg['wer']:.3f} | CER {avg['cer']:.3f} | overall WER {overall['wer']:.3f} | "
              f"CER {overall['cer']:.3f} | {len(results['per_language'])} languages | {results['decoding']} | "
              f"vocab {results['vocab_size']} | selected step {sel['step']} "
              f"(dev {sel['metric'].upper()} {sel['dev_' + sel['metric']]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
