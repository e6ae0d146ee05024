"""Tests for the shell recipes: option parsing (tools/parse_options.sh), the staged template
(recipes/masr.sh) through egs/mini/run.sh and the root ./run.sh, at a tiny corpus size.

The end-to-end tests share one module-scoped build (``mini``) and run in file order: the
skip / force / config-change tests each rerun the *same* command (same paths), since paths are
part of a stage's signature. Everything is written under pytest's tmp dirs, never into egs/mini.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import types
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "egs" / "mini"
PARSE_OPTIONS = ROOT / "tools" / "parse_options.sh"
SPLITS = ("pretrain", "train", "dev", "test")
LANGS = {"hrv": True, "bos": False, "srp": False}  # iso -> in pretraining
DATA_FILES = ("wav.scp", "utt2spk", "spk2utt", "text", "utt2dur", "utt2lang", "utt2geo", "utt2gender")
# 1 speaker per split and language, 2 utterances each; pretrain holds hrv only
EXPECTED_UTTS = {"pretrain": 2, "train": 6, "dev": 6, "test": 6}


def run(args, cwd, timeout=180):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=str(cwd),
                          env=dict(os.environ), timeout=timeout)


def run_mini(args, timeout=180):
    return run([MINI / "run.sh", *args], cwd=MINI, timeout=timeout)


def output(result):
    return f"--- rc {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def read_map(path):
    """A Kaldi map file as {key: rest of line}."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


def write_tiny_config(path, **overrides):
    """egs/mini/conf/corpus.yaml cut down to 3 languages, 1 speaker per split, 2 utts each."""
    config = yaml.safe_load((MINI / "conf" / "corpus.yaml").read_text(encoding="utf-8"))
    config["languages"] = [dict(lang, pretrain=LANGS[lang["iso"]])
                           for lang in config["languages"] if lang["iso"] in LANGS]
    assert sorted(lang["iso"] for lang in config["languages"]) == sorted(LANGS)
    config["speakers"] = {split: 1 for split in SPLITS}
    config["utts_per_speaker"] = {split: 2 for split in SPLITS}
    config["vocab_size"] = 200
    config.update(overrides)
    Path(path).write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return config


def recipe_args(tmp, corpus_config=None, nj=2):
    corpus_config = corpus_config or tmp / "corpus.yaml"
    return ["--nj", str(nj), "--data", tmp / "data", "--dump", tmp / "dump", "--exp", tmp / "exp",
            "--local-data-opts", f"--corpus-config {corpus_config} --db {tmp / 'db'}"]


def mtimes(paths):
    return {str(p): p.stat().st_mtime_ns for p in paths}


# ---- help ----------------------------------------------------------------------------------


def test_mini_help_lists_stages_and_options():
    r = run_mini(["--help"])
    assert r.returncode == 0, output(r)
    assert re.search(r"^\s*1\s+data\s", r.stdout, re.M), r.stdout
    assert re.search(r"^\s*2\s+features\s", r.stdout, re.M), r.stdout
    for option in ("--stage", "--stop-stage", "--nj", "--config", "--force", "--data", "--local-data-opts"):
        assert re.search(rf"^\s*{option}\s", r.stdout, re.M), f"{option} missing from help:\n{r.stdout}"
    assert r.stdout.startswith("Usage:")
    assert r.stderr == ""


def test_root_help_matches_mini_help_and_creates_nothing(tmp_path):
    mini_names = sorted(p.name for p in MINI.iterdir())
    venv_mtime = (ROOT / ".venv").stat().st_mtime_ns
    r = run([ROOT / "run.sh", "--help"], cwd=tmp_path)
    assert r.returncode == 0, output(r)
    assert r.stdout == run_mini(["--help"]).stdout
    assert "1  data" in r.stdout and "2  features" in r.stdout
    assert list(tmp_path.iterdir()) == []  # nothing in the caller's folder
    assert sorted(p.name for p in MINI.iterdir()) == mini_names
    assert (ROOT / ".venv").stat().st_mtime_ns == venv_mtime  # no environment set-up ran


