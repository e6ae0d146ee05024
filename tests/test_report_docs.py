"""masr.report.docs: generated README tables."""

import pytest

from masr.report.docs import fill, language_table, read_data_stats, replace_block, split_table

TSV = """split\tlang\tutterances\tspeakers\thours
pretrain\thrv\t4\t2\t0.01
pretrain\tall\t4\t2\t0.01
train\tbos\t3\t1\t0.005
train\thrv\t5\t2\t0.02
train\tall\t8\t3\t0.025
"""


@pytest.fixture
def rows(tmp_path):
    path = tmp_path / "data_stats.tsv"
    path.write_text(TSV)
    return read_data_stats(path)


def test_split_table_counts_languages_per_split(rows):
    assert split_table(rows).splitlines()[2:] == ["| pretrain | 1 | 4 | 2 | 0.01 |", "| train | 2 | 8 | 3 | 0.03 |"]


def test_language_table_marks_absent_splits(rows):
    assert language_table(rows).splitlines() == [
        "| language | pretrain | train |", "|---|---:|---:|", "| bos | - | 3 |", "| hrv | 4 | 5 |"]


def test_fill_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- BEGIN t -->\nstale\n<!-- END t -->\noutro\n")
    fill(readme, {"t": "| fresh |"})
    assert readme.read_text() == "intro\n<!-- BEGIN t -->\n| fresh |\n<!-- END t -->\noutro\n"
    with pytest.raises(ValueError, match="BEGIN missing"):
        replace_block(readme.read_text(), "missing", "x")
