"""Speech recognition: CTC fine-tuning of a pretrained encoder (paper Table 3).

Usage (the recipe runs it once per pretrained model and seed)::

    python -m masr.downstream.asr conf/asr.yaml --pretrained exp/continue_masr \\
        --train_dir dump/train --dev_dir dump/dev --test_dir dump/test \\
        --exp_dir exp/asr/continue_masr/seed1 --seed 1

The stage; its parts live in their own modules:

- :mod:`masr.downstream.tokenizer`: the SentencePiece tokenizer (``model_type``, ``vocab_size``)
  trained on the transcripts of ``train_dir`` (its ``text``), kept in ``<exp_dir>/tokenizer/``
  and reused by a later run with the same text and settings; no text normalisation;
- :mod:`masr.downstream.ctc`: the training utterances CTC can align, and the loss;
- :mod:`masr.downstream.ctc_decoding`: greedy decoding and CTC prefix beam search, with or
  without a KenLM language model;
- :mod:`masr.downstream.asr_scoring`: WER / CER per language and the report files.

Model. The encoder with a linear layer over its frames (:class:`masr.downstream.finetune.FineTuneModel`,
``pooled=False``) giving ``vocab_size + 1`` CTC outputs: the blank is 0 and SentencePiece piece
``i`` is output ``i + 1`` (``<unk>``, piece 0, is output 1; no BOS / EOS). Loss: CTC with PyTorch's
``"mean"`` reduction (each utterance's loss divided by its number of target tokens, averaged over
the batch). Whole utterances are used (``crop_frames`` must be null: the transcript covers the
whole utterance); training utterances whose transcript cannot be aligned by CTC are dropped,
counted, printed and listed in ``<exp_dir>/dropped_train_utts.tsv``. Training: a frozen-encoder
warm-up, then the whole model (see :mod:`masr.downstream.finetune`).

Decoding: greedy (``beam_size: 1``) or CTC prefix beam search (``beam_size: k > 1``), without
language model (``lm: null``, the default) or with a KenLM n-gram model over words (``lm``, with
``beam_size > 1``; a run with ``lm`` set and no ``kenlm`` bindings stops at once, before training,
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
import sys

import torch

from masr.data.datadir import DataDir, DataDirError, mapping_id
from masr.data.dataset import FeatsDataset
from masr.downstream import finetune
from masr.downstream.asr_scoring import cer, references_of, score, write_reports
from masr.downstream.ctc import CTCDataset, ctc_loss
from masr.downstream.ctc_decoding import check_lm, decoding_name, transcribe_dir
from masr.downstream.pretrained import run_name
from masr.downstream.results_schema import ABSENT, ASRResults, ResultsData
from masr.downstream.tokenizer import BLANK, TOKENIZER_MODEL, CTCTokenizer, prepare_tokenizer
from masr.metrics import wer
from masr.train import distributed
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
from masr.utils.progress import enabled


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


#: Every key the stage reads (no Python-side defaults: each is declared in the YAML, see
#: ``egs/mini/conf/asr.yaml``); the trainer's keys are :data:`masr.downstream.finetune.TRAINER_KEYS`.
CONFIG_KEYS = finetune.TRAINER_KEYS + (
    "pretrained", "train_dir", "dev_dir", "test_dir", "fbank_config", "languages", "vocab_size", "model_type",
    "max_frames", "layer", "freeze_encoder_steps", "dropout", "eval_batch_frames", "beam_size", "lm",
    "selection_metric",
)


def check_config(config):
    """Refuse settings that make no sense for CTC ASR."""
    if config["crop_frames"]:
        raise ValueError(f"crop_frames: {config['crop_frames']}: ASR trains on whole utterances (the transcript "
                         "covers all of it, a crop would not match it); set crop_frames: null and bound the "
                         "utterance length with max_frames instead")
    beam_size = config["beam_size"]
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be an integer >= 1, got {beam_size!r}")
    if config["lm"] is not None:
        if beam_size <= 1:
            raise ValueError(f"lm: {config['lm']}: a language model needs beam search (beam_size > 1)")
        check_lm(config["lm"])
    if config["selection_metric"] not in ("wer", "cer"):
        raise ValueError(f"selection_metric must be 'wer' or 'cer', got {config['selection_metric']!r}")
    languages = config["languages"]
    if languages is not None and (isinstance(languages, str) or not languages
                                  or not all(isinstance(x, str) for x in languages)):
        raise ValueError(f"languages must be null (all) or a non-empty list of utt2lang codes, got {languages!r}")


def run(config, rank=0, world_size=1, device=None):
    """Fine-tune, select on dev WER and evaluate on test; returns the results (rank 0) or None."""
    check_config(config)
    device = device or torch.device("cpu")
    exp_dir = config["exp_dir"]
    seed_everything(config["seed"] + rank)
    languages = config["languages"]
    dirs = {"train_dir": config["train_dir"], "dev_dir": config["dev_dir"], "test_dir": config["test_dir"]}
    subset = {name: utterances_of_languages(path, languages) for name, path in dirs.items()}
    train_utts = sorted(DataDir(config["train_dir"]).read("feats.scp"))
    if subset["train_dir"] is not None:
        train_utts = [u for u in train_utts if u in subset["train_dir"]]
    train_texts = references_of(config["train_dir"], train_utts)
    if rank == 0:
        meta = prepare_tokenizer(train_texts, exp_dir, config["vocab_size"], config["model_type"])
    distributed.barrier()  # the other ranks read the tokenizer rank 0 trained
    tokenizer = CTCTokenizer(os.path.join(exp_dir, TOKENIZER_MODEL))
    encoder = finetune.pretrained_encoder(config)
    train = CTCDataset(FeatsDataset(config["train_dir"], max_frames=config["max_frames"], utts=train_utts),
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
    model = finetune.FineTuneModel(encoder, tokenizer.num_outputs, pooled=False, layer=config["layer"],
                                   freeze_encoder_steps=config["freeze_encoder_steps"],
                                   dropout=config["dropout"])

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
    frames = config["eval_batch_frames"]
    beam_size = int(config["beam_size"])
    lm = config["lm"]
    dev_refs = None

    metric = config["selection_metric"]

    def dev_error_rate(m):
        nonlocal dev_refs
        hyps = transcribe_dir(m, tokenizer, config["dev_dir"], frames, device, beam_size, subset["dev_dir"], lm)
        dev_refs = dev_refs or references_of(config["dev_dir"], list(hyps))
        refs = [dev_refs[u] for u in hyps]
        return wer(refs, list(hyps.values()))["wer"] if metric == "wer" else cer(refs, list(hyps.values()))["cer"]

    step, path, dev_score = finetune.select_checkpoint(model, exp_dir, dev_error_rate, higher_is_better=False,
                                                       device=device)
    hyps = transcribe_dir(model, tokenizer, config["test_dir"], frames, device, beam_size, subset["test_dir"], lm,
                          progress=enabled(config["progress"]))
    refs = references_of(config["test_dir"], list(hyps))
    langs = references_of(config["test_dir"], list(hyps), "lang")
    scores = score(refs, hyps, langs, details_dir=exp_dir, set_name="test")
    results = ASRResults.from_scores(
        model=run_name(config["pretrained"]), seed=config["seed"],
        data=ResultsData(train=config["train_dir"], dev=config["dev_dir"], test=config["test_dir"],
                         test_id=mapping_id(refs)),
        vocab_size=tokenizer.vocab_size, decoding=decoding_name(beam_size), languages=sorted(set(langs.values())),
        selected={"step": step, f"dev_{metric}": dev_score, "metric": metric}, scores=scores,
        lm=ABSENT if lm is None else str(lm)).to_json()
    write_reports(exp_dir, results, refs, hyps, langs)
    finetune.save_model_spec(exp_dir, model, "asr", path, finetune.read_fbank_config(config["fbank_config"]),
                             tokenizer=TOKENIZER_MODEL, blank=BLANK, decoding=decoding_name(beam_size))
    finetune.write_json(os.path.join(exp_dir, "results.json"), results)
    return results


def main(argv=None):
    parser = add_training_arguments(make_parser("Fine-tune a pretrained encoder for speech recognition (CTC)."))
    args, config = parse_arguments(parser, argv, required=CONFIG_KEYS)
    try:
        check_config(config)
    except ValueError as e:
        parser.error(f"{args.config}: {e}")
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
