"""masr.report.paper: the paper's figures beside ours in RESULTS.md (the report config's ``paper:``
block), its validation, no change without it, and the committed blocks against the paper's tables
as transcribed in ``shared/paper/TABLES.md`` beside the checkout."""

import os
import re
from pathlib import Path

import pytest
import yaml

from masr.report import paper
from masr.downstream.results_schema import ResultsError
from masr.report.results import load_report_config, render_report, write_report
from tests.helpers.results_runs import ACC_BASE, ACC_MASR, HEADER, asr_run, langid_run, probe_run

ROOT = Path(__file__).resolve().parents[1]
TABLES_MD = Path(os.environ.get("MASR_PAPER_TABLES", ROOT.parent / "shared" / "paper" / "TABLES.md"))
SOURCE = "Raj et al., MASR (arXiv 2307.10982, ASRU 2023)"

ROWS = {
    "table1": [{"name": "BEST-RQ", "model": "continue_bestrq"}, {"name": "+LASR", "model": "continue_lasr"},
               {"name": "+MASR", "model": "continue_masr"}],
    "table2": [{"name": "BEST-RQ", "model": "continue_bestrq"}, {"name": "+MASR", "model": "continue_masr"}],
    "table3": [{"name": "BEST-RQ", "model": "continue_bestrq"}, {"name": "+MASR", "model": "continue_masr"}],
}
T1_COLUMNS = {"O": "O", "NO": "NO", "overall acc": "overall", "F1": "macro-F1", "EER": "EER"}


def t1(o, no, acc, f1, eer):
    return {"O": o, "NO": no, "overall acc": acc, "F1": f1, "EER": eer}


def paper_block():
    return {
        "source": SOURCE,
        "table1": {"table": "Table 1, FLEURS half", "columns": dict(T1_COLUMNS), "note": "O / NO: 48 / 54.",
                   "rows": [
                       {"name": "w2v-BERT", "values": t1(87.7, 69.6, 78.0, 77.7, 0.5)},
                       {"name": "BEST-RQ", "model": "continue_bestrq", "values": t1(85.6, 65.2, 75.4, 72.8, 0.9)},
                       {"name": "BEST-RQ + LASR", "model": "continue_lasr",
                        "values": t1(90.6, 73.4, 81.6, 79.7, 0.5)},
                       {"name": "BEST-RQ + MASR", "model": "continue_masr",
                        "values": {"O": 91.3, "NO": 74.6, "overall acc": 83.7, "F1": 81.5}},  # no EER: –
                   ]},
        "table2": {"table": "Table 2", "columns": {"VoxForge": "language", "ESC50-cough": None},
                   "rows": [{"name": "BEST-RQ", "model": "continue_bestrq",
                             "values": {"VoxForge": 94.6, "ESC50-cough": 90.9}}]},
        "table3": {"table": "Table 3", "columns": {"bs": "bos", "hr": "hrv", "it": "ita", "avg": "avg"},
                   "rows": [{"name": "BEST-RQ", "model": "continue_bestrq",
                             "values": {"bs": 5.1, "hr": 7.7, "it": 10.1, "avg": 7.6}},
                            {"name": "BEST-RQ + LASR", "values": {"bs": 4.9, "avg": 7.6}}]},
        "fig4": {"table": "Figure 4", "columns": {"bs": "bos", "sr": "srp", "hr": "hrv"},
                 "rows": [{"name": "BEST-RQ", "model": "continue_bestrq",
                           "values": {"bs": [0.22, 0, 0.77], "sr": [0.72, 0.11, 0.17], "hr": [0.29, 0.33, 0.38]}}]},
    }


def write_config(tmp_path, block=None, name="report.yaml", **extra):
    config = {"title": "fixture corpus", **ROWS,
              "fig4": {"baseline": "continue_bestrq", "model": "continue_masr", "languages": ["hrv", "srp", "bos"]},
              "configs": ["conf/langid.yaml"], **extra}
    if block is not None:
        config["paper"] = block
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.fixture
def exp(tmp_path):
    exp = str(tmp_path / "exp")
    langid_run(exp, "continue_bestrq", 1, ACC_BASE, o=0.5, overall=0.40)
    langid_run(exp, "continue_bestrq", 2, ACC_BASE, o=0.52, overall=0.42)
    langid_run(exp, "continue_masr", 1, ACC_MASR, o=0.575, no=0.3, overall=0.4375, f1=0.41, eer=0.123)
    asr_run(exp, "continue_bestrq", 1, {"bos": 1.0, "hrv": 0.9}, {"bos": 0.6, "hrv": 0.5})
    asr_run(exp, "continue_masr", 1, {"bos": 0.95, "hrv": 0.85}, {"bos": 0.55, "hrv": 0.45})
    probe_run(exp, "continue_bestrq")
    probe_run(exp, "continue_masr", language=0.8, emotion=0.45, folds=(0.4, 0.5))
    return exp


