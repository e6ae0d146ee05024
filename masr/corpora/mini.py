"""The embedded corpus: multilingual, multi-speaker, transcribed speech built offline.

Speech is synthesized in-process with eSpeak NG (``masr.synth.Espeak``) from sentences of real
words (the ``wordfreq`` lists of each language). Each language gets pseudo-speakers (an eSpeak
voice variant, a base pitch, a pitch range, a speaking rate, a background-noise level) with a
home location drawn inside a region where the language is spoken. Everything is drawn from the
config's ``seed`` *before* any audio is made, so the corpus does not depend on ``nj``.

Splits (the paper's setting, in miniature):

- ``pretrain``: speakers of the *overlapped* languages only (``pretrain: true``);
- ``train`` / ``dev`` / ``test``: every language, disjoint speakers, so dev/test speakers are
  never heard in pretraining or training and results split into overlapped vs non-overlapped.

Output::

    <db>/wav/<iso>/<speaker>/<utt>.wav     16-bit PCM at ``sample_rate``
    <db>/speakers.tsv                      who each pseudo-speaker is
    <data>/<split>/{wav.scp, utt2spk, spk2utt, text, utt2dur, utt2lang, utt2geo, utt2gender}

Usage: ``python -m masr.corpora.mini conf/corpus.yaml --db db --data data --nj 2``
"""

import dataclasses
import functools
import os
import random
import sys
import time
import unicodedata

import numpy as np
import soundfile as sf

from masr.audio import resample
from masr.data.datadir import write_data_dir
from masr.utils.config import make_parser, parse_arguments
from masr.utils.fileio import atomic_open
from masr.utils.parallel import parallel_map
from masr.utils.progress import from_config, progress

SPLITS = ("pretrain", "train", "dev", "test")

_SERBIAN_DIGRAPHS = {"lj": "љ", "nj": "њ", "dž": "џ"}
_SERBIAN_LETTERS = dict(zip("abcčćdđefghijklmnoprsštuvzž", "абцчћдђефгхијклмнопрсштувзж"))


def serbian_cyrillic(word):
    """Transliterate a Serbian Latin word to Cyrillic; ``None`` if it has foreign letters.

    Example
    -------
    >>> serbian_cyrillic("ljubav"), serbian_cyrillic("džep"), serbian_cyrillic("wifi")
    ('љубав', 'џеп', None)
    """
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] in _SERBIAN_DIGRAPHS:
            out.append(_SERBIAN_DIGRAPHS[word[i:i + 2]])
            i += 2
        elif word[i] in _SERBIAN_LETTERS:
            out.append(_SERBIAN_LETTERS[word[i]])
            i += 1
        else:
            return None
    return "".join(out)


_TRANSLITERATIONS = {"serbian_cyrillic": serbian_cyrillic}


def in_script(word, scripts):
    """Whether every character of ``word`` belongs to one of the Unicode ``scripts``.

    Example
    -------
    >>> in_script("ありがとう", ["HIRAGANA", "KATAKANA"]), in_script("日本", ["HIRAGANA"])
    (True, False)
    """
    for ch in word:
        name = unicodedata.name(ch, "")
        if not any(s in name for s in scripts) or unicodedata.category(ch) in ("Nd", "No"):
            return False
    return True


def load_vocabulary(lang, vocab_size):
    """The ``vocab_size`` most frequent usable words of one language entry of the config.

    A word is usable when all its characters are in the language's script (after the optional
    transliteration); numbers, punctuation and foreign-script words are dropped.
    """
    import logging

    import wordfreq

    logging.getLogger("wordfreq").setLevel(logging.ERROR)  # 'bs' -> 'sh' is expected
    scripts = lang["script"] if isinstance(lang["script"], list) else [lang["script"]]
    convert = _TRANSLITERATIONS[lang["transliterate"]] if lang.get("transliterate") else None
    words, seen = [], set()
    for word in wordfreq.top_n_list(lang["words"], vocab_size * 4):
        if convert is not None:
            word = convert(word)
            if word is None:
                continue
        if word not in seen and in_script(word, scripts):
            seen.add(word)
            words.append(word)
        if len(words) == vocab_size:
            break
    if len(words) < 50:
        raise ValueError(f"language '{lang['iso']}': only {len(words)} usable words in wordfreq list '{lang['words']}'")
    return words


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A pseudo-speaker: who it is and how eSpeak renders it."""

    spk: str
    iso: str
    split: str
    voice: str
    gender: str
    pitch: int
    pitch_range: int
    rate: int
    snr_db: float
    lat: float
    lon: float


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance to synthesize."""

    utt: str
    speaker: Speaker
    text: str
    rate: int
    noise_seed: int


