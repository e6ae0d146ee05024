"""Validate a Kaldi-style data directory, like Kaldi's ``utils/validate_data_dir.sh``.

All problems are collected (up to ``max_errors``) and reported together, one per line, each
naming the file, the line number where there is one, and the utterance (or speaker) id. A
file that cannot be parsed is reported once and the checks that need its content are skipped.

Checks, in the order they run:

1. Required files: ``wav.scp`` (or ``feats.scp`` in a feature-only dir), ``utt2spk``, ``spk2utt``,
   and those a recipe's later stages read (``--require utt2lang --require text``: LangID needs
   ``utt2lang``, ASR ``text``), so that a missing one stops stage 1, not stage 5.
2. Every ``<key> <value>`` file (``wav.scp``, ``feats.scp``, ``utt2spk``, ``spk2utt``, ``text``,
   every ``utt2*``) parses: no UTF-8 byte-order mark, valid UTF-8, no carriage return, no empty
   line, no empty value, no duplicate key (see :func:`masr.data.datadir.read_kaldi_map`).
3. ``wav.scp`` (or ``feats.scp`` in a feature-only dir) lists at least one utterance.
4. Each of those files is sorted by key in byte order (``LC_ALL=C sort``).
5. Ids: utterance and speaker ids contain no ``/``; a speaker id is a single word.
6. The same utterances appear in ``wav.scp``, ``feats.scp``, ``utt2spk``, ``text`` and every
   ``utt2*`` file.
7. ``spk2utt`` is exactly the inverse of ``utt2spk``.
8. Speaker order agrees with utterance order (as Kaldi requires: sorting ``utt2spk`` by speaker
   must not reorder utterances).
9. Audio (``check_audio``): a ``wav.scp`` path exists, is readable and holds samples, and a file
   coded as floating point (soundfile subtype ``FLOAT``, ``DOUBLE``, ...) holds no NaN or inf
   sample (it is decoded block by block; integer PCM cannot hold them and is not decoded); for a
   pipe (``cmd ... |``) the command is found on ``PATH`` (it is not run).
10. ``feats.scp``: each entry is ``<ark path>:<byte offset>`` (as the features stage writes it;
    commands ``... |`` and slices ``[...]`` are refused), the ark file exists and the offset lies
    within it.
11. ``utt2dur``: a positive number of seconds that, where the audio was read, agrees with the
    audio length within 0.05 s. The file is optional, as in Kaldi.
12. ``utt2num_frames``: a positive integer.
13. ``utt2lang`` (``check_lang``): an ISO 639-3 code known to URIEL (``lang2vec``).
14. ``utt2geo``: ``lat lon``, two numbers with lat in [-90, 90] and lon in [-180, 180].
15. ``text``: non-empty (already refused by parsing).
16. ``utt2gender``: ``m`` or ``f``.

Paths in ``wav.scp`` are taken as they are (relative ones relative to the current directory,
as in Kaldi).

Command line::

    python -m masr.data.validate [--no-audio] [--no-lang] [--require FILE ...] DATA_DIR

Why this module is long: one numbered check per function, in the order they run, as Kaldi's
``validate_data_dir.sh``; the checks share the problem collector and the parsed files, so they stay
in one module.
"""

import argparse
import functools
import math
import os
import shutil
import sys
from dataclasses import dataclass, field

from masr.audio import AudioError, audio_info, check_finite
from masr.data.datadir import DataDir, DataDirError, parse_ark_entry, read_kaldi_map, utt2spk_to_spk2utt

#: Largest accepted difference between ``utt2dur`` and the audio length, in seconds.
DURATION_TOLERANCE = 0.05

#: What reads the files a recipe may ``--require`` (for the message when one is missing).
REQUIRED_BY = {"utt2lang": "LangID (stage 5) and MASR's language stream", "text": "ASR (stage 6)",
               "utt2geo": "MASR's location stream"}

#: Accepted ``utt2gender`` values.
GENDERS = ("f", "m")

#: Utterance ids named in one "missing/extra utterances" message.
_EXAMPLES = 3