def section(text, heading, end="\n## "):
    start = text.index(heading)
    stop = text.find(end, start + len(heading))
    return text[start:stop if stop >= 0 else len(text)]


# ---- rendering ---------------------------------------------------------------------------------

def test_table1_paper_row_follows_each_measured_row(exp, tmp_path):
    text = open(write_report(exp, write_config(tmp_path, paper_block()), **HEADER)).read()
    lines = section(text, "## Table 1").splitlines()
    i = lines.index("| model | seeds | LP (4) | O (2) | NO (2) | overall (4) | macro-F1 | EER | dev kept |")
    assert lines[i + 2:i + 9] == [
        "| BEST-RQ | 2 | – | 51.0 ± 1.4 | 25.0 ± 0.0 | 41.0 ± 1.4 | 30.0 ± 0.0 | 20.0 ± 0.0 | – |",
        "| *paper: BEST-RQ* | – | – | *85.6* | *65.2* | *75.4* | *72.8* | *0.9* | – |",
        "| +LASR | not run | | | | | | | |",
        "| *paper: BEST-RQ + LASR* | – | – | *90.6* | *73.4* | *81.6* | *79.7* | *0.5* | – |",
        "| +MASR | 1 | – | 57.5 | 30.0 | 43.8 | 41.0 | 12.3 | – |",
        "| *paper: BEST-RQ + MASR* | – | – | *91.3* | *74.6* | *83.7* | *81.5* | – | – |",
        "| *paper: w2v-BERT* | – | – | *87.7* | *69.6* | *78.0* | *77.7* | *0.5* | – |",   # no model of ours: last
    ]
    # the note under the table cites the source, then the usual notes follow
    assert lines[i + 9] == ""
    note = lines[i + 10]
    assert note.startswith(f"- Rows *paper: …*: the figures reported in {SOURCE}, Table 1, FLEURS half")
    assert "BEST-RQ = `continue_bestrq`" in note and "no model of ours: w2v-BERT." in note
    assert note.endswith("O / NO: 48 / 54.")
    assert lines[i + 11].startswith("- Test accuracy (%) of the linear probe on the frozen encoder")


def test_table2_and_table3_columns_and_paper_only_columns(exp, tmp_path):
    text = open(write_report(exp, write_config(tmp_path, paper_block()), **HEADER)).read()
    t2 = section(text, "## Table 2").splitlines()
    i = t2.index("| model | language | emotion | ESC50-cough (paper) |")
    assert t2[i + 1] == "|---|---:|---:|---:|"
    assert t2[i + 2:i + 5] == ["| BEST-RQ | 70.0 | 40.0 | – |",
                               "| *paper: BEST-RQ* | *94.6* | – | *90.9* |",
                               "| +MASR | 80.0 | 45.0 | – |"]
    assert "Columns marked (paper) are not measured in this table." in t2[i + 6]
    # the fold-spread table is left alone
    assert "| model | language | emotion |" in t2 and "| BEST-RQ | 70.0 | 40.0 ± 14.1 |" in t2
    t3 = section(text, "## Table 3").splitlines()
    wer, cer = t3.index("WER (%):"), t3.index("CER (%):")
    assert t3[wer + 2] == "| model | seeds | bos | hrv | avg | it (paper) |"
    assert t3[wer + 4:wer + 8] == ["| BEST-RQ | 1 | 100.0 | 90.0 | 95.0 | – |",
                                   "| *paper: BEST-RQ* | – | *5.1* | *7.7* | *7.6* | *10.1* |",
                                   "| +MASR | 1 | 95.0 | 85.0 | 90.0 | – |",
                                   "| *paper: BEST-RQ + LASR* | – | *4.9* | – | *7.6* | – |"]
    assert t3[wer + 9].startswith(f"- Rows *paper: …*: the figures reported in {SOURCE}, Table 3")
    assert t3[wer + 10] == "" and wer + 11 == cer
    assert not any("paper" in line for line in t3[cer:])  # the paper gives WER only


