"""Fill the generated tables of README files from the files the recipes and benchmarks write.

A README marks each generated table with a pair of comments; only the text between them is
replaced, so the prose around stays hand-written::

    <!-- BEGIN data_stats -->
    ... generated ...
    <!-- END data_stats -->

Usage (after ``./run.sh`` and ``python benchmarks/data_pipeline.py``)::

    python -m masr.report.docs
"""

import argparse
import csv
import glob
import os
import sys
from collections import defaultdict

from masr.utils.fileio import atomic_open

#: Stage 4's runs on the embedded corpus, in table order.
VARIANTS = ("continue_bestrq", "continue_lasr", "continue_masr", "continue_masr_geographic",
            "continue_masr_phonological", "continue_masr_featural", "continue_masr_genetic", "continue_masr_inventory")


def results_tables(results_md, first="## Table 1", last="## Figures"):
    """The tables of a recipe's generated ``RESULTS.md`` (Tables 1-3 and their notes), without its
    header and figures (the figures stay in the git-ignored exp folder)."""
    with open(results_md, encoding="utf-8") as f:
        text = f.read()
    start = text.index(first)
    end = text.index(last) if last in text else len(text)
    return text[start:end].strip().replace("## Table", "#### Table")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def replace_block(text, name, content):
    """Replace what stands between the ``BEGIN name`` / ``END name`` comments.

    Example
    -------
    >>> replace_block("a\\n<!-- BEGIN t -->\\nold\\n<!-- END t -->\\nb\\n", "t", "new")
    'a\\n<!-- BEGIN t -->\\nnew\\n<!-- END t -->\\nb\\n'
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin not in text or end not in text:
        raise ValueError(f"no '{begin}' ... '{end}' block to fill")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{content.strip()}\n{end}{tail}"


def read_data_stats(path):
    """Rows of a ``data_stats.tsv`` (see ``masr.data.stats``) with numeric fields converted."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["utterances"], r["speakers"], r["hours"] = int(r["utterances"]), int(r["speakers"]), float(r["hours"])
    return rows