@dataclass
class DataDirReport:
    """What a valid data directory holds.

    Arguments
    ---------
    path : str
        The data directory.
    num_utterances : int
        Utterances in ``wav.scp`` (or ``feats.scp``).
    num_speakers : int
        Distinct speakers in ``utt2spk``.
    total_duration : float or None
        Sum of ``utt2dur`` in seconds; ``None`` without ``utt2dur``.
    streams : list of str
        Metadata streams present (:meth:`DataDir.metadata_streams`).
    """

    path: str
    num_utterances: int
    num_speakers: int
    total_duration: float = None
    streams: list = field(default_factory=list)

    def summary(self):
        """One line: ``<dir>: OK — N utterances, S speakers, H h, streams: ...``."""
        hours = "duration unknown" if self.total_duration is None else f"{self.total_duration / 3600:.2f} h"
        streams = " ".join(self.streams) if self.streams else "none"
        return (
            f"{self.path}: OK — {self.num_utterances} utterances, {self.num_speakers} speakers, "
            f"{hours}, streams: {streams}"
        )


@functools.lru_cache(maxsize=None)
def uriel_languages():
    """The ISO 639-3 codes known to URIEL (``lang2vec``), loaded once (takes ~2 s).

    Returns
    -------
    frozenset of str

    Example
    -------
    >>> "hrv" in uriel_languages(), "hr" in uriel_languages()
    (True, False)
    """
    import lang2vec.lang2vec as l2v

    return frozenset(l2v.LANGUAGES)


class _Problems:
    """Collects problem messages, keeping the first ``max_errors`` and counting the rest."""

    def __init__(self, max_errors):
        self.max_errors = max_errors
        self.shown = []
        self.total = 0

    def add(self, message):
        self.total += 1
        if len(self.shown) < self.max_errors:
            self.shown.append(message)

    def error(self, path):
        lines = [f"{path}: {self.total} problem(s):"] + [f"  {m}" for m in self.shown]
        if self.total > len(self.shown):
            lines.append(f"  ... and {self.total - len(self.shown)} more problem(s) not shown")
        err = DataDirError("\n".join(lines))
        err.problems = list(self.shown)
        return err


class _Context:
    """The directory, the maps parsed so far, and the problems found."""

    def __init__(self, dd, problems, check_audio, check_lang, require=()):
        self.dd = dd
        self.require = tuple(require)
        self.problems = problems
        self.check_audio = check_audio
        self.check_lang = check_lang
        self.maps = {}  # file name -> {key: value}, only for files that parsed
        self.audio_durations = {}  # utt -> seconds, for audio files actually read
        self._lines = {}

    @property
    def index(self):
        """The file listing the utterances: ``wav.scp``, or ``feats.scp`` without it."""
        return "wav.scp" if self.dd.has("wav.scp") or not self.dd.has("feats.scp") else "feats.scp"

    def line(self, name, key):
        """Line number of ``key`` in file ``name`` (every line of a parsed file holds one key)."""
        if name not in self._lines:
            self._lines[name] = {k: i for i, k in enumerate(self.maps[name], start=1)}
        return self._lines[name][key]

    def at(self, name, key, what="utterance"):
        """``<file>:<line>: utterance '<key>'`` -- the start of a message about one line."""
        return f"{self.dd.file(name)}:{self.line(name, key)}: {what} '{key}'"

    def add(self, message):
        self.problems.add(message)


def _keyed_files(dd):
    """Names of the ``<key> <value>`` files present, in checking order."""
    names = [n for n in ("wav.scp", "feats.scp", "utt2spk", "spk2utt", "text") if dd.has(n)]
    extra = sorted(
        n for n in os.listdir(dd.path) if n.startswith("utt2") and len(n) > 4 and "." not in n and dd.has(n)
    )
    return names + [n for n in extra if n not in names]


def _utt_files(ctx):
    """Parsed files keyed by utterance id (all but ``spk2utt``)."""
    return [n for n in ctx.maps if n != "spk2utt"]


# ----------------------------------------------------------------------------- checks


