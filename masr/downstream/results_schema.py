"""The ``results.json`` of each downstream stage as dataclasses: one schema for the stages that
write the files and the report (``masr.report``) that reads them. :class:`LangIDResults`
(``langid/<model>/seed<S>/``, with its optional :class:`LangIDCandidate` blocks ``linear_probe`` /
``fine_tuned``), :class:`ASRResults` (``asr/<model>/seed<S>/``), :class:`ProbeResults`
(``probe/<model>/[seed<S>/]``, one :class:`ProbeTask` per task).

``to_json()`` gives the dict a stage writes (same keys, order and values); ``from_json(obj, path)``
checks a parsed file and raises :class:`ResultsError` naming ``path``. Fields the report needs are
*required*: checked for presence and type in declaration order (which gives the first error of a
file with several). The others are *optional*: written by today's stages, maybe absent from older
files, never checked; an absent one holds :data:`ABSENT` (falsy, left out by ``to_json``), as
``null`` is a value some take (``layer``, ``overlapped.macro_f1``). Keys no field names are kept in
``extra`` and written last. ``selected`` stays a mapping: its keys differ between stages.

Where a file lies is not its content: the checks that its model / seed match its folder names are
in :mod:`masr.report.loading`, which reads the files. Per-utterance files are separate.
"""

import json
from dataclasses import dataclass, field, fields

NUM = "number"          # int or float (not bool)
OPT_NUM = "number or null"
INT = "integer"
STR = "string"
LIST = "list"
DICT = "mapping"
BOOL = "boolean"


class ResultsError(ValueError):
    """A results file or report config that cannot be used; the message names the file."""


class _Absent:
    """The value of an optional field a file does not have (falsy; ``to_json`` leaves it out)."""

    def __bool__(self):
        return False

    def __repr__(self):
        return "ABSENT"


#: An optional field the file does not have.
ABSENT = _Absent()


def _is_kind(value, kind):
    """Whether ``value`` is of ``kind`` (:data:`NUM`, :data:`OPT_NUM`, :data:`INT`, ...).

    Example
    -------
    >>> _is_kind(1, NUM), _is_kind(True, NUM), _is_kind(None, OPT_NUM), _is_kind(1.0, INT)
    (True, False, True, False)
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        NUM: number, OPT_NUM: number or value is None,
        INT: isinstance(value, int) and not isinstance(value, bool),
        STR: isinstance(value, str), LIST: isinstance(value, list), DICT: isinstance(value, dict),
        BOOL: isinstance(value, bool),
    }[kind]


def required(kind, **kwargs):
    """A field the report needs, checked to be of ``kind``."""
    return field(metadata={"kind": kind}, **kwargs)


def block(record):
    """A required mapping checked as a ``record`` (a dataclass of this module)."""
    return field(metadata={"record": record})


def entries(record):
    """A required mapping name -> ``record`` (per language, per task); checked by ``from_json``."""
    return field(default_factory=dict, metadata={"kind": DICT, "entries": record})


def optional(record=None):
    """A field the report does not need (never checked); :data:`ABSENT` when the file lacks it."""
    return field(default=ABSENT, metadata={"record": record} if record else {})


def _to_json(value):
    """Records as dicts, recursively."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _fail(path, message):
    """The error of a malformed file."""
    raise ResultsError(f"{path}: malformed results file: {message}")


def _check(obj, record, path, where=""):
    """Raise ResultsError naming ``path`` when ``obj`` lacks a required field of ``record`` or
    mistypes it (nested blocks recursively)."""
    for f in fields(record):
        kind, nested = f.metadata.get("kind"), f.metadata.get("record")
        if kind is None and (nested is None or f.default is ABSENT):
            continue  # optional
        name = f"{where}.{f.name}" if where else f.name
        if f.name not in obj:
            _fail(path, f"missing field '{name}'")
        value = obj[f.name]
        if kind is None:
            if not isinstance(value, dict):
                _fail(path, f"'{name}' should be a mapping")
            _check(value, nested, path, name)
        elif not _is_kind(value, kind):
            _fail(path, f"'{name}' should be a {kind}, got {json.dumps(value)[:40]}")


