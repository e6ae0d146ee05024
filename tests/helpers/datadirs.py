"""Tiny data dirs with real audio, generated on the fly."""

import numpy as np
import soundfile as sf

from masr.data.datadir import write_data_dir


def make_data_dir(root, n=6, sr=16000):
    """``n`` noise recordings of 0.3 s, 0.4 s, ... by 2 speakers under ``root`` (a pathlib.Path) and the
    data dir ``root/data`` listing them; returns (data dir, {utt: samples})."""
    rng = np.random.default_rng(0)
    wav, utt2spk, lengths = {}, {}, {}
    for i in range(n):
        utt = f"spk{i % 2}_{i:03d}"
        samples = int(sr * (0.3 + 0.1 * i))
        path = root / "wav" / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, rng.uniform(-0.3, 0.3, samples).astype(np.float32), sr)
        wav[utt], utt2spk[utt], lengths[utt] = str(path), f"spk{i % 2}", samples
    write_data_dir(root / "data", {"wav.scp": wav, "utt2spk": utt2spk,
                                   "utt2lang": dict.fromkeys(wav, "hrv"),
                                   "text": dict.fromkeys(wav, "dobar dan")})
    return root / "data", lengths
