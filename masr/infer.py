"""Inference: the language of a recording, its transcript, or its utterance embedding.

Command line (from a recipe folder, e.g. ``egs/mini``)::

    # top-3 languages of two files, with posteriors
    python -m masr.infer langid --model exp/langid/continue_masr/seed1 --topk 3 a.wav b.flac
    # every utterance of a wav.scp, one line each
    python -m masr.infer langid --model exp/langid/continue_masr/seed1 --wav-scp data/test/wav.scp
    # transcripts of a fine-tuned CTC model
    python -m masr.infer asr --model exp/asr/continue_masr/seed1 a.wav
    # utterance embeddings h (mean-pooled frames of block --layer) into a kaldiio ark/scp
    python -m masr.infer embed --model exp/continue_masr --wav-scp data/test/wav.scp --out emb

Python::

    from masr.infer import LanguageIdentifier, Embedder
    lid = LanguageIdentifier("exp/langid/continue_masr/seed1")
    lid.predict("a.wav", topk=3)          # [("hrv", 0.71), ("srp", 0.20), ("bos", 0.05)]
    Embedder("exp/continue_masr")("a.wav")  # numpy (D,)

A fine-tuned model folder is self-contained (``model.json``: encoder architecture, labels or
tokenizer, filterbank options; weights of the checkpoint selected on dev). ``embed`` takes a
pretraining run folder (its ``config.yaml`` is HyperPyYAML, which builds arbitrary objects: only
your own runs; it is rebuilt relative to the current folder, so run it from the recipe folder)
or an encoder file (data only: what to share) written by ``masr.ssl.encoder_file.save_encoder``; its
filterbank options come from ``--fbank-config`` (default: ``masr.features.fbank.FbankConfig()``,
the recipes' 80-bin 16 kHz setting).

``--model`` also takes a folder packed by ``python -m masr.hub pack`` (``config.json`` +
``model.safetensors``, what a Hugging Face Hub model repository holds; read as data only), of
any of the three tasks; a packed encoder brings its filterbank options and layer (``--fbank-config``
and ``--layer`` override them). ``masr.hub.from_pretrained`` also downloads one by repository id.
"""

import argparse
import os
import sys

import numpy as np
import torch

from masr.audio import AudioError, read_audio
from masr.data.datadir import read_kaldi_map
from masr.features.fbank import FbankConfig, compute_fbank


def _features(audio, fbank):
    """(1, T, F) filterbanks and (1,) length of a file path / wav.scp entry or a float array at
    ``fbank.sample_rate``."""
    name = audio if isinstance(audio, str) else "waveform"
    wave = read_audio(audio, fbank.sample_rate)[0] if isinstance(audio, str) else np.asarray(audio, np.float32)
    try:
        feats = torch.as_tensor(compute_fbank(wave, fbank))
    except ValueError as e:
        raise AudioError(f"{name}: {e}") from None
    if feats.shape[0] == 0:
        raise AudioError(f"{name}: too short for one frame")
    return feats.unsqueeze(0), torch.tensor([feats.shape[0]])


class _FineTuned:
    task = None

    def __init__(self, model_dir, device="cpu"):
        from masr import hub

        if hub.is_packed(model_dir):  # a folder of masr.hub.save_pretrained: config.json + safetensors
            self.model, self.spec = hub.load_model(model_dir)
        else:
            from masr.downstream.finetune import load_finetuned

            self.model, self.spec = load_finetuned(model_dir)
        if self.spec["task"] != self.task:
            raise ValueError(f"{model_dir}: a '{self.spec['task']}' model, not a '{self.task}' model")
        self.model_dir, self.device = model_dir, torch.device(device)
        self.model.to(self.device)
        self.fbank = FbankConfig(**self.spec["fbank"])

    @torch.no_grad()
    def _logits(self, audio):
        feats, lengths = _features(audio, self.fbank)
        logits, out_lengths = self.model(feats.to(self.device), lengths.to(self.device))
        return logits[0].float().cpu(), int(out_lengths[0])


