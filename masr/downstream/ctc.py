"""CTC training data and loss of ASR fine-tuning (:mod:`masr.downstream.asr`).

Loss (:func:`ctc_loss`): CTC (``torch.nn.functional.ctc_loss`` on float32 log-softmax, the
encoder's output lengths, ``zero_infinity``) with PyTorch's ``"mean"`` reduction: each utterance's
loss divided by its number of target tokens, averaged over the batch, so that long transcripts do
not dominate a batch and the loss scale does not depend on the tokenizer's granularity.

Data (:class:`CTCDataset`): whole utterances (``crop_frames`` must be null: the transcript covers
the whole utterance); training utterances whose transcript cannot be aligned by CTC (more target
tokens, plus one blank between each pair of repeated tokens, than encoder output frames) are
dropped; the stage counts them, prints the count and lists them in
``<exp_dir>/dropped_train_utts.tsv``.
"""

import torch

from masr.data.datadir import DataDirError
from masr.downstream.tokenizer import BLANK
from masr.nnet.conformer import Conv2dSubsampling


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