def test_root_help_short_flag_after_other_options(tmp_path):
    r = run([ROOT / "run.sh", "--nj", "3", "-h"], cwd=tmp_path)
    assert r.returncode == 0, output(r)
    assert "--stop-stage" in r.stdout and "features" in r.stdout
    assert list(tmp_path.iterdir()) == []


# ---- option errors (exit before any stage) -------------------------------------------------


@pytest.mark.parametrize("bad, expected_rc, patterns", [
    (["--bogus", "1"], 2, ["--bogus", "unknown option"]),
    (["--nj"], None, ["--nj", "needs a value"]),
    (["--stage", "x"], None, ["--stage", "'x'"]),
    (["--stop-stage", "-1"], None, ["--stop-stage", "'-1'"]),
    (["--force", "maybe"], None, ["--force", "maybe"]),
    (["stray"], None, ["unexpected argument", "stray"]),
    (["--feature-source", "flac"], 2, ["--feature-source must be feats or audio_shards", "'flac'"]),
    (["--feature-source", "audio_shards"], 2, ["--feature-source audio_shards needs --shard-utts N > 0"]),
    (["--shard-utts", "2", "--feature-source", "audio_shards", "--audio-codec", "mp3"], 2,
     ["--audio-codec must be flac or opus", "'mp3'"]),
    (["--cmvn-utts", "some"], 2, ["--cmvn-utts must be a non-negative integer", "'some'"]),
], ids=["unknown", "missing-value", "stage-not-int", "stop-stage-negative", "force-not-bool", "positional",
        "feature-source", "audio-shards-without-shards", "audio-codec", "cmvn-utts"])
def test_bad_options_fail_before_any_stage(tmp_path, bad, expected_rc, patterns):
    # the output folders come first, so that even a parser that let the error through would
    # only write under tmp_path
    r = run_mini([*recipe_args(tmp_path, corpus_config=tmp_path / "missing.yaml"), *bad])
    if expected_rc is None:
        assert r.returncode != 0, output(r)
    else:
        assert r.returncode == expected_rc, output(r)
    for pattern in patterns:
        assert pattern in r.stderr, output(r)
    assert "stage 1" not in r.stdout, output(r)
    assert list(tmp_path.iterdir()) == []


# ---- tools/parse_options.sh ----------------------------------------------------------------


@pytest.fixture
def parse(tmp_path):
    """Run a tiny script that sources parse_options.sh; returns (result, {var: value})."""
    script = tmp_path / "opts.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
