"""The report stage of every recipe: ``EXP/RESULTS.md`` and its figures, from the stages' results.

Usage (from a recipe folder, e.g. ``egs/mini``)::

    python -m masr.report.results --exp exp --config conf/report.yaml [--out exp/RESULTS.md]

Inputs (written by the downstream stages; any stage may be missing):

- LangID: ``EXP/langid/<model>/seed<S>/results.json`` (``"task": "langid"``): overall / overlapped
  (O, languages seen in pretraining) / non-overlapped (NO) test accuracy, macro-F1, EER and how it
  was pooled, per-language accuracy, confusion matrix, the checkpoint selected on dev.
- ASR: ``EXP/asr/<model>/seed<S>/results.json`` (``"task": "asr"``): per-language and average WER /
  CER on test.
- Probes: ``EXP/probe/<model>/results.json`` (``"task": "probe"``; ``probe/<model>/seed<S>/`` is
  accepted too): accuracy of a linear probe per task (language, emotion, ...).

The report config (plain YAML) names the rows of each table and the models of each figure::

    title: "egs/mini: embedded 26-language corpus"
    table1: [{name: BEST-RQ, model: continue_bestrq}, {name: +MASR, model: continue_masr}]
    table2: [...]      # probe rows
    table3: [...]      # ASR rows
    fig2: {baseline: continue_bestrq, types: {syntactic: continue_masr, ...}}
    fig3: {baseline: continue_bestrq, model: continue_masr, threshold: 0.25}
    fig4: {baseline: continue_bestrq, model: continue_masr, languages: [bos, hrv, srp]}
    configs: [conf/pretrain_bestrq.yaml, conf/langid.yaml]
    paper: {source: ..., table1: {...}}   # optional: the paper's figures, see masr.report.paper
    compare: {reference: continue_bestrq, pairs: [[continue_masr, continue_lasr]]}  # optional, below

Output: ``RESULTS.md`` (default ``EXP/RESULTS.md``) and PNGs in ``figures/`` next to it. Every
number comes from the results files; the header records date, git commit, machine and configs.

Table rules:

- Accuracies, macro-F1, EER, WER and CER are percentages with one decimal. Several seeds of a model
  give ``mean ± sample std`` (ddof=1) and the seed count; one seed gives the value alone.
- A table never mixes numbers from different data: every run of a table (all rows, all seeds) must
  have the same ``data.test_id`` (probes: the same ``data_id`` per task, and the same task
  description), LangID runs the same ``eer_pooling``; else :class:`ResultsError` names the two
  files. The runs of each figure are checked the same way.
- A configured row whose model has no results reads ``not run``; a stage with no results file at
  all is reported as ``not run: no EXP/<stage>/...`` instead of its table; a figure entry without
  results is skipped with a note, and a figure with nothing to draw is not written (a stale PNG of
  it is removed) and the report says why.
- ``compare:`` adds under each table the differences between its rows (every row minus the
  ``reference`` row, and the extra ``pairs``) with 95% confidence intervals: a paired bootstrap over
  test utterances with seeds paired by number (:mod:`masr.report.compare`,
  :mod:`masr.report.significance`), read from the per-utterance files next to each results file.
- A malformed results file (unreadable JSON, missing or mistyped field, model / seed differing from
  its folder) is an error naming the file.

Modules: :mod:`masr.report.loading` reads and checks the results files (schema:
:mod:`masr.downstream.results_schema`), :mod:`masr.report.tables` makes Tables 1-3,
:mod:`masr.report.captions` the Figures section and the not-run notes; this module is the stage
(the report config, the header, the order of the sections, the file).
"""

import argparse
import datetime
import os
import subprocess
import sys

import yaml

from masr.downstream.results_schema import ResultsError
from masr.report import compare, paper
from masr.report.captions import FIGURE_FILES, fig2, fig3, fig4, model_names, not_run, remove_stale
from masr.report.loading import PATTERNS, collect
from masr.report.tables import table1, table2, table3
from masr.utils.fileio import atomic_open
from masr.utils.machine import describe_machine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG_KEYS = ("title", "table1", "table2", "table3", "fig2", "fig3", "fig4", "configs", "compare", "paper")


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------

def git_commit(path=ROOT):
    """The checked-out commit of the git repository holding ``path``.

    Returns
    -------
    str
        ``"<sha>"``, ``"<sha> (with uncommitted changes)"`` when ``git status --porcelain`` lists
        anything, or ``"unknown"`` when ``path`` is not in a git checkout (or git is missing).

    Example
    -------
    >>> import tempfile
    >>> git_commit(tempfile.mkdtemp())
    'unknown'
    """
    def git(*args):
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha} (with uncommitted changes)" if dirty else sha


