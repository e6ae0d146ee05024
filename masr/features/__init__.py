"""Log-mel filterbank features and global CMVN statistics."""

from masr.features.cmvn import CMVNStats, GlobalCMVN
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames

__all__ = ["FbankConfig", "compute_fbank", "expected_num_frames", "CMVNStats", "GlobalCMVN"]
