"""Tiny corpus trees in the release layouts the preparers read (``masr.corpora``): FLEURS (Hugging
Face), MLS (OpenSLR 94) and Common Voice. Shared by the preparers' tests (tests/test_fleurs.py,
tests/test_mls.py, tests/test_pretrain_mix.py) and the end-to-end recipes (tests/test_egs_recipes.py)."""

import io
import os
import tarfile

import numpy as np
import soundfile as sf

SR = 16000

# ----------------------------------------------------------------------------- FLEURS

# locale -> split -> TSV rows (id, file_name, raw, normalised, chars, num_samples, gender)
FLEURS_ROWS = {
    "hr_hr": {
        "train": [
            ("11", "101.wav", "Dobar dan!", "dobar dan", "d o b a r | d a n", 1600, "FEMALE"),
            ("11", "102.wav", "Dobar dan!", "dobar dan", "d o b a r | d a n", 2400, "MALE"),  # same id
            ("12", "103.wav", "Hvala.", "hvala", "h v a l a", 3200, "MALE"),
        ],
        "dev": [("13", "201.wav", "Da.", "da", "d a", 1600, "FEMALE")],
        "test": [("14", "301.wav", "Ne.", "ne", "n e", 2000, "MALE")],
    },
    "sr_rs": {
        "train": [("11", "501.wav", "Добар дан!", "добар дан", "д о б а р | д а н", 4000,
                   "OTHER")],
        "dev": [("13", "601.wav", "Да.", "да", "д а", 1600, "MALE")],
        "test": [("14", "701.wav", "Не.", "не", "н е", 2400, "FEMALE")],
    },
    "fil_ph": {
        "train": [("12", "801.wav", "Salamat.", "salamat", "s a l a m a t", 2800, "FEMALE")],
        "dev": [("13", "901.wav", "Oo.", "oo", "o o", 1600, "FEMALE")],
        "test": [("14", "951.wav", "Hindi.", "hindi", "h i n d i", 1600, "MALE")],
    },
}


def fleurs_wav_bytes(num_samples):
    buf = io.BytesIO()
    t = np.arange(num_samples) / 16000
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 220 * t), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_fleurs(root, rows=FLEURS_ROWS, packed=True):
    """``<root>/data/<locale>/{<split>.tsv, audio/<split>.tar.gz}`` (members ``<split>/<file>``),
    or with ``packed=False`` the audio already unpacked into ``audio/<split>/``."""
    for locale, splits in rows.items():
        folder = os.path.join(root, "data", locale)
        os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
        for split, lines in splits.items():
            with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
                for row in lines:
                    f.write("\t".join(str(v) for v in row) + "\n")
            if packed:
                with tarfile.open(os.path.join(folder, "audio", f"{split}.tar.gz"), "w:gz") as t:
                    for row in lines:
                        data = fleurs_wav_bytes(row[5])
                        info = tarfile.TarInfo(f"{split}/{row[1]}")
                        info.size = len(data)
                        t.addfile(info, io.BytesIO(data))
            else:
                os.makedirs(os.path.join(folder, "audio", split), exist_ok=True)
                for row in lines:
                    with open(os.path.join(folder, "audio", split, row[1]), "wb") as f:
                        f.write(fleurs_wav_bytes(row[5]))
    return root


# ----------------------------------------------------------------------------- MLS

# language -> split -> [(MLS utt id, transcript, seconds, in segments.txt)]
# Speakers 1014 and 10148 in German: with MLS's "_" the utterance order would disagree with the
# speaker order ("10148_..." < "1014_..."); the "-" ids keep them consistent.
MLS_CORPUS = {
    "german": {
        "train": [("10148_10119_000000", "und so weiter", 0.25, True),
                  ("1014_20_000003", "guten  tag", 0.3, True),
                  ("1014_20_000001", "ein haus", 0.2, False)],  # duration from the audio header
        "dev": [("2222_30_000000", "hallo welt", 0.15, True)],
        "test": [("3333_40_000000", "auf wiedersehen", 0.2, True)],
    },
    "dutch": {
        "train": [("5555_60_000010", "goede morgen", 0.2, True), ("77_61_000002", "dank je wel", 0.25, True)],
        "dev": [("8888_70_000000", "tot ziens", 0.1, True)],
        "test": [("9999_80_000000", "een twee drie", 0.3, True)],
    },
}
MLS_LIMITED = {"german": {"9hr": ["10148_10119_000000", "1014_20_000003"], "1hr/0": ["1014_20_000001"],
                          "1hr/1": ["1014_20_000003"]},
               "dutch": {"9hr": ["5555_60_000010"], "1hr/0": ["77_61_000002"]}}