class LanguageIdentifier(_FineTuned):
    """A fine-tuned LangID model (``exp/langid/<model>/seed<S>``).

    Example
    -------
    >>> lid = LanguageIdentifier("exp/langid/continue_masr/seed1")  # doctest: +SKIP
    >>> lid.predict("a.wav", topk=2)  # doctest: +SKIP
    [('hrv', 0.71), ('srp', 0.2)]
    """

    task = "langid"

    @property
    def languages(self):
        return list(self.spec["labels"])

    def predict(self, audio, topk=1):
        """The ``topk`` (language, posterior) pairs, most likely first, for a path or waveform."""
        logits, _ = self._logits(audio)
        probs = torch.softmax(logits, -1)
        values, indices = probs.topk(min(topk, len(probs)))
        return [(self.languages[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


class Transcriber(_FineTuned):
    """A fine-tuned CTC ASR model (``exp/asr/<model>/seed<S>``)."""

    task = "asr"

    def transcribe(self, audio):
        """The transcript of a path or waveform (decoding as stored in ``model.json``)."""
        from masr.downstream.ctc_decoding import transcribe

        feats, lengths = _features(audio, self.fbank)
        return transcribe(self.model, self.spec, self.model_dir, feats.to(self.device), lengths.to(self.device))[0]


class Embedder:
    """Utterance embeddings h of a pretrained encoder (a pretraining run folder or encoder file).

    Arguments
    ---------
    source : str
        ``exp/<run>`` of ``masr.train.pretrain``, a file of ``save_encoder``, or a folder of
        ``masr.hub.save_pretrained`` (an ``embed`` model).
    layer : int or None
        Encoder blocks to run (None: all; for a packed folder, its own ``layer``).
    fbank : masr.features.fbank.FbankConfig or None
        None: a packed folder's own options, else ``FbankConfig()``.
    """

    def __init__(self, source, layer=None, fbank=None, device="cpu"):
        from masr import hub
        from masr.downstream.pretrained import load_encoder

        self.device = torch.device(device)
        self.spec = None
        if os.path.isdir(source) and hub.is_packed(source):  # masr.hub: its layer and filterbanks by default
            encoder, self.spec = hub.load_model(source)
            if self.spec["task"] != "embed":
                raise ValueError(f"{source}: a '{self.spec['task']}' model, not an encoder ('embed') model")
            layer = self.spec["layer"] if layer is None else layer
            fbank = fbank or FbankConfig(**self.spec["fbank"])
        else:
            encoder = load_encoder(source)
        self.encoder = encoder.to(self.device)
        self.layer, self.fbank = layer, fbank or FbankConfig()
        dim = self.encoder.cmvn.mean.numel()
        if dim != self.fbank.num_mel_bins:
            raise ValueError(f"{source}: the encoder takes {dim}-dim features, the filterbank options give "
                             f"{self.fbank.num_mel_bins} mel bins; pass the features stage's config as --fbank-config")

    @torch.no_grad()
    def __call__(self, audio):
        """(D,) float32 embedding of a path, ``wav.scp`` entry or waveform."""
        feats, lengths = _features(audio, self.fbank)
        return self.encoder.embed(feats.to(self.device), lengths.to(self.device), layer=self.layer)[0].cpu().numpy()


def _inputs(args):
    """(utt, audio entry) pairs from positional files or ``--wav-scp``."""
    if args.wav_scp:
        return list(read_kaldi_map(args.wav_scp).items())
    if not args.audio:
        raise SystemExit("error: give audio files or --wav-scp")
    for path in args.audio:  # files only: commands (pipes) only through --wav-scp
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} is not a file (a command ending in '|' can only be given in "
                                    "a --wav-scp file)")
    return [(path, path) for path in args.audio]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, what in (("langid", "a fine-tuned LangID model folder, or its packed folder (masr.hub)"),
                       ("asr", "a fine-tuned ASR model folder, or its packed folder (masr.hub)"),
                       ("embed", "a packed encoder folder (masr.hub) or encoder file (data: read as tensors), or a "
                                 "pretraining run folder (its config.yaml is HyperPyYAML, i.e. code: only your own runs)")):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True, help=what)
        p.add_argument("--wav-scp", help="a Kaldi wav.scp instead of audio files")
        p.add_argument("--device", default="cpu")
        p.add_argument("audio", nargs="*", help="audio files (any format soundfile reads)")
        if name == "langid":
            p.add_argument("--topk", type=int, default=1)
        if name == "embed":
            p.add_argument("--layer", type=int, default=None)
            p.add_argument("--fbank-config", help="filterbank options (YAML); default: a packed folder's own, "
                                                  "else 80 bins, 16 kHz")
            p.add_argument("--out", help="write <out>.ark/<out>.scp (kaldiio) instead of printing")
    args = parser.parse_args(argv)
    try:
        inputs = _inputs(args)
        if args.command == "langid":
            lid = LanguageIdentifier(args.model, args.device)
            for utt, audio in inputs:
                print(utt, " ".join(f"{lang}:{p:.3f}" for lang, p in lid.predict(audio, args.topk)), flush=True)
        elif args.command == "asr":
            asr = Transcriber(args.model, args.device)
            for utt, audio in inputs:
                print(utt, asr.transcribe(audio), flush=True)
        else:
            fbank = None
            if args.fbank_config:
                import yaml

                with open(args.fbank_config, encoding="utf-8") as f:
                    fbank = FbankConfig(**yaml.safe_load(f))
            embedder = Embedder(args.model, args.layer, fbank, args.device)
            if args.out:
                import kaldiio

                with kaldiio.WriteHelper(f"ark,scp:{args.out}.ark,{args.out}.scp") as writer:
                    for utt, audio in inputs:
                        writer(utt, embedder(audio))
                print(f"wrote {len(inputs)} embeddings to {args.out}.ark / {args.out}.scp")
            else:
                for utt, audio in inputs:
                    print(utt, " ".join(f"{v:.4f}" for v in embedder(audio)), flush=True)
    except (AudioError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