def load_report_config(path):
    """Read and check a report config (plain YAML, see the module docstring).

    Raises
    ------
    ResultsError
        Naming ``path``: not a mapping, an unknown key, a table row without ``name`` / ``model``, a
        ``paper:`` block that :func:`masr.report.paper.check_block` rejects (naming its key).
    """
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ResultsError(f"{path}: unreadable report config: {e}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ResultsError(f"{path}: report config should be a mapping")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ResultsError(f"{path}: unknown report config key(s) {unknown}; known: {list(CONFIG_KEYS)}")
    for key in ("table1", "table2", "table3"):
        rows = config.get(key) or []
        if not isinstance(rows, list) or not all(isinstance(r, dict) and {"name", "model"} <= set(r)
                                                 for r in rows):
            raise ResultsError(f"{path}: '{key}' should be a list of {{name: ..., model: ...}}")
    for key in ("fig2", "fig3", "fig4"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise ResultsError(f"{path}: '{key}' should be a mapping")
    if config.get("fig2") and not isinstance(config["fig2"].get("types") or {}, dict):
        raise ResultsError(f"{path}: 'fig2.types' should be a mapping type -> model")
    if not isinstance(config.get("configs") or [], list):
        raise ResultsError(f"{path}: 'configs' should be a list of paths")
    if config.get("compare") is not None:
        try:
            compare.check_compare_config(config["compare"], path)
        except ValueError as e:
            raise ResultsError(str(e)) from None
    try:
        paper.check_block(config, path)
    except paper.PaperError as e:
        raise ResultsError(str(e)) from None
    return config


def _link(path, out_dir):
    """Markdown link to a file, relative to the report's folder; marked when missing."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    return f"[`{path}`]({rel})" + ("" if os.path.isfile(path) else " (missing)")


def render_report(exp, config_path, out, machine=None, commit=None, date=None):
    """Collect the results, draw the figures and return the text of ``RESULTS.md``.

    Arguments
    ---------
    exp : str
        Experiment folder holding ``langid/``, ``asr/``, ``probe/``.
    config_path : str
        The report config.
    out : str
        Where ``RESULTS.md`` will be written; figures go to ``figures/`` next to it.
    machine, commit, date : str, optional
        Override the header fields (default: :func:`describe_machine`, :func:`git_commit`, now).

    Returns
    -------
    str
        The Markdown.
    """
    config = load_report_config(config_path)
    out_dir = os.path.dirname(os.path.abspath(out))
    fig_dir = os.path.join(out_dir, "figures")
    results = {task: collect(exp, task) for task in PATTERNS}
    names = model_names(config)
    n_files = {task: sum(len(rs) for rs in by_model.values()) for task, by_model in results.items()}
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = config.get("title") or os.path.basename(os.path.abspath(exp))
    parts = [
        f"# Results: {title}",
        "Generated by `python -m masr.report.results` from the results files of the recipe's stages; "
        "do not edit by hand.",
        "\n".join([
            f"- date: {date}",
            f"- git commit: {commit or git_commit()}",
            f"- machine (report generated on): {machine or describe_machine()}",
            f"- report config: {_link(config_path, out_dir)}",
            f"- results: {n_files['langid']} LangID, {n_files['asr']} ASR, {n_files['probe']} probe "
            f"results files under `{exp}`",
        ]),
    ]

    sections = [
        ("table1", "Table 1: spoken language identification", "langid", table1),
        ("table2", "Table 2: linear probes", "probe", table2),
        ("table3", "Table 3: speech recognition", "asr", table3),
    ]
    for key, heading, stage, make in sections:
        parts.append(f"## {heading}")
        if not config.get(key):
            parts.append(f"Not configured (no `{key}` in the report config).")
        elif not results[stage]:
            parts.append(not_run(stage, exp) + ".")
        else:
            parts.append(make(config[key], results[stage], config.get("compare")))
        parts[-1] = paper.annotate(parts[-1], key, config)  # the paper's rows, if the config has them

    parts.append("## Figures")
    for key, make in (("fig2", fig2), ("fig3", fig3), ("fig4", fig4)):
        number = key[-1]
        if not config.get(key):
            parts.append(f"Figure {number}: not configured (no `{key}` in the report config).")
        elif not results["langid"]:
            remove_stale(os.path.join(fig_dir, FIGURE_FILES[key]))
            parts.append(f"Figure {number} not drawn: LangID {not_run('langid', exp)}.")
        else:
            parts.append(make(config[key], results["langid"], fig_dir, names))
        parts[-1] = paper.annotate(parts[-1], key, config)

    parts.append("## Configs")
    configs = [_link(config_path, out_dir) + " (this report)"]
    configs += [_link(p, out_dir) for p in config.get("configs") or []]
    parts.append("\n".join(f"- {c}" for c in configs))
    return "\n\n".join(parts) + "\n"


def write_report(exp, config_path, out=None, **kwargs):
    """Render the report (see :func:`render_report`) and write it atomically; returns its path."""
    out = out or os.path.join(exp, "RESULTS.md")
    text = render_report(exp, config_path, out, **kwargs)
    with atomic_open(out) as f:
        f.write(text)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write EXP/RESULTS.md and EXP/figures/ from the "
                                                 "stages' results.json files.")
    parser.add_argument("--exp", required=True, help="experiment folder (holds langid/, asr/, probe/)")
    parser.add_argument("--config", required=True, help="report config (YAML)")
    parser.add_argument("--out", help="output Markdown (default: EXP/RESULTS.md; figures/ goes next to it)")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.exp, args.config, args.out)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
