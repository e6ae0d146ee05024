"""The model card of a packed folder: its ``README.md``, with the Hugging Face Hub's YAML front matter.

:func:`model_card` writes it for :func:`masr.hub.save_pretrained` from the run's results files
only: the fine-tuned run's ``results.json`` (and those of its other ``seed<S>`` folders), the
linear probes run on a pretraining run (``<exp>/probe/<run name>/seed*/results.json``), and any
results files given with ``--results``; a number that no results file holds is never written
(``not evaluated`` otherwise). The front matter names ``library_name: masr``, tags, languages,
metrics and, for a fine-tuned model, the Hub's ``model-index``.

Only :mod:`masr.hub` imports this module.
"""

import json
import os
import re


_PIPELINE = {"langid": "audio-classification", "asr": "automatic-speech-recognition", "embed": "feature-extraction"}
_TASK_NAME = {"langid": "Spoken language identification", "asr": "Speech recognition (CTC)",
              "embed": "Utterance embeddings"}
_TAGS = {"langid": ["language-identification"], "asr": ["ctc"], "embed": ["self-supervised-learning"]}


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None



def _pct(x):
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def _ci(block, metric):
    """`` [lo, hi]`` (%) when a results block holds a confidence interval for ``metric``
    (``<metric>_ci`` or ``ci: {<metric>: [lo, hi]}``), else ``""``."""
    ci = block.get(f"{metric}_ci") or (block.get("ci") or {}).get(metric) if isinstance(block, dict) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f" [{_pct(ci[0])}, {_pct(ci[1])}]"
    return ""


def _cell(block, metric):
    return _pct(block.get(metric)) + _ci(block, metric) if isinstance(block, dict) and metric in block else "n/a"


def _seed_results(source, task):
    """{seed: results} of the seed folders next to a ``seed<S>`` model folder (itself included)."""
    path = os.path.normpath(source)
    found = {}
    if re.fullmatch(r"seed\d+", os.path.basename(path)) and os.path.isdir(os.path.dirname(path)):
        for name in sorted(os.listdir(os.path.dirname(path))):
            r = _read_json(os.path.join(os.path.dirname(path), name, "results.json"))
            if re.fullmatch(r"seed\d+", name) and isinstance(r, dict) and r.get("task") == task:
                found[int(name[4:])] = r
    elif isinstance(_read_json(os.path.join(path, "results.json")), dict):
        found[None] = _read_json(os.path.join(path, "results.json"))
    return found


def _probe_results(source):
    """Results files of ``masr.downstream.probe`` run on this pretraining run
    (``<exp>/probe/<run name>/seed*/results.json``)."""
    from masr.downstream.pretrained import run_name

    if not os.path.isdir(source):
        return []
    path = os.path.normpath(os.path.abspath(source))
    exp = os.path.dirname(os.path.dirname(path)) if re.fullmatch(r"seed\d+", os.path.basename(path)) \
        else os.path.dirname(path)
    folder = os.path.join(exp, "probe", run_name(path))
    out = []
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            r = _read_json(os.path.join(folder, name, "results.json"))
            if isinstance(r, dict) and r.get("task") == "probe" and \
                    os.path.normpath(str(r.get("checkpoint", ""))).split(os.sep)[-3:-2] == [os.path.basename(path)]:
                out.append((os.path.join(folder, name, "results.json"), r))
    return out


def _read_yaml(path):
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None


def _blocks(results):
    """The metric blocks (dicts) of a results file, nested ones included."""
    if isinstance(results, dict):
        yield results
        for value in results.values():
            yield from _blocks(value)


def _corpus(source):
    """The title of the recipe's ``RESULTS.md`` next to the run (e.g. ``egs/mini: the embedded
    26-language corpus``), or None."""
    path = os.path.abspath(source)
    for _ in range(4):
        path = os.path.dirname(path)
        card = os.path.join(path, "RESULTS.md")
        if os.path.isfile(card):
            with open(card, encoding="utf-8") as f:
                first = f.readline().strip()
            return first.split(":", 1)[1].strip() if first.startswith("# Results:") else None
    return None