stop_stage=5
nj=1
some_flag=false
help_message=hi
. "{PARSE_OPTIONS}"
echo "stop_stage=$stop_stage"
echo "nj=$nj"
echo "some_flag=$some_flag"
echo "argc=$#"
for a in "$@"; do echo "arg=$a"; done
""", encoding="utf-8")

    def parse_(*args):
        r = run(["bash", script, *args], cwd=tmp_path)
        values, rest = {}, []
        for line in r.stdout.splitlines():
            key, sep, value = line.partition("=")
            if key == "arg":
                rest.append(value)
            elif sep:
                values[key] = value
        values["args"] = rest
        return r, values

    return parse_


def test_parse_options_defaults(parse):
    r, v = parse()
    assert r.returncode == 0, output(r)
    assert v == {"stop_stage": "5", "nj": "1", "some_flag": "false", "argc": "0", "args": []}


def test_parse_options_sets_variables(parse):
    r, v = parse("--stop-stage", "7", "--nj=3", "--some-flag", "true")
    assert r.returncode == 0, output(r)
    assert (v["stop_stage"], v["nj"], v["some_flag"], v["argc"]) == ("7", "3", "true", "0")


def test_parse_options_values_with_spaces_and_equals(parse):
    r, v = parse("--some-flag", "a b", "--nj=x=y")
    assert r.returncode == 0, output(r)
    assert v["some_flag"] == "a b" and v["nj"] == "x=y"


def test_parse_options_help(parse):
    r, v = parse("--nj", "3", "--help")
    assert r.returncode == 0, output(r)
    assert r.stdout == "hi\n"


def test_parse_options_config_file_then_later_options_win(parse, tmp_path):
    conf = tmp_path / "opts.conf"
    conf.write_text("nj=9\n", encoding="utf-8")
    r, v = parse("--config", conf)
    assert r.returncode == 0, output(r)
    assert v["nj"] == "9" and v["stop_stage"] == "5"
    r, v = parse("--config", conf, "--nj", "4")
    assert r.returncode == 0, output(r)
    assert v["nj"] == "4"
    r, v = parse("--nj", "4", f"--config={conf}")  # read where it appears: the file wins here
    assert r.returncode == 0, output(r)
    assert v["nj"] == "9"


def test_parse_options_missing_config_file(parse, tmp_path):
    r, v = parse("--config", tmp_path / "missing-file")
    assert r.returncode != 0
    assert "--config" in r.stderr and "missing-file" in r.stderr
    assert "nj" not in v


def test_parse_options_unknown_and_missing_value(parse):
    r, _ = parse("--nope", "1")
    assert r.returncode == 2 and "unknown option '--nope'" in r.stderr, output(r)
    r, _ = parse("--nj")
    assert r.returncode != 0 and "'--nj' needs a value" in r.stderr, output(r)


def test_parse_options_stops_at_first_positional(parse):
    r, v = parse("--nj", "2", "pos1", "--stop-stage", "8", "pos 2")
    assert r.returncode == 0, output(r)
    assert v["nj"] == "2" and v["stop_stage"] == "5"  # --stop-stage after pos1 is not parsed
    assert v["argc"] == "4"
    assert v["args"] == ["pos1", "--stop-stage", "8", "pos 2"]


def test_split_opts_keeps_quoted_words_and_expands_nothing(tmp_path):
    # --*-opts, --launcher, --cmd: split like a command line (tools/split_opts.sh), no eval
    script = tmp_path / "split.sh"
    script.write_text(f"""value="$1"; set --
. "{PARSE_OPTIONS}"
split_opts words "$value" --some-opts || exit $?
for w in "${{words[@]}}"; do printf '<%s>\\n' "$w"; done
""", encoding="utf-8")
    value = """--db '/data/my corpus' --name "a \\"b\\"" c\\ d $(touch pwned) $HOME * ''"""
    r = run(["bash", script, value], cwd=tmp_path)
    assert r.returncode == 0, output(r)
    assert r.stdout.splitlines() == ["<--db>", "</data/my corpus>", "<--name>", '<a "b">', "<c d>", "<$(touch>",
                                     "<pwned)>", "<$HOME>", "<*>", "<>"]
    assert not (tmp_path / "pwned").exists()
    r = run(["bash", script, ""], cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "", output(r)
    r = run(["bash", script, "--db '/data/my corpus"], cwd=tmp_path)
    assert r.returncode == 2 and "--some-opts: cannot split" in r.stderr, output(r)


# ---- end to end: egs/mini at a tiny size ---------------------------------------------------


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """One tiny build of stages 1-2 (3 languages, 20 utterances), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("mini")
    write_tiny_config(tmp / "corpus.yaml")
    # --no-lang: skips only the utt2lang-in-URIEL check (tests/test_validate.py covers it),
    # which costs seconds per data dir to load URIEL's language list; not in the signature
    args = ["--stop-stage", "2", "--validate-opts", "--no-lang", *recipe_args(tmp)]
    first = run_mini(args, timeout=300)
    assert first.returncode == 0, output(first)
    return types.SimpleNamespace(tmp=tmp, args=args, first=first, data=tmp / "data", dump=tmp / "dump",
                                 exp=tmp / "exp", db=tmp / "db")


def test_build_runs_both_stages(mini):
    out = mini.first.stdout
    assert "[mini " in out
    assert "stage 1 (data): start" in out and "stage 1 (data): done" in out
    assert "stage 2 (features): start" in out and "stage 2 (features): done" in out
    assert out.index("stage 1 (data): done") < out.index("stage 2 (features): start")
    assert "finished stages 1..2" in out
    assert "mini corpus: 20 utterances" in out
    assert "already done" not in out