def split_table(rows):
    """Markdown: one line per split (languages, utterances, speakers, hours).

    Example
    -------
    >>> rows = [{"split": "train", "lang": "hrv", "utterances": 2, "speakers": 1, "hours": 0.5},
    ...         {"split": "train", "lang": "all", "utterances": 2, "speakers": 1, "hours": 0.5}]
    >>> print(split_table(rows))
    | split | languages | utterances | speakers | hours |
    |---|---:|---:|---:|---:|
    | train | 1 | 2 | 1 | 0.50 |
    """
    lines = ["| split | languages | utterances | speakers | hours |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["lang"] == "all":
            n_lang = sum(1 for x in rows if x["split"] == r["split"] and x["lang"] != "all")
            lines.append(f"| {r['split']} | {n_lang} | {r['utterances']} | {r['speakers']} | {r['hours']:.2f} |")
    return "\n".join(lines)


def language_table(rows):
    """Markdown: utterances per language (rows) and split (columns); '-' where absent."""
    splits = list(dict.fromkeys(r["split"] for r in rows))
    counts = defaultdict(dict)
    for r in rows:
        if r["lang"] != "all":
            counts[r["lang"]][r["split"]] = r["utterances"]
    lines = ["| language | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for lang in sorted(counts):
        lines.append(f"| {lang} | " + " | ".join(str(counts[lang].get(s, "-")) for s in splits) + " |")
    return "\n".join(lines)


def learning_curve(train_log):
    """Markdown: the validation lines of a ``train_log.txt`` (step, loss, accuracy, majority).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "train_log.txt")
    >>> _ = open(p, "w").write("2026-01-01 00:00:00 step 100 | valid | loss 3.2 | accuracy 0.2 | majority_baseline 0.1\\n")
    >>> print(learning_curve(p))
    | step | valid loss | valid accuracy | majority-class accuracy |
    |---:|---:|---:|---:|
    | 100 | 3.200 | 0.200 | 0.100 |
    """
    lines = ["| step | valid loss | valid accuracy | majority-class accuracy |", "|---:|---:|---:|---:|"]
    with open(train_log, encoding="utf-8") as f:
        for line in f:
            if "| valid |" not in line:
                continue
            fields = dict(part.strip().rsplit(" ", 1) for part in line.split("|")[2:] if part.strip())
            step = line.split("|")[0].split("step")[-1].strip()
            lines.append(f"| {step} | {float(fields['loss']):.3f} | {float(fields['accuracy']):.3f} | "
                         f"{float(fields['majority_baseline']):.3f} |")
    return "\n".join(lines)


def _last_valid(train_log):
    last = None
    with open(train_log, encoding="utf-8") as f:
        for line in f:
            if "| valid |" in line:
                last = line
    if last is None:
        return None
    fields = dict(part.strip().rsplit(" ", 1) for part in last.split("|")[2:] if part.strip())
    fields["step"] = last.split("|")[0].split("step")[-1].strip()
    return fields


def variants_table(exp_dir, variants):
    """Markdown: the last validation line of each continued-pretraining run (stage 4), averaged
    over its seeds (``<variant>/seed<S>/train_log.txt``; mean ± sample std with several)."""
    lines = ["| variant | seeds | step | SSL valid accuracy | SSL valid loss | language triplet loss | "
             "language triplets active | negatives differing from LASR |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in variants:
        logs = sorted(glob.glob(os.path.join(exp_dir, name, "seed*", "train_log.txt")))
        logs = logs or [p for p in [os.path.join(exp_dir, name, "train_log.txt")] if os.path.isfile(p)]
        found = [f for f in (_last_valid(log) for log in logs) if f is not None]
        if not found:
            lines.append(f"| {name} | not run | | | | | | |")
            continue

        def cell(key):
            values = [float(f[key]) for f in found if key in f]
            if len(values) < len(found):
                return "-"
            if len(values) == 1:
                return f"{values[0]:.3f}"
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
            return f"{mean:.3f} ± {std:.3f}"

        for f in found:
            f.setdefault("ssl_loss", f["loss"])
        steps = sorted({f["step"] for f in found})
        cells = [str(len(found)), "/".join(steps), cell("accuracy"), cell("ssl_loss")]
        cells += [cell(k) for k in ("lang_triplet", "lang_active", "lang_neg_differs_from_lasr")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: the tables ``benchmarks/gpu.sh`` writes, in its order
GPU_TABLES = (("pretrain_eager.md", "Pretraining step, eager"), ("pretrain_compiled.md", "Pretraining step, compiled"),
              ("masr_overhead.md", "MASR's overhead at the paper size"),
              ("triplet_mining.md", "Batch-hard triplet mining"),
              ("audio_shards.md", "On-the-fly input from audio shards (synthetic audio)"))


def gpu_tables(folder):
    """The tables of ``bash benchmarks/gpu.sh`` (``benchmarks/results/gpu/``), or a line saying that
    they have not been measured."""
    found = [(name, title) for name, title in GPU_TABLES if os.path.isfile(os.path.join(folder, name))]
    if not found:
        return ("Not measured yet: no GPU was available to the sessions that wrote these benchmarks. "
                "Run `bash benchmarks/gpu.sh` on one (about 9 minutes).\n")
    parts = []
    for name, title in found:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            parts.append(f"#### {title}\n\n{f.read()}")
    return "\n".join(parts)


def fill(path, blocks):
    """Rewrite ``path`` with each ``name -> content`` block replaced (atomically)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for name, content in blocks.items():
        text = replace_block(text, name, content)
    with atomic_open(path) as f:
        f.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fill README tables from recipe and benchmark outputs.")
    parser.add_argument("--data-stats", default=os.path.join(ROOT, "egs/mini/exp/data_stats.tsv"))
    parser.add_argument("--benchmark", default=os.path.join(ROOT, "benchmarks/results/data_pipeline.md"))
    parser.add_argument("--train-log", default=os.path.join(ROOT, "egs/mini/exp/pretrain_bestrq/train_log.txt"))
    parser.add_argument("--results", default=os.path.join(ROOT, "egs/mini/exp/RESULTS.md"))
    args = parser.parse_args(argv)
    rows = read_data_stats(args.data_stats)
    with open(args.benchmark, encoding="utf-8") as f:
        bench = f.read()
    fill(os.path.join(ROOT, "README.md"), {"data_stats": split_table(rows), "data_pipeline": bench,
                                           "pretrain_curve": learning_curve(args.train_log),
                                           "masr_variants": variants_table(os.path.join(ROOT, "egs/mini/exp"), VARIANTS),
                                           "results": results_tables(args.results)})
    mini_blocks = {"data_stats": split_table(rows), "languages": language_table(rows)}
    long_results = os.path.join(ROOT, "egs/mini/exp_long/RESULTS.md")
    if os.path.isfile(long_results):  # ./run.sh --profile long
        mini_blocks["long_results"] = results_tables(long_results)
        mini_blocks["long_variants"] = variants_table(os.path.join(ROOT, "egs/mini/exp_long"), VARIANTS[:3])
    ablation = os.path.join(ROOT, "egs/mini/exp_ablation/RESULTS.md")
    if os.path.isfile(ablation):  # ./run.sh --config conf/ablation.conf --stage 4
        mini_blocks["ablation_results"] = results_tables(ablation, last="## Table 2")
    fill(os.path.join(ROOT, "egs/mini/README.md"), mini_blocks)
    results = os.path.join(ROOT, "benchmarks/results")
    blocks = {"data_pipeline": bench, "gpu": gpu_tables(os.path.join(results, "gpu"))}
    for name in ("pretrain_step_cpu_eager", "pretrain_step_cpu_compiled", "input_pipeline", "triplet_mining",
                 "feature_reading", "audio_shards"):
        with open(os.path.join(results, f"{name}.md"), encoding="utf-8") as f:
            blocks[name] = f.read()
    fill(os.path.join(ROOT, "benchmarks/README.md"), blocks)
    fill(os.path.join(ROOT, "egs/mix/README.md"), {"audio_shards": blocks["audio_shards"]})
    noss = os.path.join(ROOT, "egs/noss/exp/RESULTS.md")
    if os.path.isfile(noss):
        fill(os.path.join(ROOT, "egs/noss/README.md"), {"noss_results": results_tables(noss, first="## Table 2", last="## Table 3")})
    print("filled README.md, egs/mini/README.md, benchmarks/README.md, egs/mix/README.md" + (", egs/noss/README.md" if os.path.isfile(noss) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
