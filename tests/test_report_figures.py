"""masr.report.figures: Figure 3 selection, Figure 4 matrices, PNG output."""

import numpy as np
import pytest

from masr.report.figures import (confusion_submatrix, plot_confusions, plot_lang2vec_types,
                                 plot_relative_change, relative_change, row_normalise, sum_confusions)

PNG = b"\x89PNG\r\n\x1a\n"


def test_relative_change_selection():
    base = {"a": [0.4, 0.6], "b": 0.5, "c": 0.2, "d": 0.0, "e": 0.8, "f": 0.3}
    model = {"a": [0.9, 0.9], "b": 0.6, "c": 0.1, "d": 0.3, "e": 0.6, "g": 0.5}
    out = relative_change(base, model, threshold=0.25)
    # a: 0.5 -> 0.9 = +80%; b: +20% (omitted); c: -50%; e: -25% exactly (omitted, boundary inclusive)
    assert [lang for lang, _ in out["kept"]] == ["a", "c"]
    assert out["kept"][0][1] == pytest.approx(0.8) and out["kept"][1][1] == pytest.approx(-0.5)
    assert out["omitted"] == ["b", "e"]
    assert out["undefined"] == [("d", 0.3)]  # baseline 0: not plotted, reported
    assert out["missing"] == ["f", "g"]
    assert relative_change(base, model, threshold=0.1)["omitted"] == []


def test_sum_confusions_reorders_labels_and_checks_sets():
    labels, total = sum_confusions([(["a", "b"], [[1, 0], [2, 3]]), (["b", "a"], [[4, 1], [0, 2]])])
    assert labels == ["a", "b"] and total.tolist() == [[3, 0], [3, 7]]
    with pytest.raises(ValueError, match="label sets differ"):
        sum_confusions([(["a", "b"], [[1, 0], [0, 1]]), (["a", "c"], [[1, 0], [0, 1]])])


def test_confusion_submatrix_and_row_normalisation():
    labels = ["bos", "hrv", "rus", "srp"]
    conf = np.array([[4, 3, 2, 1],
                     [1, 7, 0, 2],
                     [0, 0, 10, 0],
                     [5, 0, 5, 0]])
    m, rows, cols, absent = confusion_submatrix(conf, labels, ["srp", "hrv", "bos", "mkd"])
    assert rows == ["srp", "hrv", "bos"] and cols == ["srp", "hrv", "bos", "other"] and absent == ["mkd"]
    assert m.tolist() == [[0, 0, 5, 5], [2, 7, 1, 0], [1, 3, 4, 2]]
    norm = row_normalise(m)
    np.testing.assert_allclose(norm.sum(axis=1), 1.0)
    np.testing.assert_allclose(norm[1], [0.2, 0.7, 0.1, 0.0])  # diagonal = the language's accuracy
    m, _, cols, _ = confusion_submatrix(conf, labels, ["hrv", "bos"], other=False)
    assert cols == ["hrv", "bos"] and m.tolist() == [[7, 1], [3, 4]]
    np.testing.assert_allclose(row_normalise(m), [[7 / 8, 1 / 8], [3 / 7, 4 / 7]])
    assert row_normalise([[0, 0]]).tolist() == [[0.0, 0.0]]


def test_figures_are_written_as_png(tmp_path):
    paths = [
        plot_lang2vec_types({"syntactic": [0.5, 0.52], "genetic": [0.45]}, [0.4, 0.42],
                            str(tmp_path / "fig2.png"), baseline_label="BEST-RQ"),
        plot_relative_change([("bos", 0.8), ("rus", -0.5)], {"rus"}, str(tmp_path / "fig3.png"), threshold=0.25),
        plot_confusions(np.eye(2, 3), np.full((2, 3), 1 / 3), ["hrv", "srp"], ["hrv", "srp", "other"],
                        str(tmp_path / "fig4.png"), titles=("BEST-RQ", "+MASR")),
    ]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig2.png", "fig3.png", "fig4.png"]
    with pytest.raises(ValueError):
        plot_relative_change([], set(), str(tmp_path / "empty.png"))
