"""Reading the stages' results for the report: find each stage's ``results.json`` files (``PATTERNS``),
check them against the shared schema (:mod:`masr.downstream.results_schema`) and against the folder
they lie in, group them by model, and refuse to mix runs on different data (:func:`check_same`).

The runs are plain dicts (the schema's ``to_json()`` of each checked file) with ``"_path"`` (the
file) added, and ``"seed"`` for probe files in a ``seed<S>/`` folder: the tables, the figures and
:mod:`masr.report.compare` read them by key.
"""

import glob
import json
import os
import re

from masr.downstream.results_schema import ResultsError, from_json

#: Results files of each stage (relative to EXP); the first pattern is the one reports quote.
PATTERNS = {
    "langid": ("langid/*/seed*/results.json",),
    "asr": ("asr/*/seed*/results.json",),
    "probe": ("probe/*/results.json", "probe/*/seed*/results.json"),
}


def load_results(path, task):
    """Read and check one ``results.json`` of a stage.

    Arguments
    ---------
    path : str
        The file.
    task : str
        ``"langid"``, ``"asr"`` or ``"probe"``.

    Returns
    -------
    dict
        The checked file (:func:`masr.downstream.results_schema.from_json`, as its ``to_json()``),
        with ``"_path"`` added.

    Raises
    ------
    ResultsError
        Naming ``path``: unreadable JSON, missing or mistyped fields, another task, a confusion
        matrix not matching the labels, or a model / seed differing from the folder names.
    """
    try:
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: malformed results file: {e}") from None
    run = from_json(run, path, task).to_json()
    # the folder names the run: <stage>/<model>/[seed<S>/]results.json
    folder = os.path.dirname(os.path.abspath(path))
    seed_dir = re.fullmatch(r"seed(\d+)", os.path.basename(folder))
    model_dir = os.path.basename(os.path.dirname(folder)) if seed_dir else os.path.basename(folder)
    if run["model"] != model_dir:
        raise ResultsError(f"{path}: malformed results file: model '{run['model']}' but folder '{model_dir}'")
    if seed_dir and "seed" in run and run["seed"] != int(seed_dir.group(1)):
        raise ResultsError(f"{path}: malformed results file: seed {run['seed']} but folder "
                           f"'{os.path.basename(folder)}'")
    if seed_dir and "seed" not in run:  # probes have no seed of their own: their run's (folder's)
        run["seed"] = int(seed_dir.group(1))
    run["_path"] = path
    return run


def collect(exp, task):
    """All results of a stage, grouped by model.

    Arguments
    ---------
    exp : str
        The experiment folder.
    task : str
        ``"langid"``, ``"asr"`` or ``"probe"``.

    Returns
    -------
    dict
        Model -> list of runs (see :func:`load_results`) sorted by seed; empty when the stage has
        no results file.
    """
    paths = sorted({p for pattern in PATTERNS[task] for p in glob.glob(os.path.join(exp, pattern))})
    by_model = {}
    for path in paths:
        run = load_results(path, task)
        by_model.setdefault(run["model"], []).append(run)
    for runs in by_model.values():
        runs.sort(key=lambda r: (r.get("seed") is not None, r.get("seed") or 0))
    return by_model


def check_same(runs, key, what, context):
    """Raise ResultsError unless ``key(run)`` is the same for every run.

    Arguments
    ---------
    runs : list of dict
        Runs with their ``"_path"``.
    key : callable
        Run -> the value that must agree (e.g. the test data id).
    what : str
        Name of that value in the message.
    context : str
        What would be mixed (e.g. ``"Table 1"``).

    Example
    -------
    >>> a = {"_path": "a/results.json", "data": {"test_id": "x"}}
    >>> b = {"_path": "b/results.json", "data": {"test_id": "y"}}
    >>> check_same([a, a], lambda r: r["data"]["test_id"], "data.test_id", "Table 1")
    >>> check_same([a, b], lambda r: r["data"]["test_id"], "data.test_id", "Table 1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.downstream.results_schema.ResultsError: Table 1 would mix ...: a/results.json has data.test_id 'x' but b/results.json has 'y'
    """
    first = None
    for run in runs:
        value = key(run)
        if first is None:
            first = (run, value)
        elif value != first[1]:
            raise ResultsError(f"{context} would mix numbers from different data: {first[0]['_path']} "
                               f"has {what} {first[1]!r} but {run['_path']} has {value!r}")


def run_test_id(run):
    """The digest of a run's test data (``data.test_id``)."""
    return run["data"]["test_id"]

