"""masr.report.results: RESULTS.md tables, data checks, missing stages, the CLI."""

import json
import os

import pytest

from masr.downstream.results_schema import ResultsError
from masr.report.loading import collect
from masr.report.results import main, write_report
from masr.report.tables import table1, table2, table3
from tests.helpers.results_runs import ACC_BASE, ACC_MASR, HEADER, PNG, asr_run, langid_run, probe_run, write_json

TABLE1 = [{"name": "BEST-RQ", "model": "continue_bestrq"}, {"name": "+LASR", "model": "continue_lasr"},
          {"name": "+MASR", "model": "continue_masr"}]
TABLE = [{"name": "BEST-RQ", "model": "continue_bestrq"}, {"name": "+MASR", "model": "continue_masr"}]


def report_config(tmp_path, figures=False, **extra):
    lines = ['title: "fixture corpus"',
             "table1:"] + [f"  - {{name: '{r['name']}', model: {r['model']}}}" for r in TABLE1]
    for key in ("table2", "table3"):
        lines += [f"{key}:"] + [f"  - {{name: '{r['name']}', model: {r['model']}}}" for r in TABLE]
    if figures:
        lines += ["fig2: {baseline: continue_bestrq, types: {syntactic: continue_masr, "
                  "geographic: continue_masr_geographic}}",
                  "fig3: {baseline: continue_bestrq, model: continue_masr, threshold: 0.25}",
                  "fig4: {baseline: continue_bestrq, model: continue_masr, languages: [hrv, srp, bos, xxx]}"]
    lines += ["configs: [conf/langid.yaml]"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "report.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def exp(tmp_path):
    exp = str(tmp_path / "exp")
    langid_run(exp, "continue_bestrq", 1, ACC_BASE, o=0.5, overall=0.40)
    langid_run(exp, "continue_bestrq", 2, ACC_BASE, o=0.52, overall=0.42)
    langid_run(exp, "continue_masr", 1, ACC_MASR, o=0.575, no=0.3, overall=0.4375, f1=0.41, eer=0.123)
    asr_run(exp, "continue_bestrq", 1, {"bos": 1.0, "hrv": 0.9}, {"bos": 0.6, "hrv": 0.5})
    asr_run(exp, "continue_bestrq", 2, {"bos": 0.98, "hrv": 0.92}, {"bos": 0.62, "hrv": 0.5})
    asr_run(exp, "continue_masr", 1, {"bos": 0.95, "hrv": 0.85}, {"bos": 0.55, "hrv": 0.45})
    probe_run(exp, "continue_bestrq")
    probe_run(exp, "continue_masr", language=0.8, emotion=0.45, folds=(0.4, 0.5))
    return exp


def test_table1_cells(exp):
    lines = table1(TABLE1, collect(exp, "langid")).splitlines()
    assert lines[0] == "| model | seeds | LP (4) | O (2) | NO (2) | overall (4) | macro-F1 | EER | dev kept |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    # runs without linear_probe / fine_tuned blocks (older runs): no LP column, the kept model as FT
    assert lines[2] == "| BEST-RQ | 2 | – | 51.0 ± 1.4 | 25.0 ± 0.0 | 41.0 ± 1.4 | 30.0 ± 0.0 | 20.0 ± 0.0 | – |"
    assert lines[3] == "| +LASR | not run | | | | | | | |"
    assert lines[4] == "| +MASR | 1 | – | 57.5 | 30.0 | 43.8 | 41.0 | 12.3 | – |"
    notes = "\n".join(lines[5:])
    assert "EER: pooled over all utterance × language trials" in notes
    assert "selected on dev accuracy; all numbers on test (`dump/test`, test_id `t1`)" in notes
    assert "O languages (2): hrv, srp; NO languages (2): bos, rus." in notes
    assert "BEST-RQ = `continue_bestrq`, seeds 1, 2 (steps 10, 20; dev accuracy 40.0 ± 0.0)" in notes


def test_table2_cells_and_task_lines(exp):
    text = table2(TABLE, collect(exp, "probe"))
    lines = text.splitlines()
    assert lines[0] == "| model | language | emotion |"
    assert lines[2] == "| BEST-RQ | 70.0 | 40.0 |"
    assert lines[3] == "| +MASR | 80.0 | 45.0 |"
    assert ("- language: dataset `mini`, label `utt2lang`, protocol `split`, 4 classes, 60 train / 20 test, "
            "1 fold (data_id `p1`).") in lines
    assert "- emotion: dataset `emo`, label `utt2emo`, protocol `kfold`, 3 classes, 40 train / 10 test, " \
           "2 folds (data_id `e1`)." in lines
    # emotion has 2 folds: the spread table follows
    assert "| BEST-RQ | 70.0 | 40.0 ± 14.1 |" in lines


def test_table2_not_run_row_and_mixed_data_id(exp):
    text = table2(TABLE + [{"name": "+LASR", "model": "continue_lasr"}], collect(exp, "probe"))
    assert "| +LASR | not run | |" in text.splitlines()
    probe_run(exp, "continue_masr", data_id="p2")
    with pytest.raises(ResultsError, match=r"Table 2 \(task 'language'\) would mix .*continue_bestrq.*'p1'.*"
                                           r"continue_masr.*'p2'"):
        table2(TABLE, collect(exp, "probe"))


def test_table3_wer_cer_and_average(exp):
    text = table3(TABLE, collect(exp, "asr"))
    lines = text.splitlines()
    wer = lines.index("WER (%):")
    assert lines[wer + 2] == "| model | seeds | bos | hrv | avg |"
    assert lines[wer + 4] == "| BEST-RQ | 2 | 99.0 ± 1.4 | 91.0 ± 1.4 | 95.0 ± 0.0 |"
    assert lines[wer + 5] == "| +MASR | 1 | 95.0 | 85.0 | 90.0 |"
    cer = lines.index("CER (%):")
    assert lines[cer + 4] == "| BEST-RQ | 2 | 61.0 ± 1.4 | 50.0 ± 0.0 | 55.5 ± 0.7 |"
    assert "CTC decoding: greedy; vocabulary size 300" in text


def test_mixed_test_ids_raise_naming_both_runs(exp):
    other = langid_run(exp, "continue_masr", 2, ACC_MASR, test_id="t2")
    with pytest.raises(ResultsError) as err:
        table1(TABLE1, collect(exp, "langid"))
    message = str(err.value)
    assert "Table 1 would mix numbers from different data" in message
    assert os.path.join("continue_bestrq", "seed1", "results.json") in message and other in message
    assert "'t1'" in message and "'t2'" in message
    # seeds of one model are checked too
    asr_run(exp, "continue_bestrq", 3, {"bos": 1.0, "hrv": 0.9}, {"bos": 0.6, "hrv": 0.5}, test_id="a9")
    with pytest.raises(ResultsError, match="Table 3 would mix"):
        table3([TABLE[0]], collect(exp, "asr"))


def test_malformed_file_error_names_the_file(exp, tmp_path):
    bad = os.path.join(exp, "asr", "continue_lasr", "seed1", "results.json")
    os.makedirs(os.path.dirname(bad))
    with open(bad, "w") as f:
        f.write("{not json")
    with pytest.raises(ResultsError, match=f"^{bad}: malformed results file"):
        collect(exp, "asr")
    write_json(bad, {"task": "asr", "model": "continue_lasr", "seed": 1, "data": {"test_id": "a1"},
                     "selected": {}, "per_language": {}, "average": {"wer": 1.0}, "overall": {}})
    with pytest.raises(ResultsError, match=f"^{bad}: malformed results file: missing field 'average.cer'"):
        collect(exp, "asr")
    asr_run(exp, "continue_lasr", 1, {"bos": 1.0}, {"bos": 0.5})
    os.rename(os.path.join(exp, "asr", "continue_lasr", "seed1"), os.path.join(exp, "asr", "continue_lasr", "seed7"))
    with pytest.raises(ResultsError, match="seed 1 but folder 'seed7'"):
        collect(exp, "asr")
    # the CLI reports it and fails
    os.remove(os.path.join(exp, "asr", "continue_lasr", "seed7", "results.json"))
    bad = langid_run(exp, "continue_lasr", 1, ACC_BASE, confusion=[[1, 2], [3, 4]])
    assert main(["--exp", exp, "--config", report_config(tmp_path)]) == 1


def test_missing_stages_are_reported_not_run(tmp_path):
    exp = str(tmp_path / "exp")
    langid_run(exp, "continue_bestrq", 1, ACC_BASE)
    out = write_report(exp, report_config(tmp_path), **HEADER)
    assert out == os.path.join(exp, "RESULTS.md")
    text = open(out).read()
    assert f"## Table 2: linear probes\n\nnot run: no {exp}/probe/*/results.json." in text
    assert f"## Table 3: speech recognition\n\nnot run: no {exp}/asr/*/seed*/results.json." in text
    assert "| BEST-RQ | 1 | – | 50.0 | 25.0 | 37.5 | 30.0 | 20.0 | – |" in text
    assert "Figure 2: not configured (no `fig2` in the report config)." in text
    assert "- git commit: abc123\n- machine (report generated on): test machine" in text
    assert "- [`conf/langid.yaml`](" in text and "(missing)" in text
    assert not os.path.exists(os.path.join(exp, "figures"))


def test_full_report_with_figures(exp, tmp_path):
    fig_dir = os.path.join(exp, "figures")
    os.makedirs(fig_dir)
    with open(os.path.join(fig_dir, "fig2_lang2vec_types.png"), "wb") as f:
        f.write(b"stale")
    assert main(["--exp", exp, "--config", report_config(tmp_path, figures=True)]) == 0
    text = open(os.path.join(exp, "RESULTS.md")).read()
    for name in ("fig2_lang2vec_types.png", "fig3_relative_change.png", "fig4_confusion.png"):
        assert f"](figures/{name})" in text
        with open(os.path.join(fig_dir, name), "rb") as f:
            assert f.read(8) == PNG
    assert not [n for n in os.listdir(fig_dir) if n.endswith(".tmp")]
    assert "skipped, no results: geographic (`continue_masr_geographic`)" in text
    # bos +25% and srp 0% are within ±25%; hrv +10% too; rus -50% is kept
    assert "3 languages within ±25% omitted (bos, hrv, srp)" in text
    assert "not in the LangID labels, omitted: xxx" in text
    assert "# Results: fixture corpus" in text


def test_figure_with_nothing_to_draw_is_not_written(exp, tmp_path):
    fig_dir = os.path.join(exp, "figures")
    os.makedirs(fig_dir)
    stale = os.path.join(fig_dir, "fig3_relative_change.png")
    with open(stale, "wb") as f:
        f.write(b"stale")
    config = report_config(tmp_path, fig3="{baseline: continue_bestrq, model: continue_masr, threshold: 0.6}",
                           fig4="{baseline: continue_bestrq, model: continue_lasr, languages: [hrv]}")
    text = open(write_report(exp, config, **HEADER)).read()
    assert "Figure 3 not drawn: no language changes by more than ±60%; 4 languages within ±60% omitted" in text
    assert "Figure 4 not drawn: no LangID results for `continue_lasr`." in text
    assert not os.path.exists(stale)
    assert not os.path.exists(os.path.join(fig_dir, "fig4_confusion.png"))


def test_bad_report_config_names_the_file(exp, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("table1: [{name: x}]\n")
    with pytest.raises(ResultsError, match=f"{path}: 'table1' should be a list"):
        write_report(exp, str(path), **HEADER)
    path.write_text("tabel1: []\n")
    with pytest.raises(ResultsError, match="unknown report config key"):
        write_report(exp, str(path), **HEADER)


def test_class_counts_move_into_cells_when_runs_disagree(exp):
    path = langid_run(exp, "continue_masr", 1, ACC_MASR)
    with open(path) as f:
        run = json.load(f)
    run["per_language"]["bos"]["overlapped"] = True  # pretrained on one more language
    run["overlapped"]["num_classes"], run["non_overlapped"]["num_classes"] = 3, 1
    write_json(path, run)
    lines = table1(TABLE1, collect(exp, "langid")).splitlines()
    assert lines[0] == "| model | seeds | LP (4) | O | NO | overall (4) | macro-F1 | EER | dev kept |"
    assert lines[4].startswith("| +MASR | 1 | – | 50.0 (3) | 25.0 (1) | 37.5 |")
    assert "- O languages (+MASR) (3): bos, hrv, srp; NO languages (1): rus." in lines


def test_git_commit_of_this_checkout():
    import re
    import shutil

    from masr.report.results import ROOT, git_commit
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}( \(with uncommitted changes\))?", git_commit(ROOT))
