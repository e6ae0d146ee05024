"""masr.corpora.fleurs: data directories per split from tiny generated trees in the Hugging Face layout."""

import hashlib
import os
import subprocess

import pytest

from masr.corpora import fleurs
from masr.data.datadir import DataDir
from masr.data.validate import uriel_languages, validate_data_dir
from tests.helpers.corpora import FLEURS_ROWS as ROWS
from tests.helpers.corpora import make_fleurs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _expected(split, rows=ROWS):
    out = {}
    for locale, splits in rows.items():
        for sid, name, raw, norm, _, n, gender in splits[split]:
            out[f"{locale}-{sid}-{name[:-4]}"] = (locale, norm, n, gender)
    return out


def _digest(folder):
    h = hashlib.sha256()
    for split in sorted(os.listdir(folder)):
        for name in sorted(os.listdir(os.path.join(folder, split))):
            with open(os.path.join(folder, split, name), "rb") as f:
                h.update(f"{split}/{name}".encode() + f.read())
    return h.hexdigest()


def test_prepare_writes_valid_data_dirs_per_split(tmp_path):
    make_fleurs(str(tmp_path / "root"))
    out = tmp_path / "data"
    result = fleurs.prepare(str(tmp_path / "root"), str(out), locales=["hr_hr", "sr_rs", "fil_ph"])
    assert sorted(result) == ["dev", "test", "train"]
    codes = {"hr_hr": "hrv", "sr_rs": "srp", "fil_ph": "tgl"}
    for split in ("train", "dev", "test"):
        expected = _expected(split)
        report = validate_data_dir(out / split)  # audio, durations and URIEL codes checked
        assert report.num_utterances == report.num_speakers == len(expected)
        dd = DataDir(out / split)
        assert dd.utt_ids == sorted(expected)
        assert dd.stream("spk") == {u: u for u in expected}  # one pseudo-speaker per utterance
        assert dd.stream("text") == {u: e[1] for u, e in expected.items()}
        assert dd.stream("lang") == {u: codes[e[0]] for u, e in expected.items()}
        assert dd.stream("locale") == {u: e[0] for u, e in expected.items()}
        assert dd.durations() == {u: round(e[2] / 16000, 3) for u, e in expected.items()}
        for utt, path in dd.read("wav.scp").items():
            assert os.path.isabs(path) and path.endswith(f"/audio/{split}/{utt.rsplit('-', 1)[1]}.wav")
    # The train TSV of sr_rs has a gender OTHER row: no utt2gender for train, m/f elsewhere.
    assert not DataDir(out / "train").has("utt2gender")
    assert DataDir(out / "dev").stream("gender") == {"fil_ph-13-901": "f", "hr_hr-13-201": "f", "sr_rs-13-601": "m"}
    # Both recordings of sentence 11 in hr_hr are kept.
    assert {"hr_hr-11-101", "hr_hr-11-102"} <= set(DataDir(out / "train").utt_ids)


def test_rerun_gives_the_same_output_and_unpacked_folders_are_accepted(tmp_path):
    root = str(make_fleurs(str(tmp_path / "root")))
    out = str(tmp_path / "data")
    fleurs.prepare(root, out, locales="hr_hr sr_rs", splits=("train", "dev"))
    first = _digest(out)
    fleurs.prepare(root, out, locales="hr_hr,sr_rs", splits=("train", "dev"))  # archives already unpacked
    assert _digest(out) == first
    # Without the archives, the unpacked folders are used.
    for locale in ("hr_hr", "sr_rs"):
        for split in ("train", "dev"):
            os.remove(os.path.join(root, "data", locale, "audio", f"{split}.tar.gz"))
    fleurs.prepare(root, out, locales=["hr_hr", "sr_rs"], splits=("train", "dev"), extract=False)
    assert _digest(out) == first
    # Audio that was never packed (audio/<split>/ only) works as well.
    other = str(make_fleurs(str(tmp_path / "plain"), packed=False))
    fleurs.prepare(other, str(tmp_path / "data2"), locales=["hr_hr"], splits=("test",))
    validate_data_dir(tmp_path / "data2" / "test", check_lang=False)