def model_card(config, source, results=None):
    """The ``README.md`` of a packed folder: Hub front matter and the run's results (never a
    number that the results files do not hold)."""
    import yaml

    from masr.hub import PackError

    task = config["task"]
    enc = config["encoder"]
    own = _seed_results(source, task) if task != "embed" else {}
    this_seed = None
    m = re.fullmatch(r"seed(\d+)", os.path.basename(os.path.normpath(source)))
    if m:
        this_seed = int(m.group(1))
    mine = own.get(this_seed) if this_seed in own else own.get(None)
    probes = _probe_results(source) if task == "embed" else []
    for path in results or []:
        r = _read_json(path)
        if not isinstance(r, dict):
            raise PackError(f"{path}: not a JSON results file")
        if r.get("task") == "probe":
            probes.append((path, r))
        elif r.get("task") == task and mine is None:
            mine = r
    languages = config.get("labels") or (mine or {}).get("languages") or []
    evaluated = bool(mine) or bool(probes)

    front = {"library_name": "masr", "tags": ["masr", "audio", "speech", *_TAGS[task],
                                              enc["class"].rsplit(".", 1)[1].lower()],
             "pipeline_tag": _PIPELINE[task]}
    if languages:
        front["language"] = list(languages)
    metric_names = {"langid": ["accuracy", "f1", "eer"], "asr": ["wer", "cer"], "embed": ["accuracy"]}[task]
    if evaluated:
        front["metrics"] = metric_names
    index = []
    if mine and task == "langid":
        overall = mine.get("overall", {})
        index = [{"type": "accuracy", "name": "test accuracy (%)", "value": round(100 * overall["accuracy"], 2)}
                 if "accuracy" in overall else None,
                 {"type": "f1", "name": "test macro-F1 (%)", "value": round(100 * overall["macro_f1"], 2)}
                 if "macro_f1" in overall else None,
                 {"type": "eer", "name": "test EER (%)", "value": round(100 * overall["eer"], 2)}
                 if "eer" in overall else None]
    elif mine and task == "asr":
        overall = mine.get("overall", {})
        index = [{"type": k, "name": f"test {k.upper()} (%)", "value": round(100 * overall[k], 2)}
                 for k in ("wer", "cer") if k in overall]
    index = [x for x in index if x]
    name = os.path.basename(os.path.dirname(os.path.normpath(source))) if this_seed is not None \
        else os.path.basename(os.path.normpath(source))
    if index:
        data = (mine.get("data") or {}).get("test", "test")
        front["model-index"] = [{"name": f"masr-{task}-{name}", "results": [{
            "task": {"type": _PIPELINE[task], "name": _TASK_NAME[task]},
            "dataset": {"name": str(data), "type": str(data)}, "metrics": index}]}]

    src = config.get("source") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {name}: {_TASK_NAME[task].lower()} (masr)", "",
             f"A masr model ({_TASK_NAME[task].lower()}) packed by `python -m masr.hub pack`: `config.json` "
             "(architecture, labels/tokenizer, filterbank options) and `model.safetensors` (weights); no pickle, "
             "no code.", "",
             "## Use", "", "```python", "from masr.hub import from_pretrained",
             "model = from_pretrained(\"<this folder or <owner>/<repo>>\")"]
    lines += {"langid": ["model.predict(\"a.wav\", topk=3)  # [(language, posterior), ...]"],
              "asr": ["model.transcribe(\"a.wav\")"],
              "embed": ["model(\"a.wav\")  # numpy (D,): mean-pooled frames"]}[task]
    lines += ["```", "", f"or `python -m masr.infer {task} --model <folder> a.wav`.", "", "## Model", "",
              f"- task: {task}" + (f" ({len(config['labels'])} languages)" if task == "langid" else ""),
              f"- encoder: `{enc['class']}` ({', '.join(f'{k}={v}' for k, v in enc['hparams'].items())})"]
    if task != "embed":
        lines.append(f"- head: linear, {config['num_outputs']} outputs, "
                     + ("on the mean of the frames" if config["pooled"] else "per frame (CTC, blank 0)"))
    lines += [f"- encoder blocks used: {'all' if config['layer'] is None else config['layer']}",
              "- features: " + ", ".join(f"{k}={v}" for k, v in config["fbank"].items()),
              f"- source: `{src.get('run')}`, checkpoint `{src.get('checkpoint')}` (step {src.get('step')})",
              f"- masr {config.get('masr_version')}, git commit {config.get('git_commit') or 'unknown'}"]
    if task == "langid":
        lines.append(f"- languages: {', '.join(config['labels'])}")
    elif task == "asr":
        lines.append(f"- tokenizer: SentencePiece `{config['tokenizer']}`, decoding {config.get('decoding')}")

    lines += ["", "## Results", ""]
    if task == "embed":
        overrides = _read_yaml(os.path.join(source, "overrides.yaml")) if os.path.isdir(source) else None
        if isinstance(overrides, dict) and overrides.get("train_dir"):
            corpus = _corpus(source)
            lines += [f"Pretraining data: `{overrides['train_dir']}`." + (f" Corpus: {corpus}." if corpus else ""), ""]
    if not evaluated:
        lines.append("Not evaluated: no results file of this run was found (give one with --results).")
    if mine:
        data = mine.get("data") or {}
        lines.append("Training data: " + ", ".join(f"{k} `{v}`" for k, v in data.items()) + "."
                     + (f" Corpus: {_corpus(source)}." if _corpus(source) else ""))
        sel = mine.get("selected") or {}
        lines += ["", f"This checkpoint: seed {mine.get('seed')}, selected on dev ("
                  + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in sel.items())
                  + "); numbers on test, in %.", ""]
        if task == "langid":
            lines += ["| subset | languages | utterances | accuracy | macro-F1 | EER |", "|---|---:|---:|---:|---:|---:|"]
            for key in ("overall", "overlapped", "non_overlapped"):
                b = mine.get(key)
                if isinstance(b, dict):
                    lines.append(f"| {key.replace('_', '-')} | {b.get('num_classes', 'n/a')} | {b.get('num_utts', 'n/a')} | "
                                 f"{_cell(b, 'accuracy')} | {_cell(b, 'macro_f1')} | {_cell(b, 'eer')} |")
            lines.append("")
            lines.append("overlapped: the languages seen in pretraining; non-overlapped: the others.")
            if isinstance(mine.get("linear_probe"), dict) and "overall" in mine["linear_probe"]:
                lines.append(f"Linear probe on the frozen encoder: test accuracy "
                             f"{_cell(mine['linear_probe']['overall'], 'accuracy')}.")
        else:
            lines += ["| language | utterances | WER | CER |", "|---|---:|---:|---:|"]
            for lang, b in sorted((mine.get("per_language") or {}).items()):
                lines.append(f"| {lang} | {b.get('num_utts', 'n/a')} | {_cell(b, 'wer')} | {_cell(b, 'cer')} |")
            for key in ("average", "overall"):
                if isinstance(mine.get(key), dict):
                    lines.append(f"| **{key}** | | {_cell(mine[key], 'wer')} | {_cell(mine[key], 'cer')} |")
        if len(own) > 1:
            metric = ("accuracy", "macro_f1", "eer") if task == "langid" else ("wer", "cer")
            lines += ["", "All seeds of this model (their results files; this one marked *), test, %:", "",
                      "| seed | step | " + " | ".join(metric) + " |", "|---|---:|" + "---:|" * len(metric)]
            for seed, r in sorted(own.items(), key=lambda x: (x[0] is None, x[0])):
                lines.append(f"| {seed}{' *' if seed == this_seed else ''} | {(r.get('selected') or {}).get('step')} | "
                             + " | ".join(_cell(r.get("overall") or {}, k) for k in metric) + " |")
        lines.append("")
        with_ci = any(_ci(b, k) for b in _blocks(mine) for k in ("accuracy", "macro_f1", "eer", "wer", "cer"))
        lines.append("Confidence intervals: " + ("in brackets, as the results files hold them." if with_ci
                                                 else "none in the results files."))
    for path, r in probes:
        lines += ["", f"Linear probes on the frozen encoder (`{os.path.relpath(path)}`, layer "
                  f"{'all' if r.get('layer') is None else r.get('layer')}): test accuracy in %.", "",
                  "| task | label | protocol | classes | train | test | accuracy |", "|---|---|---|---:|---:|---:|---:|"]
        for t, b in sorted((r.get("tasks") or {}).items()):
            lines.append(f"| {t} | {b.get('label')} | {b.get('protocol')} | {b.get('num_classes')} | "
                         f"{b.get('num_train')} | {b.get('num_test')} | {_cell(b, 'accuracy')} |")
    for extra in ("overrides.yaml", "config.yaml"):
        path = os.path.join(source, extra) if os.path.isdir(source) else None
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                text = f.read().rstrip()
            lines += ["", f"<details><summary>Training config: {extra}</summary>", "", "```yaml", text, "```", "",
                      "</details>"]
    return "\n".join(lines) + "\n"
