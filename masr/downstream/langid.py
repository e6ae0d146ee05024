"""Spoken language identification: fine-tune a pretrained encoder (paper Table 1).

Usage (the recipe's stage 5 runs it once per pretrained model and seed)::

    python -m masr.downstream.langid conf/langid.yaml --pretrained exp/continue_masr \\
        --train_dir dump/train --dev_dir dump/dev --test_dir dump/test \\
        --pretrain_langs dump/pretrain/utt2lang --exp_dir exp/langid/continue_masr/seed1 --seed 1

The model is the encoder, masked mean pooling and a linear softmax over the languages of the
training set (``utt2lang``). With ``head_init: linear_probe`` the head starts as a logistic
regression fitted (L-BFGS, ``masr.downstream.probe``) on the frozen encoder's embeddings of the
training set: linear probing then fine-tuning ("LP-FT", Kumar et al., ICLR 2022), the cheap
form of a frozen-encoder warm-up; the LP model is checkpoint 0, so dev selection can keep it if
fine-tuning does not help. ``freeze_encoder_steps`` adds an SGD warm-up with the encoder frozen.
Training: cross-entropy on random crops (see ``masr.downstream.finetune``). Selection: the checkpoint with the best
dev accuracy. Both candidates are also reported on their own: the linear probe (checkpoint 0)
and the fine-tuned model (the best checkpoint after step 0 on dev), under ``linear_probe`` and
``fine_tuned`` in ``results.json`` (step, dev accuracy, test accuracy overall / O / NO) with
``predictions.linear_probe.tsv`` and ``predictions.fine_tuned.tsv``; ``selected.kind`` says which
one dev selection kept. Report of the kept model (``results.json``, ``per_language.tsv``,
``confusion.tsv``, ``predictions.tsv``), on test:

- accuracy, macro-F1 and EER. EER treats every (utterance, language) pair as a detection trial
  scored by the log-posterior; ``eer_pooling`` says whether one threshold serves all languages
  (``pooled``, the default) or the EER is averaged over per-language thresholds (``average``);
- accuracy and macro-F1 on the test utterances of languages seen in pretraining ("overlapped",
  O: the languages of ``--pretrain_langs``) and of the others (NO), with their class counts.
  Predictions range over all training languages in both cases;
- per-language accuracy and the full confusion matrix.
"""

import os
import sys

import numpy as np
import torch

from masr.data.datadir import DataDir, mapping_id, read_kaldi_map
from masr.data.dataset import FeatsDataset
from masr.downstream import finetune
from masr.downstream.pretrained import run_name
from masr.downstream.results_schema import LangIDCandidate, LangIDResults, ResultsData
from masr.metrics import accuracy, confusion_matrix, langid_eer, macro_f1
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


def split_by_overlap(references, predictions, seen):
    """Accuracy and macro-F1 on the utterances of overlapped (seen in pretraining) and
    non-overlapped languages.

    Arguments
    ---------
    references, predictions : list of str
        Reference and predicted language of each test utterance.
    seen : set of str
        Languages in the pretraining data.

    Returns
    -------
    dict
        ``overlapped`` and ``non_overlapped``: ``accuracy``, ``macro_f1`` (None without utterances),
        ``num_classes`` (reference languages of the group), ``num_utts``.

    Example
    -------
    >>> out = split_by_overlap(["a", "a", "b", "c"], ["a", "b", "b", "a"], seen={"a"})
    >>> out["overlapped"]["accuracy"], out["overlapped"]["num_classes"]
    (0.5, 1)
    >>> out["non_overlapped"]["accuracy"], out["non_overlapped"]["num_utts"], out["non_overlapped"]["num_classes"]
    (0.5, 2, 2)
    """
    out = {}
    for group, keep in (("overlapped", True), ("non_overlapped", False)):
        pairs = [(r, p) for r, p in zip(references, predictions) if (r in seen) == keep]
        refs = [r for r, _ in pairs]
        hyps = [p for _, p in pairs]
        out[group] = {
            "accuracy": accuracy(hyps, refs) if pairs else None,
            # F1 over the group's reference languages only
            "macro_f1": macro_f1(hyps, refs, labels=sorted(set(refs))) if pairs else None,
            "num_classes": len(set(refs)),
            "num_utts": len(pairs),
        }
    return out


