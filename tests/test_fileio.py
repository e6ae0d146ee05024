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


def test_atomic_open_gives_the_mode_of_a_plain_open(tmp_path):
    # mkstemp creates 0600 files; results must be readable like any other file
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with atomic_open(tmp_path / "atomic.txt") as f:
        f.write("x")
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
