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


def test_variants_table_averages_the_seeds_of_a_run(tmp_path):
    from masr.report.docs import variants_table

    def log(path, accuracy, triplet):
        path.mkdir(parents=True)
        (path / "train_log.txt").write_text(
            "2026-01-01 00:00:00 step 30 | valid | loss 3.0 | accuracy 0.1\n"
            f"2026-01-01 00:00:01 step 60 | valid | loss 2.9 | accuracy {accuracy} | ssl_loss 2.8 | "
            f"lang_triplet {triplet} | lang_active 1 | lang_neg_differs_from_lasr 0.8\n")

    log(tmp_path / "continue_masr" / "seed1", 0.2, 0.19)
    log(tmp_path / "continue_masr" / "seed2", 0.4, 0.21)
    log(tmp_path / "continue_bestrq", 0.3, 0.0)  # a single run (no seed folders)
    lines = variants_table(str(tmp_path), ["continue_masr", "continue_bestrq", "continue_lasr"]).splitlines()
    assert lines[2] == "| continue_masr | 2 | 60 | 0.300 ± 0.141 | 2.800 ± 0.000 | 0.200 ± 0.014 | 1.000 ± 0.000 | 0.800 ± 0.000 |"
    assert lines[3].startswith("| continue_bestrq | 1 | 60 | 0.300 | 2.800 |")
    assert lines[4] == "| continue_lasr | not run | | | | | | |"


def test_gpu_tables_say_not_measured_until_gpu_sh_wrote_them(tmp_path):
    from masr.report.docs import gpu_tables

    assert gpu_tables(str(tmp_path / "gpu")).startswith("Not measured yet")
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "masr_overhead.md").write_text("Machine: NVIDIA H200\n\n| a |\n")
    (tmp_path / "gpu" / "pretrain_eager.md").write_text("Machine: NVIDIA H200\n\n| b |\n")
    text = gpu_tables(str(tmp_path / "gpu"))
    assert text.index("#### Pretraining step, eager") < text.index("#### MASR's overhead at the paper size")
    assert "| a |" in text and "| b |" in text and "Not measured" not in text