def evaluate(model, dump_dir, labels, seen, eer_pooling="pooled", batch_frames=20000, device=None,
             show_progress=None):
    """Test-set results of a LangID model (the ``results.json`` fields, without run info), and the
    per-utterance predictions.

    Utterances whose language is not among ``labels`` (absent from the training set) are
    refused: they could never be recognised, and the error names one of them. ``show_progress``:
    a bar of the utterances predicted (:func:`masr.downstream.finetune.predict`).
    """
    refs_by_utt = DataDir(dump_dir).stream("lang")
    index = {lang: i for i, lang in enumerate(labels)}
    unknown = sorted(u for u, lang in refs_by_utt.items() if lang not in index)
    if unknown:
        raise ValueError(f"{dump_dir}/utt2lang: {len(unknown)} utterances of languages absent from training "
                         f"(e.g. {unknown[0]}: '{refs_by_utt[unknown[0]]}')")
    outputs = finetune.predict(model, dump_dir, batch_frames, device, show_progress=show_progress,
                               desc=f"langid {os.path.basename(os.path.normpath(dump_dir))}")
    utts = [utt for utt, _, _ in outputs]
    scores = torch.log_softmax(torch.stack([x for _, x, _ in outputs]), dim=-1)
    refs = [refs_by_utt[u] for u in utts]
    ref_ids = torch.tensor([index[r] for r in refs])
    hyps = [labels[i] for i in scores.argmax(-1).tolist()]
    per_language = {}
    for lang in labels:
        n = sum(r == lang for r in refs)
        if n:
            correct = sum(r == h == lang for r, h in zip(refs, hyps))
            per_language[lang] = {"accuracy": correct / n, "num_utts": n, "overlapped": lang in seen}
    results = {
        "labels": list(labels),
        "pretrain_languages": sorted(seen),
        "overall": {"accuracy": accuracy(hyps, refs), "macro_f1": macro_f1(hyps, refs, labels=sorted(set(refs))),
                    "eer": langid_eer(scores, ref_ids, pooling=eer_pooling),
                    "num_classes": len(set(refs)), "num_utts": len(refs)},
        **split_by_overlap(refs, hyps, seen),
        "eer_pooling": eer_pooling,
        "per_language": per_language,
        "confusion": confusion_matrix(hyps, refs, labels).tolist(),
    }
    predictions = [(u, r, h, float(s.max())) for u, r, h, s in zip(utts, refs, hyps, scores)]
    return results, predictions


def write_reports(exp_dir, results, predictions):
    """``per_language.tsv``, ``confusion.tsv`` (rows: reference) and ``predictions.tsv``."""
    with atomic_open(os.path.join(exp_dir, "per_language.tsv")) as f:
        f.write("language\toverlapped\tutterances\taccuracy\n")
        for lang, r in results["per_language"].items():
            f.write(f"{lang}\t{'O' if r['overlapped'] else 'NO'}\t{r['num_utts']}\t{r['accuracy']:.4f}\n")
    with atomic_open(os.path.join(exp_dir, "confusion.tsv")) as f:
        f.write("reference\\predicted\t" + "\t".join(results["labels"]) + "\n")
        for lang, row in zip(results["labels"], results["confusion"]):
            f.write(lang + "\t" + "\t".join(map(str, row)) + "\n")
    write_predictions(os.path.join(exp_dir, "predictions.tsv"), predictions)


def write_predictions(path, predictions):
    """A ``predictions.tsv``: utt, reference, predicted language, its log-posterior."""
    with atomic_open(path) as f:
        f.write("utt\treference\tpredicted\tlog_posterior\n")
        for utt, ref, hyp, score in predictions:
            f.write(f"{utt}\t{ref}\t{hyp}\t{score:.4f}\n")


def init_head_by_linear_probe(trainer, config, index, device):
    """Fit the head on the frozen encoder's training embeddings and save it as checkpoint 0 (all
    ranks compute the same fit; a resumed run keeps its checkpoints instead)."""
    from masr.downstream.probe import embed_dump_dir, fit_logistic_regression
    from masr.train.checkpoint import list_checkpoints, save_checkpoint

    if list_checkpoints(trainer.ckpt_dir):
        return
    model = trainer._unwrapped()
    vectors = embed_dump_dir(model.encoder, config["train_dir"], model.layer, config["eval_batch_frames"],
                             device, show_progress=enabled(config["progress"]) if trainer.rank == 0 else False)
    langs = DataDir(config["train_dir"]).stream("lang")
    utts = sorted(vectors)
    weight, bias = fit_logistic_regression(np.stack([vectors[u] for u in utts]),
                                           np.array([index[langs[u]] for u in utts]), len(index),
                                           l2=config["probe_l2"])
    with torch.no_grad():
        model.head.weight.copy_(weight.T)
        model.head.bias.copy_(bias)
    model.encoder.train()
    save_checkpoint(trainer.ckpt_dir, 0, trainer.state_dict() if trainer.rank == 0 else None, rank=trainer.rank,
                    keep=trainer.keep, world_size=trainer.world_size)


#: Every key the stage reads (no Python-side defaults: each is declared in the YAML, see
#: ``egs/mini/conf/langid.yaml``); the trainer's keys are :data:`masr.downstream.finetune.TRAINER_KEYS`.
CONFIG_KEYS = finetune.TRAINER_KEYS + (
    "pretrained", "train_dir", "dev_dir", "test_dir", "pretrain_langs", "fbank_config", "layer", "dropout",
    "eer_pooling", "max_frames", "eval_batch_frames", "head_init", "probe_l2", "freeze_encoder_steps",
)


