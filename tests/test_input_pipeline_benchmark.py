"""benchmarks/input_pipeline.py on a tiny generated dump: one row per worker count, the counts of
the sampler's batches, and the step rate given or measured."""

import importlib.util
import os

import pytest

from masr.data.dataset import FeatsDataset
from masr.data.sampler import DynamicBucketBatchSampler
from tests.helpers.dumps import make_dump_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "egs/mini/conf/pretrain_bestrq.yaml")   # seed 1234, num_buckets 10, max_frames 1500


def _benchmark():
    spec = importlib.util.spec_from_file_location("input_pipeline", os.path.join(ROOT, "benchmarks/input_pipeline.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(path):
    """Rows of the Markdown table as dicts keyed by the header."""
    lines = [line for line in open(path, encoding="utf-8").read().splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]


def _number(cell):
    return float(cell.replace(",", "").rstrip("sx ").strip())


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_dump_dir(str(tmp_path_factory.mktemp("ip") / "dump"), num_utts=24, dim=80)


def test_one_row_per_worker_count_with_the_samplers_batches(dump, tmp_path):
    out = tmp_path / "input_pipeline.md"
    assert _benchmark().main([CONFIG, "--train-dir", dump, "--workers", "0", "1", "--batches", "3",
                              "--max-batch-frames", "300", "--step-ms", "10", "--out", str(out)]) == 0
    rows = _table(out)
    assert [r["workers"] for r in rows] == ["0", "1"]
    assert [r["prefetch"] for r in rows] == ["-", "2"]
    assert all(r["pin memory"] == "off" for r in rows)   # cpu
    ds = FeatsDataset(dump, max_frames=1500)
    first = list(DynamicBucketBatchSampler(ds.num_frames, 300, num_buckets=10, seed=1234))[:3]
    padded = sum(len(b) * max(ds.num_frames[i] for i in b) for b in first)
    for r in rows:
        assert int(r["batches"]) == 3
        assert int(r["padded frames"].replace(",", "")) == padded
        for key in ("steady batches/s", "load ms/batch", "padded frames/s", "s of audio/s", "headroom (loader / step)"):
            assert _number(r[key]) > 0, key
        assert _number(r["first batch ms (start-up)"]) >= 0
    text = out.read_text()
    assert "Machine: " in text and "--step-ms 10" in text and "Step: given: --step-ms 10 = 100.00 batches/s" in text


def test_measures_the_step_without_step_ms(dump, tmp_path):
    out = tmp_path / "input_pipeline.md"
    assert _benchmark().main([CONFIG, "--train-dir", dump, "--workers", "0", "--batches", "2",
                              "--max-batch-frames", "300", "--steps", "1", "--warmup", "0", "--out", str(out)]) == 0
    rows = _table(out)
    assert len(rows) == 1 and int(rows[0]["batches"]) == 2
    assert "Step: measured: " in out.read_text()
    assert _number(rows[0]["headroom (loader / step)"]) > 0


def test_pinned_memory_needs_cuda(dump):
    with pytest.raises(SystemExit):
        _benchmark().main([CONFIG, "--train-dir", dump, "--device", "cpu", "--pin-memory", "on", "--step-ms", "10"])