def test_fig4_matrices_and_sections_without_our_table(tmp_path):
    exp = str(tmp_path / "exp")
    langid_run(exp, "continue_bestrq", 1, ACC_BASE)
    langid_run(exp, "continue_masr", 1, ACC_MASR)
    text = open(write_report(exp, write_config(tmp_path, paper_block()), **HEADER)).read()
    # no ASR results at all: "not run", then the paper's figures alone
    t3 = section(text, "## Table 3")
    assert f"not run: no {exp}/asr/*/seed*/results.json.\n\nThe paper's figures ({SOURCE}, Table 3):" in t3
    assert "| paper: model | bs | hr | it | avg |" in t3
    assert "| BEST-RQ + LASR | 4.9 | – | – | 7.6 |" in t3
    fig = section(text, "## Figures")
    assert "](figures/fig4_confusion.png)" in fig
    assert f"The paper's figures ({SOURCE}, Figure 4): fraction of each true language's test utterances" in fig
    assert "paper labels bs, sr, hr = bos, srp, hrv here; BEST-RQ = `continue_bestrq`." in fig
    assert "| paper: true | BEST-RQ: bos | srp | hrv |" in fig
    assert "| bos | 0.22 | 0 | 0.77 |" in fig and "| hrv | 0.29 | 0.33 | 0.38 |" in fig


def test_no_paper_block_renders_as_before(exp, tmp_path, monkeypatch):
    """Without ``paper:`` the hook changes nothing: the report equals one rendered with it disabled,
    for a fixture config and for egs/mini's committed one."""
    mini = str(ROOT / "egs" / "mini" / "conf" / "report.yaml")
    assert "paper" not in load_report_config(mini)
    configs = [write_config(tmp_path), mini]
    out = str(tmp_path / "out" / "RESULTS.md")
    with_hook = [render_report(exp, c, out, **HEADER) for c in configs]
    monkeypatch.setattr(paper, "annotate", lambda text, key, config: text)
    assert [render_report(exp, c, out, **HEADER) for c in configs] == with_hook
    assert not any("paper:" in t or "(paper)" in t for t in with_hook)


# ---- validation ----------------------------------------------------------------------------------

def _set(block, dotted, value):
    node = block
    *parents, leaf = dotted
    for p in parents:
        node = node[p]
    node[leaf] = value


BAD = [
    # (change to the block, the key the message names, what it says)
    ((("table4",), {"table": "Table 4"}), "paper.table4", "unknown table"),
    ((("table1", "colums"), {}), "paper.table1.colums", "unknown key"),
    ((("table1", "columns", "overall acc"), "accuracy"), "paper.table1.columns.overall acc",
     "unknown column 'accuracy' of table1"),
    ((("table1", "rows", 1, "values", "WER"), 5.0), "paper.table1.rows[1].values.WER", "unknown column 'WER'"),
    ((("table1", "rows", 1, "values", "O"), "85,6"), "paper.table1.rows[1].values.O",
     "should be a number, got '85,6'"),
    ((("table1", "rows", 1, "values", "O"), True), "paper.table1.rows[1].values.O", "should be a number"),
    ((("table1", "rows", 1, "model"), "continue_xyz"), "paper.table1.rows[1].model",
     "'continue_xyz' is not a model of the report config's 'table1'"),
    ((("table1", "rows", 2, "model"), "continue_bestrq"), "paper.table1.rows[2].model", "is matched by"),
    ((("table1", "rows", 0, "name"), None), "paper.table1.rows[0].name", "should be the paper's name"),
    ((("source",), ""), "paper.source", "should name the paper"),
    ((("fig4", "rows", 0, "values", "bs"), [0.22, 0.77]), "paper.fig4.rows[0].values.bs", "list of 3 numbers"),
]


@pytest.mark.parametrize("change, key, message", BAD, ids=[b[1] for b in BAD])
def test_bad_paper_block_names_the_file_and_key(exp, tmp_path, change, key, message):
    block = paper_block()
    _set(block, *change)
    path = write_config(tmp_path, block)
    with pytest.raises(ResultsError) as err:
        write_report(exp, path, **HEADER)
    assert str(err.value).startswith(f"{path}: {key}: "), str(err.value)
    assert message in str(err.value)


def test_unquoted_yaml_boolean_label_and_missing_table(exp, tmp_path):
    path = tmp_path / "report.yaml"
    path.write_text("table1: [{name: BEST-RQ, model: continue_bestrq}]\n"
                    "paper:\n  source: arXiv 2307.10982\n  table1:\n    table: Table 1\n"
                    "    columns: {O: O, NO: NO}\n"
                    "    rows: [{name: BEST-RQ, model: continue_bestrq, values: {O: 85.6}}]\n")
    with pytest.raises(ResultsError, match=re.escape(f"{path}: paper.table1.columns: column label False should "
                                                     "be a string (YAML reads an unquoted NO")):
        load_report_config(str(path))
    block = paper_block()
    path = write_config(tmp_path, block, table2=[])
    with pytest.raises(ResultsError, match=re.escape(f"{path}: paper.table2: the report config has no 'table2'")):
        load_report_config(path)


# ---- the committed report configs against the paper ------------------------------------------------

def _label(header):
    """TABLES.md's column header -> the label the paper blocks use ('FLEURS O (48)' -> 'O')."""
    header = re.sub(r"^(FLEURS|Dhvani) ", "", header.strip())
    return re.sub(r"\s*\(.*\)$", "", header)