def test_build_data_dirs(mini):
    for split in SPLITS:
        d = mini.data / split
        for name in DATA_FILES:
            assert (d / name).is_file(), f"{d / name} missing"
        wav = read_map(d / "wav.scp")
        assert len(wav) == EXPECTED_UTTS[split], (split, sorted(wav))
        for path in wav.values():
            assert Path(path).is_file() and Path(path).is_relative_to(mini.db), path
        assert set(read_map(d / "text")) == set(wav) == set(read_map(d / "utt2lang"))
    langs = {split: set(read_map(mini.data / split / "utt2lang").values()) for split in SPLITS}
    assert langs["pretrain"] == {"hrv"}
    for split in ("train", "dev", "test"):
        assert langs[split] == set(LANGS)
    # dev/test speakers are never heard in pretrain/train
    spk = {split: set(read_map(mini.data / split / "utt2spk").values()) for split in SPLITS}
    assert not (spk["dev"] | spk["test"]) & (spk["pretrain"] | spk["train"])
    assert (mini.db / "speakers.tsv").is_file()


def test_build_features(mini):
    for split in SPLITS:
        dump = mini.dump / split
        wav_lines = (mini.data / split / "wav.scp").read_text(encoding="utf-8").splitlines()
        feats_lines = (dump / "feats.scp").read_text(encoding="utf-8").splitlines()
        assert len(feats_lines) == len(wav_lines) == EXPECTED_UTTS[split]
        assert [l.split()[0] for l in feats_lines] == [l.split()[0] for l in wav_lines]
        assert (dump / "cmvn.ark").is_file() and (dump / "cmvn.ark").stat().st_size > 0
        frames = read_map(dump / "utt2num_frames")
        assert set(frames) == set(read_map(dump / "feats.scp"))
        assert all(int(n) > 0 for n in frames.values())