def check_required_files(ctx):
    """Check 1: ``wav.scp`` (or ``feats.scp``), ``utt2spk`` and ``spk2utt`` exist."""
    dd = ctx.dd
    if not dd.has("wav.scp") and not dd.has("feats.scp"):
        ctx.add(f"{dd.file('wav.scp')}: file not found (a data directory needs wav.scp, or feats.scp)")
    for name in ("utt2spk", "spk2utt"):
        if not dd.has(name):
            hint = " (derive it from utt2spk with utt2spk_to_spk2utt)" if name == "spk2utt" else ""
            ctx.add(f"{dd.file(name)}: file not found{hint}")
    for name in ctx.require:
        if not dd.has(name):
            ctx.add(f"{dd.file(name)}: file not found (required by the recipe's later stages: "
                    f"{REQUIRED_BY.get(name, 'named by --require')})")


def check_parse(ctx):
    """Check 2: every ``<key> <value>`` file parses; parsed ones go to ``ctx.maps``."""
    for name in _keyed_files(ctx.dd):
        try:
            ctx.maps[name] = read_kaldi_map(ctx.dd.file(name))
        except DataDirError as e:
            ctx.add(f"{e} (further checks of this file skipped)")


def check_not_empty(ctx):
    """Check 3: the file listing the utterances (``wav.scp``, or ``feats.scp``) lists at least one."""
    index = ctx.index
    if index in ctx.maps and not ctx.maps[index]:
        ctx.add(f"{ctx.dd.file(index)}: no utterances (the file is empty); a data directory needs at least one")


def check_sorted(ctx):
    """Check 4: each parsed file is sorted by key in byte order; reports the first line out of order."""
    for name, mapping in ctx.maps.items():
        what = "speaker" if name == "spk2utt" else "utterance"
        prev = None
        for key in mapping:
            if prev is not None and key < prev:
                ctx.add(
                    f"{ctx.at(name, key, what)}: not sorted: sorts before '{prev}' on line "
                    f"{ctx.line(name, prev)} (sort the file with LC_ALL=C sort)"
                )
                break
            prev = key


def check_ids(ctx):
    """Check 5: utterance and speaker ids hold no '/', and a speaker id is one word."""
    index = ctx.index if ctx.index in ctx.maps else "utt2spk"
    for utt in ctx.maps.get(index, {}):
        if "/" in utt:
            ctx.add(f"{ctx.at(index, utt)}: utterance id contains '/'")
    seen = set()
    for utt, spk in ctx.maps.get("utt2spk", {}).items():
        if len(spk.split()) != 1:
            ctx.add(f"{ctx.at('utt2spk', utt)}: speaker id '{spk}' contains whitespace")
        elif "/" in spk and spk not in seen:
            ctx.add(f"{ctx.at('utt2spk', utt)}: speaker id '{spk}' contains '/'")
        seen.add(spk)


def _examples(ctx, name, utts, label="line"):
    shown = ", ".join(f"'{u}' ({label} {ctx.line(name, u)})" for u in sorted(utts)[:_EXAMPLES])
    more = f" and {len(utts) - _EXAMPLES} more" if len(utts) > _EXAMPLES else ""
    return shown + more


def check_same_utterances(ctx):
    """Check 6: every utterance-keyed file lists exactly the utterances of the index file."""
    index = ctx.index
    if index not in ctx.maps:
        return
    ref = set(ctx.maps[index])
    for name in _utt_files(ctx):
        if name == index:
            continue
        utts = set(ctx.maps[name])
        extra, missing = utts - ref, ref - utts
        if extra:
            ctx.add(
                f"{ctx.dd.file(name)}: {len(extra)} utterance(s) not in {index}: {_examples(ctx, name, extra)}"
            )
        if missing:
            ctx.add(
                f"{ctx.dd.file(name)}: {len(missing)} utterance(s) of {index} missing: "
                f"{_examples(ctx, index, missing, label=index + ' line')}"
            )