def test_stale_utt2gender_is_removed(tmp_path):
    root = str(make_fleurs(str(tmp_path / "root")))
    out = str(tmp_path / "data")
    fleurs.prepare(root, out, locales=["hr_hr"], splits=("train",))
    assert os.path.isfile(os.path.join(out, "train", "utt2gender"))
    fleurs.prepare(root, out, locales=["hr_hr", "sr_rs"], splits=("train",))  # sr_rs brings gender OTHER
    assert not os.path.isfile(os.path.join(out, "train", "utt2gender"))
    validate_data_dir(os.path.join(out, "train"), check_audio=False, check_lang=False)


@pytest.mark.parametrize("line, problem", [
    ("15\t401.wav\tX.\tx\tx\t1600\n", "6 tab-separated field(s), expected 7"),
    ("15\t401.wav\tX.\tx\tx\tmany\tMALE\n", "num_samples 'many' is not a positive integer"),
    ("15\t401.wav\tX.\tx\tx\t1600\tUNKNOWN\n", "gender 'UNKNOWN'"),
    ("abc\t401.wav\tX.\tx\tx\t1600\tMALE\n", "id 'abc' is not a non-negative integer"),
])
def test_malformed_tsv_line_names_file_and_line(tmp_path, line, problem):
    root = str(make_fleurs(str(tmp_path / "root"), {"hr_hr": ROWS["hr_hr"]}, packed=False))
    tsv = os.path.join(root, "data", "hr_hr", "train.tsv")
    with open(tsv, "a", encoding="utf-8") as f:
        f.write(line)
    with pytest.raises(ValueError) as e:
        fleurs.prepare(root, str(tmp_path / "data"), locales=["hr_hr"], splits=("train",))
    assert f"{tsv}:4: " in str(e.value) and problem in str(e.value)


def test_missing_files_are_named(tmp_path):
    root = str(make_fleurs(str(tmp_path / "root"), {"hr_hr": ROWS["hr_hr"]}, packed=False))
    wav = os.path.join(root, "data", "hr_hr", "audio", "train", "102.wav")
    os.remove(wav)
    with pytest.raises(FileNotFoundError) as e:
        fleurs.prepare(root, str(tmp_path / "data"), locales=["hr_hr"], splits=("train",))
    assert wav in str(e.value) and "train.tsv:2" in str(e.value)
    with pytest.raises(FileNotFoundError, match="sr_rs not found under"):
        fleurs.prepare(root, str(tmp_path / "data"), locales=["sr_rs"])
    os.remove(os.path.join(root, "data", "hr_hr", "dev.tsv"))
    with pytest.raises(FileNotFoundError, match="dev.tsv: FLEURS transcript file not found"):
        fleurs.prepare(root, str(tmp_path / "data"), locales=["hr_hr"])
    with pytest.raises(FileNotFoundError, match=r"audio/test\.tar\.gz: audio archive not found"):
        import shutil
        shutil.rmtree(os.path.join(root, "data", "hr_hr", "audio", "test"))
        fleurs.prepare(root, str(tmp_path / "data"), locales=["hr_hr"], splits=("test",))
    with pytest.raises(ValueError, match="unknown FLEURS locale"):
        fleurs.prepare(root, str(tmp_path / "data"), locales=["hr"])


def test_locale_table_covers_102_locales_with_uriel_codes():
    assert len(fleurs.LOCALES) == 102
    assert list(fleurs.LOCALES) == sorted(fleurs.LOCALES)
    known = uriel_languages()
    rows = list(fleurs.LOCALES.values())
    assert [r.locale for r in rows if r.uriel not in known] == []
    assert len({r.uriel for r in rows}) == 102  # the code is also the LangID class: no two locales share one
    lacking = {r.locale: (r.iso639_3, r.uriel) for r in rows if r.iso639_3 not in known}
    assert lacking == fleurs.uriel_fallbacks()  # every code URIEL lacks has a stated stand-in ...
    assert all(fleurs.LOCALES[loc].note for loc in lacking)  # ... and a reason
    assert {r.locale: r.uriel for r in rows if r.locale in ("cmn_hans_cn", "fa_ir", "ms_my", "sw_ke", "ne_np")} == {
        "cmn_hans_cn": "cmn", "fa_ir": "pes", "ms_my": "zsm", "sw_ke": "swh", "ne_np": "nep"}