def test_build_logs_stats_and_stamps(mini):
    log1 = mini.exp / "log" / "stage1.data.log"
    log2 = mini.exp / "log" / "stage2.features.log"
    assert "mini corpus: 20 utterances" in log1.read_text(encoding="utf-8")
    assert f"{mini.dump / 'train'}" in log2.read_text(encoding="utf-8")

    with open(mini.exp / "data_stats.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["split", "lang", "utterances", "speakers", "hours"]
    by_key = {(r[0], r[1]): r for r in rows[1:]}
    assert {split for split, _ in by_key} == set(SPLITS)
    assert {lang for split, lang in by_key if split == "pretrain"} == {"hrv", "all"}
    for split in SPLITS:
        assert int(by_key[(split, "all")][2]) == EXPECTED_UTTS[split]
    for split in ("train", "dev", "test"):
        for lang in LANGS:
            assert by_key[(split, lang)][2:4] == ["2", "1"]
        assert float(by_key[(split, "all")][4]) > 0

    stamps = mini.exp / "stamps"
    assert sorted(p.name for p in stamps.iterdir()) == ["stage1.data.done", "stage2.features.done"]
    for p in stamps.iterdir():
        assert re.fullmatch(r"[0-9a-f]{64}\n", p.read_text(encoding="utf-8")), p


def test_rerun_skips_done_stages(mini):
    feats = [mini.dump / split / "feats.scp" for split in SPLITS]
    stamps = sorted((mini.exp / "stamps").iterdir())
    before, stamp_text = mtimes(feats + stamps), [p.read_text() for p in stamps]
    r = run_mini(mini.args)
    assert r.returncode == 0, output(r)
    assert "stage 1 (data): already done, skipping" in r.stdout
    assert "stage 2 (features): already done, skipping" in r.stdout
    assert "start" not in r.stdout
    assert mtimes(feats + stamps) == before
    assert [p.read_text() for p in stamps] == stamp_text


def test_force_reruns_only_the_selected_stage(mini):
    feats = mini.dump / "train" / "feats.scp"
    stamp1, stamp2 = mini.exp / "stamps" / "stage1.data.done", mini.exp / "stamps" / "stage2.features.done"
    # --nj is not part of the signature (the features do not depend on it): without --force
    # stage 2 is skipped, so it is --force that makes it run below. --nj 1: no worker start-up.
    args = [*mini.args, "--stage", "2", "--stop-stage", "2", "--nj", "1"]
    r = run_mini(args)
    assert r.returncode == 0, output(r)
    assert "stage 2 (features): already done, skipping" in r.stdout
    before, sig2 = mtimes([feats, stamp1]), stamp2.read_text()

    r = run_mini([*args, "--force", "true"])
    assert r.returncode == 0, output(r)
    assert "stage 2 (features): start" in r.stdout and "stage 2 (features): done" in r.stdout
    assert "stage 1" not in r.stdout
    assert "finished stages 2..2" in r.stdout
    assert feats.stat().st_mtime_ns != before[str(feats)]
    assert stamp1.stat().st_mtime_ns == before[str(stamp1)]
    assert stamp2.read_text() == sig2  # same options: same signature
    for split in SPLITS:
        lines = (mini.dump / split / "feats.scp").read_text(encoding="utf-8").splitlines()
        assert len(lines) == EXPECTED_UTTS[split]


def test_changed_config_content_reruns_stage1(mini):
    stamp1 = mini.exp / "stamps" / "stage1.data.done"
    sig1 = stamp1.read_text()
    text_before = (mini.data / "train" / "text").read_text(encoding="utf-8")
    args = [*mini.args, "--stop-stage", "1"]  # stage 1 only: same signature, so skipped
    r = run_mini(args)
    assert r.returncode == 0, output(r)
    assert "stage 1 (data): already done, skipping" in r.stdout

    # same path, same options, other content
    write_tiny_config(mini.tmp / "corpus.yaml", seed=4321)
    r = run_mini(args)
    assert r.returncode == 0, output(r)
    assert "stage 1 (data): start" in r.stdout and "stage 1 (data): done" in r.stdout
    assert "already done" not in r.stdout
    assert "stage 2" not in r.stdout
    assert stamp1.read_text() != sig1
    assert (mini.data / "train" / "text").read_text(encoding="utf-8") != text_before
    assert len(read_map(mini.data / "train" / "wav.scp")) == EXPECTED_UTTS["train"]


# ---- failing stages ------------------------------------------------------------------------


def test_failing_stage_reports_log_and_writes_no_stamp(tmp_path):
    missing = tmp_path / "no-such-corpus.yaml"
    r = run_mini(["--stop-stage", "2", *recipe_args(tmp_path, corpus_config=missing)])
    assert r.returncode != 0, output(r)
    log = tmp_path / "exp" / "log" / "stage1.data.log"
    assert re.search(rf"stage 1 \(data\): FAILED .*{re.escape(str(log))}", r.stderr), output(r)
    assert "no-such-corpus.yaml" in log.read_text(encoding="utf-8")
    assert not (tmp_path / "exp" / "stamps" / "stage1.data.done").exists()
    assert "stage 2" not in r.stdout and "finished" not in r.stdout


def test_failing_preparation_is_not_masked_by_existing_data(mini, tmp_path):
    shutil.copytree(mini.data / "train", tmp_path / "data" / "train")
    missing = tmp_path / "no-such-corpus.yaml"
    r = run_mini(["--stop-stage", "1", "--splits", "train", "--validate-opts", "--no-lang",
                  *recipe_args(tmp_path, corpus_config=missing)])
    assert "no-such-corpus.yaml" in (tmp_path / "exp" / "log" / "stage1.data.log").read_text()
    assert r.returncode != 0, output(r)
    assert "FAILED" in r.stderr
    assert not (tmp_path / "exp" / "stamps" / "stage1.data.done").exists()


def test_stage3_pretrains_each_config_and_skips_when_done(mini, tmp_path):
    exp = tmp_path / "exp3"
    opts = ("--max_steps 3 --log_every 1 --checkpoint_every 3 --valid_every 3 --max_batch_frames 3000 "
            "--model.d_model 32 --model.num_layers 1 --model.nhead 2 --model.d_ffn 64")
    args = ["--stage", "3", "--stop-stage", "3", "--data", mini.data, "--dump", mini.dump, "--exp", exp,
            "--pretrain-opts", opts]
    r = run_mini(args, timeout=300)
    assert r.returncode == 0, output(r)
    assert "stage 3 (pretrain): done" in r.stdout
    run_dir = exp / "pretrain_bestrq"
    log = (run_dir / "train_log.txt").read_text()
    assert "training from step 0 to 3" in log and "step 3 | epoch" in log and "step 3 | valid | loss" in log
    assert (run_dir / "checkpoints" / "step-00000003" / "state.pt").is_file()
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())
    again = run_mini(args)
    assert "stage 3 (pretrain): already done, skipping" in again.stdout
    # stage 4: the continued-pretraining variants start from that run's checkpoint
    args4 = ["--stage", "4", "--stop-stage", "4", "--data", mini.data, "--dump", mini.dump, "--exp", exp,
             "--masr-configs", " ".join(f"conf/continue_{v}.yaml" for v in ("bestrq", "lasr", "masr", "geomasr", "textmasr")),
             "--lang2vec-types", "genetic", "--seeds", "1 2",
             "--masr-opts", "--max_steps 2 --log_every 1 --valid_every 2 --checkpoint_every 2 --max_batch_frames 3000"]
    r = run_mini(args4, timeout=600)
    assert r.returncode == 0, output(r)
    assert f"continuing from {run_dir / 'checkpoints' / 'step-00000003'}" in r.stdout
    for variant, streams in [("continue_bestrq", []), ("continue_lasr", ["lang"]), ("continue_masr", ["lang"]),
                             ("continue_geomasr", ["lang", "geo"]), ("continue_textmasr", ["lang", "text"]),
                             ("continue_masr_genetic", ["lang"])]:
        assert (exp / variant / "seed2" / "encoder.pt").is_file(), variant  # one run per seed
        log = (exp / variant / "seed1" / "train_log.txt").read_text()
        assert "initialised from" in log and "step 2 | valid" in log, variant
        for stream in streams:
            assert f"{stream}_triplet" in log and f"{stream}_active" in log, (variant, stream)
        if variant in ("continue_masr", "continue_geomasr", "continue_textmasr", "continue_masr_genetic"):
            assert "lang_neg_differs_from_lasr" in log
    overrides = yaml.safe_load((exp / "continue_masr_genetic" / "seed2" / "overrides.yaml").read_text())
    assert overrides["lang_feature"] == "genetic" and overrides["seed"] == 2
    # stages 5-8: LangID, ASR, probes and the report on those runs
    probe_config = tmp_path / "probe.yaml"
    probe_config.write_text(
        "pretrained: !PLACEHOLDER\ndump_dir: !PLACEHOLDER\nexp_dir: !PLACEHOLDER\nlayer: 1\ncpu_threads: 1\n"
        "l2: 0.001\nbatch_frames: 30000\nprogress: false\n"
        "datasets: {train: !ref <dump_dir>/train, test: !ref <dump_dir>/test}\ntasks:\n"
        "  - {name: language, label: utt2lang, protocol: split, train: train, test: test, speaker_independent: true}\n"
        "  - {name: speaker, label: utt2spk, protocol: within_group, data: train, groups: utt2spk, every: 2}\n"
        )
    tiny = "--max_steps 2 --checkpoint_every 1 --max_batch_frames 3000"
    args5 = ["--stage", "5", "--data", mini.data, "--dump", mini.dump, "--exp", exp, "--lang2vec-types", "genetic",
             "--seeds", "1 2", "--langid-opts", tiny, "--asr-opts", tiny + " --vocab_size 40 --languages null",
             "--probe-config", probe_config]
    r = run_mini(args5, timeout=600)
    assert r.returncode == 0, output(r)
    for n, name in ((5, "langid"), (6, "asr"), (7, "probe"), (8, "report")):
        assert f"stage {n} ({name}): done" in r.stdout
    for model in ("continue_bestrq", "continue_lasr", "continue_masr", "continue_masr_genetic"):
        for seed in (1, 2):
            assert (exp / "langid" / model / f"seed{seed}" / "results.json").is_file(), (model, seed)
    for model in ("continue_bestrq", "continue_masr"):
        for seed in (1, 2):
            results = json.loads((exp / "asr" / model / f"seed{seed}" / "results.json").read_text())
            assert results["model"] == model and results["seed"] == seed
    assert (exp / "probe" / "continue_lasr" / "seed2" / "predictions" / "language.tsv").is_file()
    report = (exp / "RESULTS.md").read_text()
    assert "## Table 1" in report and "| +LASR | 2 |" in report
    assert "## Table 2" in report and "## Table 3" in report
    assert (exp / "figures" / "fig2_lang2vec_types.png").is_file()
    assert (exp / "figures" / "fig4_confusion.png").is_file()
    again = run_mini(args5)
    assert "stage 5 (langid): already done" in again.stdout and "stage 8 (report): already done" in again.stdout