def plan_corpus(config):
    """Draw every speaker, text and synthesis parameter from ``config['seed']``.

    Arguments
    ---------
    config : dict
        The loaded ``conf/corpus.yaml``.

    Returns
    -------
    list of Utterance
        Sorted by utterance id.
    """
    rng = random.Random(config["seed"])
    vc = config["voices"]
    n_spk, n_utt = config["speakers"], config["utts_per_speaker"]
    lo_words, hi_words = config["words_per_utt"]
    utterances = []
    for lang in config["languages"]:
        vocab = load_vocabulary(lang, config["vocab_size"])
        variants = [(v, "m") for v in vc["male"]] + [(v, "f") for v in vc["female"]]
        rng.shuffle(variants)
        splits = [s for s in SPLITS if s != "pretrain" or lang.get("pretrain", False)]
        index = 0
        for split in splits:
            for _ in range(n_spk[split]):
                variant, gender = variants[index % len(variants)]
                index += 1
                lat_lo, lat_hi, lon_lo, lon_hi = lang["region"]
                spk = Speaker(
                    spk=f"{lang['iso']}{index:02d}", iso=lang["iso"], split=split,
                    voice=f"{lang['voice']}+{variant}", gender=gender,
                    pitch=rng.randint(*vc["pitch"]), pitch_range=rng.randint(*vc["pitch_range"]),
                    rate=rng.randint(*vc["rate"]), snr_db=round(rng.uniform(*vc["snr_db"]), 1),
                    lat=round(rng.uniform(lat_lo, lat_hi), 4), lon=round(rng.uniform(lon_lo, lon_hi), 4),
                )
                for k in range(n_utt[split]):
                    words = [rng.choice(vocab) for _ in range(rng.randint(lo_words, hi_words))]
                    utterances.append(Utterance(
                        utt=f"{spk.spk}_{k + 1:04d}", speaker=spk, text=" ".join(words),
                        rate=spk.rate + rng.randint(-vc["rate_jitter"], vc["rate_jitter"]),
                        noise_seed=rng.getrandbits(32),
                    ))
    return sorted(utterances, key=lambda u: u.utt)


_ENGINE = None


def _engine():
    global _ENGINE
    if _ENGINE is None:
        from masr.synth.espeak import Espeak

        _ENGINE = Espeak()
    return _ENGINE


def render(utt, sample_rate):
    """Synthesize one utterance: eSpeak, resampling, level and background noise.

    Returns
    -------
    numpy.ndarray
        float32 samples in [-1, 1] at ``sample_rate``.
    """
    tts = _engine()
    s = utt.speaker
    wav = tts.synth(utt.text, s.voice, rate=utt.rate, pitch=s.pitch, pitch_range=s.pitch_range,
                    seed=utt.noise_seed)
    wav = resample(wav.astype(np.float32) / 32768.0, tts.sample_rate, sample_rate)
    rng = np.random.default_rng(utt.noise_seed)
    wav *= 10 ** (rng.uniform(-6.0, 0.0) / 20) * 0.5 / max(float(np.abs(wav).max()), 1e-4)
    signal_power = float(np.mean(wav ** 2))
    noise = rng.standard_normal(len(wav)).astype(np.float32) * np.sqrt(signal_power / 10 ** (s.snr_db / 10))
    return np.clip(wav + noise, -1.0, 1.0)