def check_spk2utt(ctx):
    """Check 7: ``spk2utt`` is exactly the inverse of ``utt2spk``."""
    if "spk2utt" not in ctx.maps or "utt2spk" not in ctx.maps:
        return
    utt2spk = ctx.maps["utt2spk"]
    expected = utt2spk_to_spk2utt(utt2spk)
    for spk, value in ctx.maps["spk2utt"].items():
        where = ctx.at("spk2utt", spk, "speaker")
        if spk not in expected:
            ctx.add(f"{where}: speaker not in utt2spk")
            continue
        listed, wanted = value.split(), expected[spk]
        listed_set, wanted_set = set(listed), set(wanted)
        for utt in listed:
            if utt in wanted_set:
                continue
            if utt in utt2spk:
                ctx.add(
                    f"{where}: utterance '{utt}' belongs to speaker '{utt2spk[utt]}' in utt2spk "
                    f"(line {ctx.line('utt2spk', utt)})"
                )
            else:
                ctx.add(f"{where}: utterance '{utt}' not in utt2spk")
        for utt in wanted:
            if utt not in listed_set:
                ctx.add(
                    f"{where}: utterance '{utt}' of this speaker in utt2spk "
                    f"(line {ctx.line('utt2spk', utt)}) is missing"
                )
        if listed_set == wanted_set and listed != wanted:
            ctx.add(f"{where}: utterances repeated or not in sorted order (expected: {' '.join(wanted)})")
    for spk in expected:
        if spk not in ctx.maps["spk2utt"]:
            utt = expected[spk][0]
            ctx.add(
                f"{ctx.dd.file('spk2utt')}: speaker '{spk}' of utterance '{utt}' "
                f"(utt2spk line {ctx.line('utt2spk', utt)}) is missing"
            )


def check_speaker_order(ctx):
    """Check 8: along sorted utterance ids, speaker ids never decrease (Kaldi's sort requirement)."""
    utt2spk = ctx.maps.get("utt2spk")
    if not utt2spk:
        return
    prev_utt = None
    for utt in sorted(utt2spk):
        spk = utt2spk[utt]
        if prev_utt is not None and spk < utt2spk[prev_utt]:
            ctx.add(
                f"{ctx.at('utt2spk', utt)}: speaker '{spk}' sorts before speaker '{utt2spk[prev_utt]}' of "
                f"the preceding utterance '{prev_utt}', so sorting by speaker would reorder utterances; "
                f"prefix utterance ids with the speaker id and '-' (e.g. '{spk}-{utt}')"
            )
            return
        prev_utt = utt


def _check_pipe(ctx, utt, entry):
    words = entry.rstrip()[:-1].split()
    if not words:
        ctx.add(f"{ctx.at('wav.scp', utt)}: empty command before '|'")
    elif shutil.which(words[0]) is None:
        ctx.add(f"{ctx.at('wav.scp', utt)}: command '{words[0]}' of the pipe not found on PATH")


def check_audio(ctx):
    """Check 9: each ``wav.scp`` path is readable audio with samples, and float-coded audio holds no
    NaN or inf (decoded in blocks; integer PCM only has its header read); each pipe's command is on
    PATH."""
    if not ctx.check_audio or "wav.scp" not in ctx.maps:
        return
    for utt, entry in ctx.maps["wav.scp"].items():
        if entry.rstrip().endswith("|"):
            _check_pipe(ctx, utt, entry)
            continue
        if not os.path.isfile(entry):
            ctx.add(f"{ctx.at('wav.scp', utt)}: audio file '{entry}' not found")
            continue
        try:
            frames, sample_rate = audio_info(entry)
        except AudioError as e:
            ctx.add(f"{ctx.at('wav.scp', utt)}: {e}")
            continue
        if frames <= 0:
            ctx.add(f"{ctx.at('wav.scp', utt)}: audio '{entry}' holds no samples")
            continue
        ctx.audio_durations[utt] = frames / sample_rate
        try:
            check_finite(entry)
        except AudioError as e:
            ctx.add(f"{ctx.at('wav.scp', utt)}: {e}")


