"""CTC decoding of ASR model outputs (for :mod:`masr.downstream.asr` and :mod:`masr.infer`).

Decoding: greedy (``beam_size: 1``: best output per frame, repeats collapsed, blanks removed), or
SpeechBrain's CTC prefix beam search (``beam_size: k > 1``, :class:`CTCBeamDecoder`), without
language model (``lm: null``, the default) or with a KenLM n-gram model over words (``lm:
path/to/lm.arpa`` or ``.bin``, with ``beam_size > 1``; it needs the ``kenlm`` Python bindings, not
installed by this project: :func:`check_lm` refuses a missing file or missing bindings, saying
what to install, and the stage calls it before training).

:func:`transcribe_dir` decodes a dump dir batch by batch (dev selection and the test set), with a
tqdm bar of the utterances (:mod:`masr.utils.progress`) when asked; :func:`transcribe` decodes a
batch of filterbanks with a fine-tuned model folder's tokenizer and stored decoding.
"""

import os
import re

import torch

from masr.data.dataset import FeatsDataset, collate_feats
from masr.data.sampler import DynamicBucketBatchSampler
from masr.downstream.tokenizer import BLANK, CTCTokenizer
from masr.utils.progress import progress as progress_bar


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
        import kenlm  # an availability check only: SpeechBrain's KenlmScorer imports the bindings itself
    except ImportError:
        raise ImportError(f"lm: {lm}: decoding with an n-gram language model needs the kenlm Python bindings "
                          "(SpeechBrain's KenlmScorer), which are not installed; install them with "
                          "'pip install https://github.com/kpu/kenlm/archive/master.zip', or set lm: null") from None
    del kenlm  # imported to check that it imports, not used here


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