def _check_entries(mapping, record, path, where):
    """Each value of ``mapping`` is a mapping with the required fields of ``record``."""
    for name, entry in mapping.items():
        if not isinstance(entry, dict):
            _fail(path, f"'{where}.{name}' should be a mapping")
        _check(entry, record, path, f"{where}.{name}")


def _build(record, obj):
    """The ``record`` of a checked mapping: nested blocks and entries as records, unknown keys in
    ``extra``."""
    kwargs, known = {}, set()
    for f in fields(record):
        if f.name == "extra":
            continue
        known.add(f.name)
        if f.name not in obj:
            continue
        value = obj[f.name]
        if f.metadata.get("record"):
            value = _build(f.metadata["record"], value)
        elif f.metadata.get("entries"):
            value = {k: _build(f.metadata["entries"], v) for k, v in value.items()}
        kwargs[f.name] = value
    return record(**kwargs, extra={k: v for k, v in obj.items() if k not in known})


def _start(cls, obj, path):
    """The checks every results file starts with: a mapping, the required fields, the task."""
    if not isinstance(obj, dict):
        _fail(path, "not a JSON object")
    _check(obj, cls, path)
    task = cls.__dataclass_fields__["task"].default
    if obj["task"] != task:
        _fail(path, f"task '{obj['task']}', expected '{task}'")