def check_feats_scp(ctx):
    """Check 10: each ``feats.scp`` entry is ``<ark path>:<byte offset>`` within an existing ark."""
    sizes = {}  # ark path -> size in bytes, or None when missing (reported once per ark)
    for utt, entry in ctx.maps.get("feats.scp", {}).items():
        try:
            path, offset = parse_ark_entry(entry)
        except ValueError as e:
            ctx.add(f"{ctx.at('feats.scp', utt)}: {e}")
            continue
        if path not in sizes:
            sizes[path] = os.path.getsize(path) if os.path.isfile(path) else None
            if sizes[path] is None:
                ctx.add(f"{ctx.at('feats.scp', utt)}: ark file '{path}' not found")
        if sizes[path] is not None and offset >= sizes[path]:
            ctx.add(f"{ctx.at('feats.scp', utt)}: offset {offset} is past the end of ark '{path}' "
                    f"({sizes[path]} bytes)")


def _positive(text, kind):
    """``kind(text)`` when it parses and is finite and > 0, else ``None``."""
    try:
        value = kind(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def check_utt2dur(ctx):
    """Check 11: durations are positive and agree with the audio read by :func:`check_audio`."""
    for utt, text in ctx.maps.get("utt2dur", {}).items():
        dur = _positive(text, float)
        if dur is None:
            ctx.add(f"{ctx.at('utt2dur', utt)}: duration '{text}' is not a positive number of seconds")
            continue
        audio = ctx.audio_durations.get(utt)
        if audio is not None and abs(dur - audio) > DURATION_TOLERANCE + 1e-9:
            ctx.add(
                f"{ctx.at('utt2dur', utt)}: duration {dur:g} s disagrees with the audio "
                f"({audio:.3f} s, wav.scp line {ctx.line('wav.scp', utt)}) by more than {DURATION_TOLERANCE} s"
            )


def check_utt2num_frames(ctx):
    """Check 12: frame counts are positive integers."""
    for utt, text in ctx.maps.get("utt2num_frames", {}).items():
        if _positive(text, int) is None:
            ctx.add(f"{ctx.at('utt2num_frames', utt)}: frame count '{text}' is not a positive integer")


def check_utt2lang(ctx):
    """Check 13: language codes are ISO 639-3 codes known to URIEL; one message per unknown code."""
    if not ctx.check_lang or "utt2lang" not in ctx.maps:
        return
    try:
        known = uriel_languages()
    except ImportError as e:
        ctx.add(f"{ctx.dd.file('utt2lang')}: cannot check language codes: {e} (or pass --no-lang)")
        return
    unknown = {}  # code -> utterances using it, in file order
    for utt, code in ctx.maps["utt2lang"].items():
        if code not in known:
            unknown.setdefault(code, []).append(utt)
    for code, utts in unknown.items():
        others = f" (and {len(utts) - 1} more utterance(s))" if len(utts) > 1 else ""
        ctx.add(
            f"{ctx.at('utt2lang', utts[0])}{others}: unknown language code '{code}'; codes must be "
            f"ISO 639-3 as in URIEL (e.g. 'hrv', not 'hr')"
        )


def check_utt2geo(ctx):
    """Check 14: ``lat lon`` pairs of numbers within range."""
    for utt, text in ctx.maps.get("utt2geo", {}).items():
        where = ctx.at("utt2geo", utt)
        parts = text.split()
        try:
            lat, lon = (float(p) for p in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            lat = lon = None
        if lat is None or not (math.isfinite(lat) and math.isfinite(lon)):
            ctx.add(f"{where}: '{text}' is not 'lat lon' (two numbers)")
        elif not -90 <= lat <= 90:
            ctx.add(f"{where}: latitude {lat:g} outside [-90, 90]")
        elif not -180 <= lon <= 180:
            ctx.add(f"{where}: longitude {lon:g} outside [-180, 180]")


def check_utt2gender(ctx):
    """Check 16: gender values are ``m`` or ``f`` (lowercase)."""
    for utt, text in ctx.maps.get("utt2gender", {}).items():
        if text not in GENDERS:
            ctx.add(f"{ctx.at('utt2gender', utt)}: gender '{text}' is not 'm' or 'f'")


#: The checks, in order; each takes the context and adds its problems to it.
CHECKS = (
    check_required_files,
    check_parse,
    check_not_empty,
    check_sorted,
    check_ids,
    check_same_utterances,
    check_spk2utt,
    check_speaker_order,
    check_audio,
    check_feats_scp,
    check_utt2dur,
    check_utt2num_frames,
    check_utt2lang,
    check_utt2geo,
    check_utt2gender,
)  # check 15 (non-empty text) is done by parsing


def validate_data_dir(path, check_audio=True, check_lang=True, max_errors=50, require=()):
    """Check a data directory and summarise it, or report every problem found.

    Arguments
    ---------
    path : str
        The data directory.
    check_audio : bool
        Open every ``wav.scp`` audio file, decoding float-coded ones to look for NaN/inf (and
        look up pipe commands on PATH).
    check_lang : bool
        Check ``utt2lang`` codes against URIEL (imports ``lang2vec``, ~2 s).
    max_errors : int
        Problems listed in the error at most (the count covers all of them).
    require : iterable of str
        Further files that must exist (e.g. ``utt2lang`` for LangID, ``text`` for ASR).

    Returns
    -------
    DataDirReport
        Utterance and speaker counts, total ``utt2dur`` duration, metadata streams.

    Raises
    ------
    DataDirError
        Listing all problems, one per line (also in its ``problems`` attribute).

    Example
    -------
    >>> import os, tempfile
    >>> import numpy as np, soundfile as sf
    >>> from masr.data.datadir import write_data_dir
    >>> d = tempfile.mkdtemp()
    >>> wav = os.path.join(d, "a.wav")
    >>> sf.write(wav, np.zeros(8000, dtype=np.float32), 16000)
    >>> write_data_dir(d, {"wav.scp": {"spk1-a": wav}, "utt2spk": {"spk1-a": "spk1"},
    ...                    "text": {"spk1-a": "dobar dan"}, "utt2dur": {"spk1-a": "0.5"},
    ...                    "utt2lang": {"spk1-a": "hrv"}})
    >>> report = validate_data_dir(d)
    >>> report.num_utterances, report.num_speakers, report.total_duration, report.streams
    (1, 1, 0.5, ['lang', 'spk', 'text'])
    >>> with open(os.path.join(d, "utt2lang"), "w") as f:
    ...     _ = f.write("spk1-a hr\\n")
    >>> validate_data_dir(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    masr.data.datadir.DataDirError: ...: 1 problem(s):
      .../utt2lang:1: utterance 'spk1-a': unknown language code 'hr'; ...
    """
    path = os.fspath(path)
    problems = _Problems(max_errors)
    if not os.path.isdir(path):
        problems.add(f"{path}: data directory not found")
        raise problems.error(path)
    ctx = _Context(DataDir(path), problems, check_audio, check_lang, require)
    for check in CHECKS:
        check(ctx)
    if problems.total:
        raise problems.error(path)
    durations = ctx.maps.get("utt2dur")
    return DataDirReport(
        path=path,
        num_utterances=len(ctx.maps[ctx.index]),
        num_speakers=len(set(ctx.maps["utt2spk"].values())),
        total_duration=None if durations is None else sum(float(v) for v in durations.values()),
        streams=ctx.dd.metadata_streams(),
    )


def main(argv=None):
    """Command line: ``python -m masr.data.validate [--no-audio] [--no-lang] DATA_DIR``.

    Prints a one-line summary and returns 0, or prints the problems to stderr and returns 1.

    Example
    -------
    >>> main(["/nonexistent/data/dir"])
    1
    """
    parser = argparse.ArgumentParser(
        prog="python -m masr.data.validate",
        description="Validate a Kaldi-style data directory (like Kaldi's validate_data_dir.sh).",
    )
    parser.add_argument("data_dir", help="the data directory")
    parser.add_argument("--no-audio", action="store_true", help="do not open the audio files")
    parser.add_argument("--no-lang", action="store_true", help="do not check utt2lang codes against URIEL")
    parser.add_argument("--max-errors", type=int, default=50, help="problems listed at most (default 50)")
    parser.add_argument("--require", action="append", default=[], metavar="FILE",
                        help="a file later stages read, e.g. utt2lang (repeatable): missing, it is a problem")
    args = parser.parse_args(argv)
    try:
        report = validate_data_dir(
            args.data_dir, check_audio=not args.no_audio, check_lang=not args.no_lang, max_errors=args.max_errors,
            require=args.require
        )
    except DataDirError as e:
        print(e, file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
