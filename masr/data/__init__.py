"""Kaldi-style data directories: ``wav.scp``, ``utt2spk``, ``text``, ``utt2<key>`` metadata files."""

from masr.data.datadir import DataDir, DataDirError, read_kaldi_map, write_data_dir, write_kaldi_map

__all__ = ["DataDir", "DataDirError", "read_kaldi_map", "write_kaldi_map", "write_data_dir"]