def test_download_urls(tmp_path, monkeypatch):
    fetched = []
    monkeypatch.setattr(fleurs, "fetch", lambda url, dest, progress=True: fetched.append((url, dest)))
    fleurs.download(str(tmp_path), ["hr_hr"], splits=("dev",))
    base = "https://huggingface.co/datasets/google/fleurs/resolve/main/data/hr_hr"
    assert fetched == [(f"{base}/dev.tsv", str(tmp_path / "data" / "hr_hr" / "dev.tsv")),
                       (f"{base}/audio/dev.tar.gz", str(tmp_path / "data" / "hr_hr" / "audio" / "dev.tar.gz"))]


def test_overlap_lists(tmp_path):
    spec = tmp_path / "pretrain.txt"
    spec.write_text("# pretraining languages\nhrv eng\nfil_ph, deu\n")
    o, no = fleurs.write_overlap(str(tmp_path / "out"), str(spec))
    assert o == ["deu", "eng", "hrv", "tgl"] and len(no) == 98
    assert (tmp_path / "out" / "langs_overlapped.txt").read_text() == "deu\neng\nhrv\ntgl\n"
    assert len((tmp_path / "out" / "langs_non_overlapped.txt").read_text().split()) == 98


def test_cli_and_shell_wrapper(tmp_path):
    root = str(make_fleurs(str(tmp_path / "root"), {k: ROWS[k] for k in ("hr_hr", "sr_rs")}))
    assert fleurs.main(["--data-root", root, "--out", str(tmp_path / "a"), "--locales", "hr_hr sr_rs",
                        "--pretrain-langs", "hrv"]) == 0
    assert (tmp_path / "a" / "langs_non_overlapped.txt").read_text() == "srp\n"
    assert fleurs.main(["--data-root", root, "--out", str(tmp_path / "x"), "--locales", "xx_yy"]) == 1
    script = os.path.join(ROOT, "egs", "fleurs", "local", "prepare_data.sh")
    run = subprocess.run([script, "--nj", "2", "--data", str(tmp_path / "b"), "--data-root", root,
                          "--locales", "hr_hr,sr_rs"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for split in ("train", "dev", "test"):
        with open(tmp_path / "a" / split / "text", "rb") as a, open(tmp_path / "b" / split / "text", "rb") as b:
            assert a.read() == b.read()
    run = subprocess.run([script, "--data", str(tmp_path / "c"), "--data-root", str(tmp_path / "none")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "not found under" in run.stderr


def test_repeated_file_name(tmp_path):
    root = str(make_fleurs(str(tmp_path / "root"), {"hr_hr": ROWS["hr_hr"]}, packed=False))
    tsv = os.path.join(root, "data", "hr_hr", "train.tsv")
    with open(tsv, encoding="utf-8") as f:
        first = f.readline()
    with open(tsv, "a", encoding="utf-8") as f:
        f.write(first)  # the same row again: kept once
    files = fleurs.prepare(root, str(tmp_path / "data"), locales=["hr_hr"], splits=("train",))
    assert sorted(files["train"]["wav.scp"]) == ["hr_hr-11-101", "hr_hr-11-102", "hr_hr-12-103"]
    with open(tsv, "a", encoding="utf-8") as f:
        f.write(first.replace("dobar dan\t", "laku noc\t"))  # same file, other text: refused
    with pytest.raises(ValueError, match=r"train\.tsv:5: file_name '101.wav' already listed on line 1"):
        fleurs.prepare(root, str(tmp_path / "data"), locales=["hr_hr"], splits=("train",))