def test_sharded_features_and_two_process_torchrun_pretraining(mini, tmp_path):
    # --shard-utts: stage 2 writes shuffled shards; 'sharded: true' gives each torchrun rank its own
    dump, exp = tmp_path / "dump_sharded", tmp_path / "exp_sharded"
    conf = tmp_path / "pretrain_sharded.yaml"
    mini_conf = (MINI / "conf" / "pretrain_bestrq.yaml").read_text()
    conf.write_text(re.sub(r"(?m)^sharded:.*$", "sharded: true", mini_conf))
    args = ["--stage", "2", "--stop-stage", "3", "--data", mini.data, "--dump", dump, "--exp", exp,
            "--shard-utts", "2", "--pretrain-set", "train", "--launcher", "torchrun --standalone --nproc_per_node=2",
            "--pretrain-configs", conf,
            "--pretrain-opts", "--max_steps 2 --log_every 1 --checkpoint_every 2 --valid_every 0 "
            "--max_batch_frames 3000 --model.d_model 32 --model.num_layers 1 --model.nhead 2 --model.d_ffn 64"]
    r = run_mini(args, timeout=300)
    assert r.returncode == 0, output(r)
    for split in SPLITS:
        index = (dump / split / "shards.tsv").read_text().splitlines()
        assert len(index) - 1 == -(-EXPECTED_UTTS[split] // 2), split   # ceil(utterances / 2) shards
    log = (exp / "pretrain_sharded" / "train_log.txt").read_text()
    assert "step 2 | epoch" in log
    assert (exp / "pretrain_sharded" / "checkpoints" / "step-00000002" / "rng.rank1.pt").is_file()


def test_stage4_continues_from_a_kept_checkpoint_of_a_chosen_step(mini, tmp_path):
    # the paper: MASR continues from BEST-RQ's 1M-step checkpoint while the baseline trains to 1.25M
    exp = tmp_path / "exp"
    conf = tmp_path / "pretrain_keep.yaml"
    mini_conf = (MINI / "conf" / "pretrain_bestrq.yaml").read_text()
    conf.write_text(re.sub(r"(?m)^keep_steps:.*$", "keep_steps: [2]", mini_conf))
    tiny = "--max_batch_frames 3000 --model.d_model 32 --model.num_layers 1 --model.nhead 2 --model.d_ffn 64"
    common = ["--data", mini.data, "--dump", mini.dump, "--exp", exp, "--baseline", "pretrain_keep"]
    r = run_mini(["--stage", "3", "--stop-stage", "3", *common, "--pretrain-configs", conf, "--pretrain-opts",
                  f"--max_steps 4 --checkpoint_every 3 --keep_checkpoints 1 --valid_every 0 {tiny}"], timeout=300)
    assert r.returncode == 0, output(r)
    ckpts = sorted(p.name for p in (exp / "pretrain_keep" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000004"]   # 2 kept (keep_steps), 3 pruned (keep_checkpoints 1)
    stage4 = ["--stage", "4", "--stop-stage", "4", *common, "--masr-configs", "conf/continue_bestrq.yaml",
              "--masr-opts", "--max_steps 1 --valid_every 0"]
    missing = run_mini([*stage4, "--baseline-step", "3"])
    assert missing.returncode != 0
    assert "no checkpoint of step 3" in missing.stdout and "keep_steps" in missing.stdout, output(missing)
    r = run_mini([*stage4, "--baseline-step", "2"], timeout=300)
    assert r.returncode == 0, output(r)
    assert f"continuing from {exp / 'pretrain_keep' / 'checkpoints' / 'step-00000002'}" in r.stdout
