"""A new recipe from egs/TEMPLATE, as a user makes one: tools/new_recipe.sh, a folder of recordings
by language, pretrained encoders from elsewhere; stages 1, 2, 5 and 8 at tiny size end with a
LangID table. Runs in a copy of the repository layout under tmp (recipes/, tools/, .venv linked)."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import make_pretrain_run

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("hrv", "srp", "swe")


def _tree(tmp):
    """tmp laid out like the repository: recipes/, tools/, .venv and egs/TEMPLATE linked."""
    for name in ("recipes", "tools", ".venv"):
        (tmp / name).symlink_to(ROOT / name)
    (tmp / "egs").mkdir()
    (tmp / "egs" / "TEMPLATE").symlink_to(ROOT / "egs" / "TEMPLATE")
    return tmp


def _recordings(root, speakers=3, utts=2):
    rng = np.random.default_rng(0)
    for i, lang in enumerate(LANGS):
        for s in range(speakers):
            folder = root / lang / f"speaker{s}"
            folder.mkdir(parents=True)
            for u in range(utts):
                tone = np.sin(2 * np.pi * (200 + 150 * i) * np.arange(8000) / 16000)
                sf.write(folder / f"{u}.wav", (0.3 * tone + 0.05 * rng.normal(size=8000)).astype(np.float32), 16000)
    return root


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """Tiny BEST-RQ runs standing for egs/mini's three encoders (20 mel bins)."""
    root = tmp_path_factory.mktemp("models")
    dump = make_dump_dir(str(root / "dump"), num_utts=12)
    for name in ("continue_bestrq", "continue_lasr", "continue_masr"):
        make_pretrain_run(str(root / "exp" / name), dump, steps=2)
    (root / "pretrain_utt2lang").write_text("a hrv\nb srp\n")   # the encoders' pretraining languages
    (root / "fbank.yaml").write_text((ROOT / "egs" / "TEMPLATE" / "conf" / "fbank.yaml").read_text()
                                     .replace("num_mel_bins: 80", "num_mel_bins: 20"))
    return root


def test_a_recipe_from_the_template_runs_stages_1_2_5_8(tmp_path, encoders):
    tmp = _tree(tmp_path)
    made = subprocess.run([str(tmp / "tools" / "new_recipe.sh"), "mycorpus"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    recipe = tmp / "egs" / "mycorpus"
    assert (recipe / "run.sh").is_file() and not (recipe / "run.sh").is_symlink()
    wavs = _recordings(tmp / "corpus with spaces")
    langid_opts = ("--max_steps 4 --checkpoint_every 2 --warmup_steps 1 --max_batch_frames 2000 "
                   "--crop_frames 100 --eval_batch_frames 4000 --cpu_threads 1 --progress false")
    result = subprocess.run(
        [str(recipe / "run.sh"), "--model-exp", str(encoders / "exp"), "--nj", "1",
         "--langid-pretrain-langs", str(encoders / "pretrain_utt2lang"), "--fbank-config", str(encoders / "fbank.yaml"),
         "--langid-opts", langid_opts],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, CORPUS_WAVS=str(wavs)))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for split in ("train", "dev", "test"):
        assert (recipe / "data" / split / "utt2lang").is_file()
        assert (recipe / "dump" / split / "feats.scp").is_file()
    results = (recipe / "exp" / "RESULTS.md").read_text()
    for row in ("BEST-RQ", "+LASR", "+MASR"):
        line = next(line for line in results.splitlines() if line.startswith(f"| {row} "))
        assert "not run" not in line, line
    for stage in ("stage1.data", "stage2.features", "stage5.langid", "stage8.report"):
        assert (recipe / "exp" / "stamps" / f"{stage}.done").is_file()

    packed = subprocess.run(  # stage 9: the +MASR LangID model and its encoder, to share
        [str(recipe / "run.sh"), "--model-exp", str(encoders / "exp"), "--stage", "9",
         "--fbank-config", str(encoders / "fbank.yaml"), "--pack-models", "langid/continue_masr continue_masr"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, CORPUS_WAVS=str(wavs)))
    assert packed.returncode == 0, packed.stdout + packed.stderr
    for name in ("langid-continue_masr-seed1", "encoder-continue_masr-seed1"):
        assert sorted(os.listdir(recipe / "exp" / "packed" / name)) == ["README.md", "config.json", "model.safetensors"]


def test_stage_1_stops_when_langid_will_need_a_missing_utt2lang(tmp_path):
    tmp = _tree(tmp_path)
    subprocess.run([str(tmp / "tools" / "new_recipe.sh"), "nolang"], check=True, capture_output=True)
    src = tmp / "kaldi"
    from masr.corpora.own import prepare

    prepare(str(src), wav_root=str(_recordings(tmp / "wavs")), split="train:0.4 dev:0.3 test:0.3", check_lang=False)
    for split in ("train", "dev", "test"):
        os.remove(src / split / "utt2lang")
    os.remove(src / "all" / "wav.scp")
    result = subprocess.run([str(tmp / "egs" / "nolang" / "run.sh"), "--stop-stage", "2"], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, CORPUS_KALDI=str(src)))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "train/utt2lang: file not found (required by the recipe's later stages: LangID" in out, out
    assert not (tmp / "egs" / "nolang" / "exp" / "stamps" / "stage1.data.done").exists()