def _number(cell):
    cell = cell.strip()
    return float(cell) if "." in cell else int(cell)


def paper_tables(path):
    """The tables of TABLES.md: {'Table 1': {row name: [(column label, value), ...]}, ...}; a row
    '+ X' under 'BASE' is named 'BASE + X'."""
    tables, name, base = {}, None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"## (Table \d|Figure \d)", line)
        if m:
            name, header, base = m.group(1), None, None
            tables[name] = {}
            continue
        if name is None or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        row = cells[0]
        if row.startswith("+"):
            row = f"{base} {row}"
        else:
            base = row
        tables[name][row] = [(_label(h), _number(c)) for h, c in zip(header[1:], cells[1:])]
    return tables


@pytest.fixture(scope="module")
def tables():
    if not TABLES_MD.is_file():
        pytest.skip(f"no {TABLES_MD} (the paper's tables, beside the checkout)")
    return paper_tables(TABLES_MD)


COMMITTED = {  # report config -> (table key, TABLES.md table, which of its columns)
    "egs/fleurs/conf/report.yaml": [("table1", "Table 1", slice(0, 5)), ("fig4", "Figure 4", None)],
    "egs/dhvani/conf/report.yaml": [("table1", "Table 1", slice(5, 10))],
    "egs/mls/conf/report.yaml": [("table3", "Table 3", slice(None))],
    "egs/noss/conf/report_mix.yaml": [("table2", "Table 2", slice(None))],
}


def test_tables_md_parses_as_expected(tables):
    assert tables["Table 3"]["BEST-RQ"] == [("de", 5.1), ("en", 7.7), ("es", 5.3), ("fr", 6.4), ("it", 10.1),
                                           ("nl", 11.2), ("avg", 7.6)]
    assert [label for label, _ in tables["Table 1"]["w2v-BERT + LASR"]] == ["O", "NO", "overall acc", "F1", "EER"] * 2
    assert list(tables["Table 2"]) == ["BEST-RQ", "BEST-RQ + LASR", "BEST-RQ + MASR", "BEST-RQ + GeoMASR",
                                       "BEST-RQ + TextMASR"]
    assert tables["Figure 4"]["bs"][:3] == [("BEST-RQ bs", 0.22), ("sr", 0), ("hr", 0.77)]


@pytest.mark.parametrize("config", sorted(COMMITTED))
def test_committed_paper_blocks_equal_the_papers_tables(config, tables):
    block = load_report_config(str(ROOT / config))["paper"]
    assert "2307.10982" in block["source"]
    for key, name, columns in COMMITTED[config]:
        table = block[key]
        assert table["table"].startswith(name), (config, key)
        if key == "fig4":
            # TABLES.md: rows = true locale; columns = BEST-RQ bs sr hr, MASR bs sr hr
            source = {true: [v for _, v in cells] for true, cells in tables[name].items()}
            n = len(table["columns"])
            assert list(table["columns"]) == list(source)
            assert [row["name"] for row in table["rows"]] == ["BEST-RQ", "MASR"]
            for i, row in enumerate(table["rows"]):
                assert row["values"] == {true: values[i * n:(i + 1) * n] for true, values in source.items()}, row
            continue
        expected = {row: dict(cells[columns]) for row, cells in tables[name].items()}
        assert {row["name"]: row["values"] for row in table["rows"]} == expected, config
        assert list(table["columns"]) == list(next(iter(expected.values()))), config


def test_committed_paper_rows_match_our_models():
    """The paper's BEST-RQ / +LASR / +MASR rows sit under egs/mix's runs of the same method wherever
    the report config has a row (figure) for it; the others (w2v-BERT, GeoMASR, ...) under none."""
    models = {"BEST-RQ": "pretrain_bestrq", "BEST-RQ + LASR": "continue_lasr", "BEST-RQ + MASR": "continue_masr",
              "MASR": "continue_masr"}
    for config, entries in COMMITTED.items():
        loaded = load_report_config(str(ROOT / config))
        for key, _, _ in entries:
            ours = ({loaded[key]["baseline"], loaded[key]["model"]} if key == "fig4"
                    else {row["model"] for row in loaded[key]})
            for row in loaded["paper"][key]["rows"]:
                expected = models.get(row["name"])
                assert row.get("model") == (expected if expected in ours else None), (config, key, row["name"])
    mls = load_report_config(str(ROOT / "egs" / "mls" / "conf" / "report.yaml"))["paper"]["table3"]
    assert mls["columns"] == {"de": "deu", "en": "eng", "es": "spa", "fr": "fra", "it": "ita", "nl": "nld",
                              "avg": "avg"}
    assert "paper" not in load_report_config(str(ROOT / "egs" / "noss" / "conf" / "report.yaml"))