def wav_path(db, utt):
    """Where the audio of ``utt`` lives under ``db``."""
    return os.path.join(db, "wav", utt.speaker.iso, utt.speaker.spk, f"{utt.utt}.wav")


def _synthesize_one(utt, db, sample_rate):
    path = wav_path(db, utt)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    wav = render(utt, sample_rate)
    with atomic_open(path, "wb") as f:
        sf.write(f, wav, sample_rate, subtype="PCM_16", format="WAV")
    return utt.utt, len(wav) / sample_rate


def synthesize(utterances, db, sample_rate, nj=1, show_progress=None):
    """Write every utterance's audio, ``nj`` processes in parallel; returns utt -> seconds.

    ``show_progress``: a bar of the utterances written, None on a terminal (rank 0), True forced,
    False off (:func:`masr.utils.progress.progress`).
    """
    work = functools.partial(_synthesize_one, db=db, sample_rate=sample_rate)
    return dict(progress(parallel_map(work, utterances, nj=nj), total=len(utterances), desc="mini synthesis",
                         unit="utt", enabled=show_progress))


def write_splits(utterances, durations, db, data):
    """Write ``<data>/<split>/`` Kaldi data dirs and ``<db>/speakers.tsv``."""
    for split in SPLITS:
        utts = [u for u in utterances if u.speaker.split == split]
        if not utts:
            continue
        write_data_dir(os.path.join(data, split), {
            "wav.scp": {u.utt: os.path.abspath(wav_path(db, u)) for u in utts},
            "utt2spk": {u.utt: u.speaker.spk for u in utts},
            "text": {u.utt: u.text for u in utts},
            "utt2dur": {u.utt: f"{durations[u.utt]:.3f}" for u in utts},
            "utt2lang": {u.utt: u.speaker.iso for u in utts},
            "utt2geo": {u.utt: f"{u.speaker.lat} {u.speaker.lon}" for u in utts},
            "utt2gender": {u.utt: u.speaker.gender for u in utts},
        })
    speakers = sorted({u.speaker for u in utterances}, key=lambda s: s.spk)
    fields = [f.name for f in dataclasses.fields(Speaker)]
    with atomic_open(os.path.join(db, "speakers.tsv")) as f:
        f.write("\t".join(fields) + "\n")
        for s in speakers:
            f.write("\t".join(str(getattr(s, k)) for k in fields) + "\n")


def build_corpus(config, db, data, nj=1):
    """Plan, synthesize and write the whole corpus; returns a summary dict."""
    start = time.time()
    utterances = plan_corpus(config)
    durations = synthesize(utterances, db, config["sample_rate"], nj=nj, show_progress=from_config(config))
    write_splits(utterances, durations, db, data)
    return {
        "utterances": len(utterances),
        "hours": sum(durations.values()) / 3600,
        "languages": len({u.speaker.iso for u in utterances}),
        "pretrain_languages": len({u.speaker.iso for u in utterances if u.speaker.split == "pretrain"}),
        "speakers": len({u.speaker.spk for u in utterances}),
        "seconds": time.time() - start,
    }


def main(argv=None):
    parser = make_parser("Build the embedded multilingual corpus (eSpeak NG + wordfreq).")
    parser.add_argument("--db", required=True, help="folder for the audio and speakers.tsv")
    parser.add_argument("--data", required=True, help="folder for the data dirs <data>/<split>")
    parser.add_argument("--nj", type=int, default=1, help="parallel synthesis processes")
    args, config = parse_arguments(parser, argv)
    s = build_corpus(config, args.db, args.data, nj=args.nj)
    print(f"mini corpus: {s['utterances']} utterances, {s['hours']:.2f} h of audio, "
          f"{s['languages']} languages ({s['pretrain_languages']} in pretraining), "
          f"{s['speakers']} speakers; built in {s['seconds']:.1f} s with nj={args.nj}")


if __name__ == "__main__":
    sys.exit(main())
