"""The real-corpus recipes end to end on fixture trees, at toy size: egs/mix (stages 1-4) builds
the encoders that egs/fleurs (LangID, stages 1, 2, 5, 8) and egs/mls (ASR, stages 1, 2, 6) use.

The fixture trees are those of the preparers' tests (the corpora's release layouts, in
tests/helpers/corpora.py); the models are shrunk by command-line overrides, the paper-size configs
are otherwise used as they are.
"""

import os
import subprocess

import pytest

from masr.data.datadir import DataDir, read_kaldi_map
from tests.helpers.corpora import MLS_CORPUS, make_cv, make_fleurs
from tests.helpers.corpora import make_mls_language as make_language

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EGS = os.path.join(ROOT, "egs")
TINY = "--max_batch_frames 3000 --num_workers 0 --cpu_threads 1 --log_every 1"
ON_CPU = "--fbank_device cpu"   # egs/mix computes the filterbanks of its audio shards on the GPU


def run(recipe, *args, timeout=300):
    r = subprocess.run([os.path.join(EGS, recipe, "run.sh"), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}"
    return r


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """egs/mix stages 1-4 on MLS (German, Dutch) + Common Voice (hi, pa-IN) fixtures."""
    tmp = tmp_path_factory.mktemp("mix")
    for language, corpus in MLS_CORPUS.items():
        make_language(str(tmp / "mls"), language, corpus)
    make_cv(str(tmp / "cv"))
    out = tmp / "out"
    r = run("mix", "--stop-stage", 4, "--nj", 2, "--mls-root", tmp / "mls", "--cv-root", tmp / "cv",
            "--cv-locales", "hi,pa-IN", "--prep-opts", "--mls-languages de,nl",
            "--data", out / "data", "--dump", out / "dump", "--exp", out / "exp",
            "--shard-utts", 4, "--baseline-step", 2, "--lang2vec-types", "genetic",
            "--pretrain-opts", f"--max_steps 3 --keep_steps [2] --checkpoint_every 3 --keep_checkpoints 1 "
            f"--warmup_steps 1 --valid_every 3 --model.d_model 32 --model.num_layers 1 --model.nhead 2 "
            f"--model.d_ffn 64 --model.codebook_size 16 {TINY} {ON_CPU}",
            "--masr-opts", f"--max_steps 1 --warmup_steps 1 --valid_every 0 {TINY} {ON_CPU}")
    return out, r


def test_mix_prepares_and_mixes_the_corpora(mix):
    out, _ = mix
    pretrain = DataDir(out / "data" / "pretrain")
    assert set(pretrain.stream("corpus").values()) == {"cv", "mls"}
    assert sorted(set(pretrain.stream("lang").values())) == ["deu", "hin", "nld", "pan"]
    assert len(pretrain.utt_ids) == 11   # MLS train: 3 German + 2 Dutch; CV train: 3 hi + 3 pa-IN
    weights = (out / "data" / "pretrain" / "weights.tsv").read_text().splitlines()
    assert weights[0].split("\t") == ["corpus", "lang", "utterances", "weight"]
    shares = {tuple(line.split("\t")[:2]): float(line.split("\t")[3]) for line in weights[1:]}
    assert shares == pytest.approx({("cv", "hin"): 3 / 11, ("cv", "pan"): 3 / 11, ("mls", "deu"): 3 / 11,
                                    ("mls", "nld"): 2 / 11})
    # the corpora's dev splits (CV's is empty here) are held out for the validation loss
    assert sorted(DataDir(out / "data" / "dev").stream("lang").values()) == ["deu", "nld"]
    assert (out / "data" / "pretrain_langs.txt").read_text().split() == ["deu", "hin", "nld", "pan"]
    stats = (out / "exp" / "data_stats.tsv").read_text().splitlines()
    assert "pretrain\tall\t11\t8\t0.0012" in stats
    by_corpus = (out / "exp" / "corpus_stats.tsv").read_text().splitlines()
    assert [line.split("\t")[:4] for line in by_corpus[1:]] == [
        ["pretrain", "cv", "2", "6"], ["pretrain", "mls", "2", "5"], ["pretrain", "all", "4", "11"],
        ["dev", "mls", "2", "2"], ["dev", "all", "2", "2"]]


def test_mix_trains_sharded_baseline_from_audio_shards_and_continues_from_the_kept_step(mix):
    out, r = mix
    assert (out / "dump" / "pretrain" / "shards.tsv").is_file()
    # audio shards, filterbanks on the fly: no stored features
    for split in ("pretrain", "dev"):
        assert (out / "dump" / split / "audio.scp").is_file() and not (out / "dump" / split / "feats.scp").exists()
    assert all(name.startswith("audio.") and name.endswith(".tar")
               for name in os.listdir(out / "dump" / "pretrain" / "data"))
    assert (out / "dump" / "pretrain" / "weights.tsv").is_file()
    ckpts = sorted(p.name for p in (out / "exp" / "pretrain_bestrq" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000003"]
    assert f"continuing from {out / 'exp' / 'pretrain_bestrq' / 'checkpoints' / 'step-00000002'}" in r.stdout
    for run_name in ("continue_lasr", "continue_masr", "continue_masr_genetic"):
        assert (out / "exp" / run_name / "seed1" / "encoder.pt").is_file(), run_name
        assert "lang_triplet" in (out / "exp" / run_name / "seed1" / "train_log.txt").read_text(), run_name


def test_fleurs_langid_on_the_mix_encoders(mix, tmp_path):
    out, _ = mix
    make_fleurs(str(tmp_path / "fleurs"))
    fl = tmp_path / "fl"
    run("fleurs", "--stop-stage", 8, "--nj", 2, "--data", fl / "data", "--dump", fl / "dump", "--exp", fl / "exp",
        "--local-data-opts", f"--data-root {tmp_path / 'fleurs'} --locales hr_hr,sr_rs,fil_ph",
        "--model-exp", out / "exp", "--langid-pretrain-langs", out / "data" / "pretrain" / "utt2lang",
        "--langid-models", "pretrain_bestrq continue_masr",
        "--langid-opts", f"--max_steps 2 --eval_batch_frames 3000 --crop_frames 100 --checkpoint_every 1 "
        f"--warmup_steps 1 {TINY}")
    assert sorted(set(read_kaldi_map(fl / "data" / "test" / "utt2lang").values())) == ["hrv", "srp", "tgl"]
    for model in ("pretrain_bestrq", "continue_masr"):
        assert (fl / "exp" / "langid" / model / "seed1" / "results.json").is_file(), model
    results = (fl / "exp" / "RESULTS.md").read_text()
    # none of the FLEURS fixture's languages is in the mix: all three are non-overlapped
    assert "O languages (0): -; NO languages (3): hrv, srp, tgl." in results
    assert "| BEST-RQ | 1 |" in results and "| +MASR | 1 |" in results


def test_mls_asr_on_the_mix_encoders(mix, tmp_path):
    out, _ = mix
    for language, corpus in MLS_CORPUS.items():   # 1.5-s utterances: enough CTC frames for the transcripts
        longer = {split: [(utt, text, 1.5, seg) for utt, text, _, seg in utts] for split, utts in corpus.items()}
        make_language(str(tmp_path / "mls"), language, longer)
    m = tmp_path / "m"
    run("mls", "--stop-stage", 6, "--nj", 2, "--data", m / "data", "--dump", m / "dump", "--exp", m / "exp",
        "--local-data-opts", f"--data-root {tmp_path / 'mls'} --languages de,nl",
        "--model-exp", out / "exp", "--asr-models", "continue_masr",
        "--asr-opts", f"--max_steps 2 --vocab_size 30 --freeze_encoder_steps 1 --eval_batch_frames 3000 "
        f"--checkpoint_every 1 --warmup_steps 1 {TINY}")
    results = (m / "exp" / "asr" / "continue_masr" / "seed1" / "results.json").read_text()
    assert '"deu"' in results and '"nld"' in results
