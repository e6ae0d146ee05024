"""benchmarks/pretrain_step.py and benchmarks/gpu.sh at toy size on the CPU: the commands a GPU session
runs work, and their tables have the rows and ratios they promise."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pretrain_step  # noqa: E402

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out


def test_named_sizes_are_the_configs_models():
    sizes = pretrain_step.named_sizes()
    assert sizes["mini"]["d_model"] == 144 and sizes["mini"]["num_layers"] == 4
    assert sizes["paper"]["d_model"] == 1024 and sizes["paper"]["num_layers"] == 24
    assert sizes["recipe"] == {"d_model": 576, "num_layers": 12, "nhead": 8, "d_ffn": 2048, "kernel_size": 31,
                               "codebook_size": 8192, "codebook_dim": 16}


def test_side_by_side_table_has_every_model_and_ratios(tmp_path):
    out = tmp_path / "table.md"
    pretrain_step.main(["--sizes", "tiny", "--batch", "2x120", "--rounds", "2", "--warmup", "0",
                        "--subsampling-channels", "0", "8", "--masr-stream", "--out", str(out)])
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| tiny |")]
    models = [row.split("|")[3].strip() for row in rows]
    assert models == ["masr/relpos_xl", "masr/rope_sdpa", "masr/relpos_xl+sub8", "masr/rope_sdpa+sub8",
                      "masr/rope_sdpa+sub8+lang", "speechbrain"]
    for row in rows[:-1]:  # every masr row has its ratio to SpeechBrain in the same run
        assert re.search(r"\*\*\d+\.\d\dx\*\*", row), row
    assert "MASR stream: " in rows[4] and "over masr/rope_sdpa+sub8" in rows[4]
    assert "Machine: " in text and "Command: `python benchmarks/pretrain_step.py --sizes tiny" in text


@pytest.mark.skipif(not os.path.exists("/usr/bin/timeout"), reason="needs coreutils timeout")
def test_gpu_script_dry_run_writes_every_table(tmp_path):
    """Every GPU command at toy size on the CPU (compilation included: about 2 minutes here)."""
    done = subprocess.run(["bash", str(ROOT / "benchmarks/gpu.sh"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tables = {p.name: p.read_text() for p in tmp_path.glob("*.md")}
    assert set(tables) == {"pretrain_eager.md", "pretrain_compiled.md", "masr_overhead.md", "triplet_mining.md",
                           "audio_shards.md"}
    assert "| FLAC shards: read + decode + filterbank (fbank_device: cpu) |" in tables["audio_shards.md"]
    assert "| tiny | compiled | masr/rope_sdpa+sub64 |" in tables["pretrain_compiled.md"]
    assert "| tiny | compiled | speechbrain |" in tables["pretrain_compiled.md"]
    assert "MASR stream: " in tables["masr_overhead.md"]
    assert re.search(r"^\| 128 \|", tables["triplet_mining.md"], flags=re.M)
