"""masr.utils.fileio: atomic writes leave the old file intact on failure."""

import os

import pytest

from masr.utils.fileio import atomic_open


def test_failed_write_keeps_previous_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "wav.scp"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["wav.scp"]


def test_binary_and_durable(tmp_path):
    path = tmp_path / "sub" / "x.bin"
    with atomic_open(path, "wb", durable=True) as f:
        f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