def run(config, rank=0, world_size=1, device=None):
    """Fine-tune, select on dev and evaluate on test; returns the results (rank 0) or None."""
    device = device or torch.device("cpu")
    seed_everything(config["seed"] + rank)
    # read before training, so that a wrong path fails now rather than after hours of fine-tuning
    seen = set(read_kaldi_map(config["pretrain_langs"]).values())
    train = FeatsDataset(config["train_dir"], streams=["lang"], max_frames=config["max_frames"])
    labels = sorted(set(DataDir(config["train_dir"]).stream("lang").values()))
    index = {lang: i for i, lang in enumerate(labels)}
    model = finetune.FineTuneModel(finetune.pretrained_encoder(config), len(labels), pooled=True,
                                   layer=config["layer"], freeze_encoder_steps=config["freeze_encoder_steps"],
                                   dropout=config["dropout"])

    def step_fn(model, batch):
        logits, _ = model(batch["feats"], batch["lengths"])
        targets = torch.tensor([index[lang] for lang in batch["lang"]], device=logits.device)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        return loss, {"accuracy": (logits.argmax(-1) == targets).float().mean().detach()}

    trainer = finetune.build_finetune_trainer(config, model, train, step_fn, rank, world_size, device)
    if config["head_init"] == "linear_probe":
        init_head_by_linear_probe(trainer, config, index, device)
    elif config["head_init"] != "random":
        raise ValueError(f"head_init must be 'random' or 'linear_probe', got '{config['head_init']}'")
    trainer.fit()
    if rank != 0:
        return None
    model = trainer._unwrapped()
    frames = config["eval_batch_frames"]
    dev_refs = DataDir(config["dev_dir"]).stream("lang")

    show_progress = enabled(config["progress"])

    def dev_accuracy(m):
        out = finetune.predict(m, config["dev_dir"], frames, device, show_progress=show_progress, desc="langid dev",
                               leave=False)
        return accuracy([labels[int(x.argmax())] for _, x, _ in out], [dev_refs[u] for u, _, _ in out])

    scores = finetune.score_checkpoints(model, config["exp_dir"], dev_accuracy, device=device)
    probe = [s for s in scores if s[0] == 0] if config["head_init"] == "linear_probe" else []
    tuned = [s for s in scores if not probe or s[0] > 0]
    candidates = {"linear_probe": probe[0] if probe else None,
                  "fine_tuned": finetune.best_checkpoint(tuned) if tuned else None}
    step, path, dev_acc = finetune.best_checkpoint(scores)
    test_refs = DataDir(config["test_dir"]).stream("lang")
    evaluated = {}
    for kind, best in candidates.items():
        if best is None or best[0] == step:
            continue
        finetune.load_weights(model, best[1], device)
        evaluated[kind] = evaluate(model, config["test_dir"], labels, seen, config["eer_pooling"],
                                   frames, device, show_progress)
    finetune.load_weights(model, path, device)
    results, predictions = evaluate(model, config["test_dir"], labels, seen, config["eer_pooling"],
                                    frames, device, show_progress)
    kept = "linear_probe" if probe and step == 0 else "fine_tuned"
    evaluated[kept] = (results, predictions)
    # the linear probe (checkpoint 0) and the best fine-tuned checkpoint on dev, each on test
    models = {kind: LangIDCandidate.from_evaluation(best[0], best[2], evaluated[kind][0])
              for kind, best in candidates.items() if best is not None}
    results = LangIDResults.from_evaluation(
        model=run_name(config["pretrained"]), seed=config["seed"],
        data=ResultsData(train=config["train_dir"], dev=config["dev_dir"], test=config["test_dir"],
                         test_id=mapping_id(test_refs)),
        selected={"step": step, "dev_accuracy": dev_acc, "kind": kept}, candidates=models,
        evaluation=results).to_json()
    write_reports(config["exp_dir"], results, predictions)
    for kind in models:
        write_predictions(os.path.join(config["exp_dir"], f"predictions.{kind}.tsv"), evaluated[kind][1])
    finetune.save_model_spec(config["exp_dir"], model, "langid", path, finetune.read_fbank_config(config["fbank_config"]),
                             labels=labels)
    finetune.write_json(os.path.join(config["exp_dir"], "results.json"), results)
    return results


def main(argv=None):
    parser = add_training_arguments(make_parser("Fine-tune a pretrained encoder for spoken language identification."))
    args, config = parse_arguments(parser, argv, required=CONFIG_KEYS)
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
        o, no, overall = results["overlapped"], results["non_overlapped"], results["overall"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lp, ft = results.get("linear_probe"), results.get("fine_tuned")
        if lp and ft:
            print(f"linear probe (step 0): dev {lp['dev_accuracy']:.3f} test {lp['overall']['accuracy']:.3f} | "
                  f"fine-tuned (step {ft['step']}): dev {ft['dev_accuracy']:.3f} test {ft['overall']['accuracy']:.3f} | "
                  f"dev selection kept the {results['selected']['kind'].replace('_', ' ')}")
        print(f"test: accuracy {overall['accuracy']:.3f} | macro-F1 {overall['macro_f1']:.3f} | "
              f"EER {overall['eer']:.3f} ({results['eer_pooling']}) | O ({o['num_classes']}) {fmt(o['accuracy'])} | "
              f"NO ({no['num_classes']}) {fmt(no['accuracy'])} | selected step {results['selected']['step']} "
              f"(dev accuracy {results['selected']['dev_accuracy']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
