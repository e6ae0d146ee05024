"""Log-mel filterbank features and global CMVN statistics; the features stage (``extract``), audio
shards (``audio_shards``), filterbanks on the fly from them (``onthefly``) and batched on a GPU
(``batched_fbank``)."""

from masr.features.cmvn import CMVNStats, GlobalCMVN
from masr.features.fbank import FbankConfig, compute_fbank, expected_num_frames

__all__ = ["FbankConfig", "compute_fbank", "expected_num_frames", "CMVNStats", "GlobalCMVN"]