@dataclass(kw_only=True)
class Record:
    """Base of the records: ``to_json`` and the keys no field names (``extra``)."""

    extra: dict = field(default_factory=dict, repr=False)

    def to_json(self):
        """The dict written to ``results.json``: fields in order (absent ones left out), ``extra``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not ABSENT:
                out[f.name] = _to_json(value)
        out.update(self.extra)
        return out


@dataclass(kw_only=True)
class ResultsData(Record):
    """``data``: the dump folders of the run and the digest of the test data (a table never mixes
    runs with different ``test_id``)."""

    train: str = optional()
    dev: str = optional()
    test: str = optional()
    test_id: str = required(STR)


@dataclass(kw_only=True)
class LangIDMetrics(Record):
    """``overall``: test accuracy, macro-F1 and EER (fractions; null when undefined) over all
    languages, with the class and utterance counts."""

    accuracy: float = required(OPT_NUM)
    macro_f1: float = required(OPT_NUM)
    eer: float = required(OPT_NUM)
    num_classes: int = required(INT)
    num_utts: int = required(INT)


@dataclass(kw_only=True)
class LangIDGroup(Record):
    """``overlapped`` / ``non_overlapped``: the test utterances of the languages seen (O) or not
    seen (NO) in pretraining; accuracy and macro-F1 are null without utterances."""

    accuracy: float = required(OPT_NUM)
    macro_f1: float = optional()
    num_classes: int = required(INT)
    num_utts: int = required(INT)


@dataclass(kw_only=True)
class LangIDCandidate(Record):
    """``linear_probe`` / ``fine_tuned``: one candidate of dev selection, evaluated on test.

    Example
    -------
    >>> evaluation = {"overall": {"accuracy": 0.5, "macro_f1": 0.4, "eer": 0.2, "num_classes": 2,
    ...                           "num_utts": 4},
    ...               "overlapped": {"accuracy": 1.0, "macro_f1": 1.0, "num_classes": 1, "num_utts": 2},
    ...               "non_overlapped": {"accuracy": 0.0, "macro_f1": 0.0, "num_classes": 1, "num_utts": 2}}
    >>> c = LangIDCandidate.from_evaluation(10, 0.75, evaluation)
    >>> c.overall.accuracy, list(c.to_json())
    (0.5, ['step', 'dev_accuracy', 'overall', 'overlapped', 'non_overlapped'])
    """

    step: int = required(INT)
    dev_accuracy: float = required(NUM)
    overall: LangIDMetrics = block(LangIDMetrics)
    overlapped: LangIDGroup = block(LangIDGroup)
    non_overlapped: LangIDGroup = block(LangIDGroup)

    @classmethod
    def from_evaluation(cls, step, dev_accuracy, evaluation):
        """The candidate of checkpoint ``step`` from the test results of
        :func:`masr.downstream.langid.evaluate` (its ``overall`` / ``overlapped`` /
        ``non_overlapped``)."""
        return cls(step=step, dev_accuracy=dev_accuracy, overall=LangIDMetrics(**evaluation["overall"]),
                   overlapped=LangIDGroup(**evaluation["overlapped"]),
                   non_overlapped=LangIDGroup(**evaluation["non_overlapped"]))


@dataclass(kw_only=True)
class LangIDLanguage(Record):
    """``per_language.<lang>``: test accuracy of one language and whether pretraining saw it."""

    accuracy: float = required(OPT_NUM)
    num_utts: int = required(INT)
    overlapped: bool = required(BOOL)


LANGID_KINDS = ("linear_probe", "fine_tuned")


@dataclass(kw_only=True)
class LangIDResults(Record):
    """The ``results.json`` of a LangID run: the model dev selection kept, on test.

    Arguments
    ---------
    model, seed, data : str, int, ResultsData
        The run (``run_name`` of the pretrained model, seed), its dump folders and test digest.
    selected : dict
        The kept checkpoint: ``step``, ``dev_accuracy``, ``kind`` (``linear_probe`` / ``fine_tuned``).
    linear_probe, fine_tuned : LangIDCandidate, optional
        Both candidates of dev selection on their own (runs with ``head_init: linear_probe``).
    labels, pretrain_languages, overall, overlapped, non_overlapped, eer_pooling, per_language, confusion
        The classes (rows / columns of ``confusion``), the languages seen in pretraining, the kept
        model's test results (``eer_pooling``: ``pooled`` or ``average``).

    Example
    -------
    >>> obj = {"task": "langid", "model": "m", "seed": 1, "data": {"test_id": "t"},
    ...        "selected": {"step": 3}, "labels": ["a", "b"], "pretrain_languages": ["a"],
    ...        "overall": {"accuracy": 0.5, "macro_f1": 0.5, "eer": 0.5, "num_classes": 2, "num_utts": 2},
    ...        "overlapped": {"accuracy": 1.0, "num_classes": 1, "num_utts": 1},
    ...        "non_overlapped": {"accuracy": 0.0, "num_classes": 1, "num_utts": 1},
    ...        "eer_pooling": "pooled",
    ...        "per_language": {"a": {"accuracy": 1.0, "num_utts": 1, "overlapped": True},
    ...                         "b": {"accuracy": 0.0, "num_utts": 1, "overlapped": False}},
    ...        "confusion": [[1, 0], [1, 0]]}
    >>> run = LangIDResults.from_json(obj, "r.json")
    >>> run.per_language["a"].overlapped, run.linear_probe, run.to_json() == obj
    (True, ABSENT, True)
    >>> LangIDResults.from_json({**obj, "confusion": [[1]]}, "r.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.downstream.results_schema.ResultsError: r.json: malformed results file: 'confusion' should be a 2 x 2 matrix ...
    """

    task: str = required(STR, default="langid")
    model: str = required(STR)
    seed: int = required(INT)
    data: ResultsData = block(ResultsData)
    selected: dict = required(DICT)
    linear_probe: LangIDCandidate = optional(LangIDCandidate)
    fine_tuned: LangIDCandidate = optional(LangIDCandidate)
    labels: list = required(LIST)
    pretrain_languages: list = required(LIST)
    overall: LangIDMetrics = block(LangIDMetrics)
    overlapped: LangIDGroup = block(LangIDGroup)
    non_overlapped: LangIDGroup = block(LangIDGroup)
    eer_pooling: str = required(STR)
    per_language: dict = entries(LangIDLanguage)
    confusion: list = required(LIST)

    @classmethod
    def from_evaluation(cls, *, model, seed, data, selected, candidates, evaluation):
        """A run's results from the test results of :func:`masr.downstream.langid.evaluate` of the
        kept model (``evaluation``) and the evaluated candidates (kind -> :class:`LangIDCandidate`)."""
        return cls(model=model, seed=seed, data=data, selected=selected, **candidates,
                   labels=evaluation["labels"], pretrain_languages=evaluation["pretrain_languages"],
                   overall=LangIDMetrics(**evaluation["overall"]),
                   overlapped=LangIDGroup(**evaluation["overlapped"]),
                   non_overlapped=LangIDGroup(**evaluation["non_overlapped"]),
                   eer_pooling=evaluation["eer_pooling"],
                   per_language={lang: LangIDLanguage(**e) for lang, e in evaluation["per_language"].items()},
                   confusion=evaluation["confusion"])

    @classmethod
    def from_json(cls, obj, path):
        """Check a parsed LangID ``results.json`` (``obj``; ``path`` names it in the messages) and
        return its :class:`LangIDResults`.

        Raises
        ------
        ResultsError
            Not a mapping, a missing or mistyped field, another task, a confusion matrix not labels²."""
        _start(cls, obj, path)
        for kind in LANGID_KINDS:
            if kind in obj:
                if not isinstance(obj[kind], dict):
                    _fail(path, f"'{kind}' should be a mapping")
                _check(obj[kind], LangIDCandidate, path, kind)
        _check_entries(obj["per_language"], LangIDLanguage, path, "per_language")
        n = len(obj["labels"])
        m = obj["confusion"]
        if len(m) != n or any(not isinstance(r, list) or len(r) != n for r in m) or \
                any(not _is_kind(v, INT) for r in m for v in r):
            _fail(path, f"'confusion' should be a {n} x {n} matrix of integers (one row / column per label)")
        return _build(cls, obj)


@dataclass(kw_only=True)
class ASRScores(Record):
    """``average`` (unweighted mean over languages) / ``overall`` (corpus-level) WER and CER."""

    wer: float = required(OPT_NUM)
    cer: float = required(OPT_NUM)


@dataclass(kw_only=True)
class ASRLanguage(Record):
    """``per_language.<lang>``: test WER / CER of one language, its word and utterance counts."""

    wer: float = required(OPT_NUM)
    cer: float = required(OPT_NUM)
    num_words: int = optional()
    num_utts: int = optional()


@dataclass(kw_only=True)
class ASRResults(Record):
    """The ``results.json`` of an ASR run: the checkpoint selected on dev, on test.

    Arguments
    ---------
    model, seed, data : str, int, ResultsData
        The run, its dump folders and test digest.
    vocab_size, decoding, languages, lm : optional
        Tokenizer size, ``greedy`` / ``beam<k>``, the test languages, beam search's LM (if any).
    selected : dict
        ``step``, ``dev_<metric>``, ``metric`` (``wer`` or ``cer``).
    per_language, average, overall
        Test WER / CER (``per_language``: ``{lang: ASRLanguage}``).

    Example
    -------
    >>> scores = {"per_language": {"l1": {"wer": 0.5, "cer": 0.2, "num_words": 4, "num_utts": 1}},
    ...           "average": {"wer": 0.5, "cer": 0.2}, "overall": {"wer": 0.5, "cer": 0.2}}
    >>> run = ASRResults.from_scores(model="m", seed=1, data=ResultsData(test_id="t"), vocab_size=20,
    ...                              decoding="greedy", languages=["l1"],
    ...                              selected={"step": 2, "dev_wer": 0.4, "metric": "wer"}, scores=scores)
    >>> list(run.to_json())
    ['task', 'model', 'seed', 'data', 'vocab_size', 'decoding', 'languages', 'selected', 'per_language', 'average', 'overall']
    >>> ASRResults.from_json(run.to_json(), "r.json") == run
    True
    """

    task: str = required(STR, default="asr")
    model: str = required(STR)
    seed: int = required(INT)
    data: ResultsData = block(ResultsData)
    vocab_size: int = optional()
    decoding: str = optional()
    languages: list = optional()
    selected: dict = required(DICT)
    per_language: dict = entries(ASRLanguage)
    average: ASRScores = block(ASRScores)
    overall: ASRScores = block(ASRScores)
    lm: str = optional()

    @classmethod
    def from_scores(cls, *, model, seed, data, vocab_size, decoding, languages, selected, scores, lm=ABSENT):
        """A run's results from :func:`masr.downstream.asr.score` (``scores``) and the run info."""
        return cls(model=model, seed=seed, data=data, vocab_size=vocab_size, decoding=decoding,
                   languages=languages, selected=selected,
                   per_language={lang: ASRLanguage(**e) for lang, e in scores["per_language"].items()},
                   average=ASRScores(**scores["average"]), overall=ASRScores(**scores["overall"]), lm=lm)

    @classmethod
    def from_json(cls, obj, path):
        """Check a parsed ASR ``results.json`` (as :meth:`LangIDResults.from_json`); its record."""
        _start(cls, obj, path)
        _check_entries(obj["per_language"], ASRLanguage, path, "per_language")
        return _build(cls, obj)


@dataclass(kw_only=True)
class ProbeTask(Record):
    """``tasks.<name>``: a linear probe's test accuracy (mean over folds) and what it was on
    (``data_id``: digest of the (dataset, utt, label) triples of every fold)."""

    dataset: str = required(STR)
    label: str = optional()
    protocol: str = required(STR)
    accuracy: float = required(OPT_NUM)
    fold_accuracies: list = required(LIST)
    num_classes: int = required(INT)
    num_train: int = required(INT)
    num_test: int = required(INT)
    speaker_independent: bool = optional()
    data_id: str = required(STR)


@dataclass(kw_only=True)
class ProbeResults(Record):
    """The ``results.json`` of a probe run: one :class:`ProbeTask` per task.

    Arguments
    ---------
    model, layer, checkpoint : str, optional, optional
        The run, the encoder block probed (null: the last) and the checkpoint embedded.
    tasks : dict
        Task name -> :class:`ProbeTask`, in config order.

    Example
    -------
    >>> run = ProbeResults(model="m", layer=None, checkpoint="ckpt")
    >>> run.tasks["gender"] = ProbeTask(dataset="train->test", protocol="split", accuracy=1.0,
    ...                                 fold_accuracies=[1.0], num_classes=2, num_train=8, num_test=4,
    ...                                 data_id="d")
    >>> run.to_json()["tasks"]["gender"]["accuracy"], run.to_json()["layer"]
    (1.0, None)
    >>> ProbeResults.from_json({"task": "probe", "model": "m", "tasks": {"x": []}}, "r.json")
    Traceback (most recent call last):
    ...
    masr.downstream.results_schema.ResultsError: r.json: malformed results file: 'tasks.x' should be a mapping
    """

    task: str = required(STR, default="probe")
    model: str = required(STR)
    layer: int = optional()
    checkpoint: str = optional()
    tasks: dict = entries(ProbeTask)

    @classmethod
    def from_json(cls, obj, path):
        """Check a parsed probe ``results.json`` (as :meth:`LangIDResults.from_json`); its record."""
        _start(cls, obj, path)
        _check_entries(obj["tasks"], ProbeTask, path, "tasks")
        return _build(cls, obj)


RESULTS = {"langid": LangIDResults, "asr": ASRResults, "probe": ProbeResults}  # record of each stage


def from_json(obj, path, task):
    """Check a parsed ``results.json`` of stage ``task`` and return its record.

    Arguments
    ---------
    obj, path : object, str
        The parsed JSON and its file (named in the messages).
    task : str
        ``"langid"``, ``"asr"`` or ``"probe"``.

    Returns
    -------
    LangIDResults, ASRResults or ProbeResults

    Example
    -------
    >>> from_json([], "r.json", "asr")
    Traceback (most recent call last):
    ...
    masr.downstream.results_schema.ResultsError: r.json: malformed results file: not a JSON object
    >>> from_json({"task": "asr", "model": "m", "tasks": {}}, "r.json", "probe")
    Traceback (most recent call last):
    ...
    masr.downstream.results_schema.ResultsError: r.json: malformed results file: task 'asr', expected 'probe'
    """
    return RESULTS[task].from_json(obj, path)