def tone(seconds, freq=300.0):
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_mls_language(root, language, corpus, codec="flac"):
    """``<root>/mls_<language>[_opus]`` with audio, transcripts, segments and limited lists."""
    folder = os.path.join(root, f"mls_{language}" + ("_opus" if codec == "opus" else ""))
    for split, utts in corpus.items():
        d = os.path.join(folder, split)
        os.makedirs(d)
        with open(os.path.join(d, "transcripts.txt"), "w") as t, open(os.path.join(d, "segments.txt"), "w") as s:
            for i, (utt, text, seconds, in_segments) in enumerate(utts):
                spk, book, _ = utt.split("_")
                audio = os.path.join(d, "audio", spk, book)
                os.makedirs(audio, exist_ok=True)
                kw = {"format": "OGG", "subtype": "OPUS"} if codec == "opus" else {"subtype": "PCM_16"}
                sf.write(os.path.join(audio, f"{utt}.{codec}"), tone(seconds, 200 + 50 * i), SR, **kw)
                t.write(f"{utt}\t{text}\n")
                if in_segments:
                    start = 10.0 + i
                    s.write(f"{utt}\thttp://www.archive.org/download/x/{book}.mp3\t{start}\t{start + seconds}\n")
    for sub, ids in MLS_LIMITED.get(language, {}).items():
        d = os.path.join(folder, "train", "limited_supervision", sub)
        os.makedirs(d)
        with open(os.path.join(d, "handles.txt"), "w") as f:
            f.write("".join(f"{u}\n" for u in ids))
    return folder


# ----------------------------------------------------------------------------- Common Voice

CV_NEW_HEADER = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender" \
                "\taccents\tvariant\tlocale\tsegment"
CV_OLD_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment"


def make_cv(root, version="cv-corpus-17.0-2024-03-15"):
    """Two locales: hi (new header, clip_durations.tsv) and pa-IN (old header, no durations file)."""
    clients = ["a" * 40 + "1", "b" * 40 + "2"]
    for locale, header, durations in (("hi", CV_NEW_HEADER, True), ("pa-IN", CV_OLD_HEADER, False)):
        folder = os.path.join(root, version, locale)
        os.makedirs(os.path.join(folder, "clips"))
        rows = {"train": [], "test": []}
        durs = []
        for i in range(4):
            clip = f"common_voice_{locale}_{100 + i}.mp3"
            sf.write(os.path.join(folder, "clips", clip), 0.1 * np.sin(np.arange(8000) / 5), 16000, format="MP3")
            durs.append(f"{clip}\t500")
            client = clients[i % 2]
            gender = "male_masculine" if i % 2 else "female_feminine"
            if header == CV_NEW_HEADER:
                line = f"{client}\t{clip}\tsid{i}\tsentence \"{i}\"  here\t\t2\t0\t\t{gender}\t\t\t{locale}\t"
            else:
                line = f"{client}\t{clip}\tsentence {i}\t2\t0\t\t{'male' if i % 2 else ''}\t\t{locale}\t"
            rows["train" if i < 3 else "test"].append(line)
        for split in ("train", "dev", "test"):
            with open(os.path.join(folder, f"{split}.tsv"), "w") as f:
                f.write("\n".join([header] + rows.get(split, [])) + "\n")
        if durations:
            with open(os.path.join(folder, "clip_durations.tsv"), "w") as f:
                f.write("\n".join(["clip\tduration[ms]"] + durs) + "\n")
    return root

