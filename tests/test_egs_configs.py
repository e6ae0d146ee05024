"""The recipes under egs/: every config loads (models built on the meta device, so the paper-size ones
cost no memory), the paper-size pretraining model of egs/mix has ~0.6B parameters and its stage-4
continuations share its encoder and schedule, every run.sh and local script answers --help without
starting anything, and every README's run.sh commands use options and files that exist.

Measured here: egs/mix/conf/pretrain_bestrq.yaml builds 590,711,168 parameters (conformer encoder
579,674,112 with rope_sdpa attention, 128-channel convolutional subsampling 2,640,256, BEST-RQ
prediction head 8,396,800).
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from masr.features.cmvn import CMVNStats
from masr.train.schedule import warmup_decay_factor
from masr.utils.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EGS = ROOT / "egs"
MASR_SH = ROOT / "recipes" / "masr.sh"
RECIPES = sorted(p.parent for p in EGS.glob("*/run.sh"))
CONFIGS = sorted(EGS.glob("*/conf/*.yaml"))
MIX = EGS / "mix" / "conf"
CONTINUE = ("continue_bestrq", "continue_lasr", "continue_masr", "continue_geomasr", "continue_textmasr")


def rel(path):
    return str(Path(path).relative_to(ROOT))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A stand-in dump dir: what the configs read when they are loaded (CMVN stats, stream labels)."""
    d = tmp_path_factory.mktemp("dump")
    stats = CMVNStats(80)
    stats.add(np.zeros((2, 80), dtype="float32"))
    stats.save(str(d / "cmvn.ark"))
    (d / "utt2lang").write_text("a-1 deu\na-2 hin\n", encoding="utf-8")
    (d / "utt2geo").write_text("a-1 52.52 13.40\na-2 28.61 77.21\n", encoding="utf-8")
    (d / "text").write_text("a-1 hallo welt\na-2 namaste\n", encoding="utf-8")
    return d


def baseline_run(tmp, recipe, data_dir):
    """A pretraining run folder as masr.train.pretrain leaves it (config.yaml, overrides.yaml), for
    the stage-4 configs' ``ssl_from_run(baseline_dir)``: the recipe's own pretrain_bestrq.yaml."""
    run = tmp / f"baseline_{recipe}"
    if not run.is_dir():
        run.mkdir()
        shutil.copyfile(EGS / recipe / "conf" / "pretrain_bestrq.yaml", run / "config.yaml")
        (run / "overrides.yaml").write_text(yaml.safe_dump({"train_dir": str(data_dir), "exp_dir": str(run)}))
    return run


def placeholders(path):
    return re.findall(r"^([A-Za-z_]\w*):\s*!PLACEHOLDER", path.read_text(encoding="utf-8"), re.M)


def load_on_meta(path, tmp, data_dir, **extra):
    """Load a config with every !PLACEHOLDER filled, building its objects on the meta device."""
    values = {}
    for key in placeholders(path):
        if key in ("train_dir", "valid_dir", "dev_dir", "test_dir", "dump_dir"):
            values[key] = str(data_dir)
        elif key == "pretrain_langs":
            values[key] = str(data_dir / "utt2lang")
        elif key == "baseline_dir":
            values[key] = str(baseline_run(tmp, path.parent.parent.name, data_dir))
        elif key in ("exp_dir", "init_from", "pretrained"):
            values[key] = str(tmp / key)
        else:
            raise AssertionError(f"{rel(path)}: no test value for the placeholder '{key}'; add one here")
    values.update(extra)
    with torch.device("meta"):
        return load_config(str(path), values)


def state_shapes(module):
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


@pytest.fixture(scope="module")
def mix_configs(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("mix")
    return {name: load_on_meta(MIX / f"{name}.yaml", tmp, data_dir) for name in ("pretrain_bestrq", *CONTINUE)}


# ---- configs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_loads_and_builds_on_meta(path, tmp_path, data_dir):
    config = load_on_meta(path, tmp_path, data_dir)
    assert isinstance(config, dict) and config
    model = config.get("model")
    if isinstance(model, torch.nn.Module):
        assert {p.device.type for p in model.parameters()} == {"meta"}


def test_mix_pretraining_model_is_paper_size(mix_configs):
    model = mix_configs["pretrain_bestrq"]["model"]
    n = sum(p.numel() for p in model.parameters())
    assert 0.55e9 < n < 0.65e9, n  # 590,711,168 measured (module docstring)
    enc = model.encoder
    assert (model.d_model, model.num_layers) == (1024, 24)
    assert sum(p.numel() for p in enc.parameters()) > 0.55e9


def test_mix_continuations_share_the_baseline_encoder(mix_configs):
    base = state_shapes(mix_configs["pretrain_bestrq"]["model"])
    for name in CONTINUE:
        model = mix_configs[name]["model"]
        ssl = getattr(model, "ssl", model)  # continue_bestrq is the SSL model itself
        assert state_shapes(ssl) == base, name
        # masr.train.checkpoint.load_model_weights maps a BEST-RQ checkpoint into MASR as ssl.<name>
        own = state_shapes(model)
        prefix = "ssl." if ssl is not model else ""
        assert {prefix + k: v for k, v in base.items()}.items() <= own.items(), name
        if prefix:  # MASR adds its metadata streams only
            assert all(k.startswith(("ssl.", "streams.")) for k in own), name


def test_mix_steps_schedule_and_data_settings(mix_configs):
    # paper: BEST-RQ baseline 1.25M steps; MASR variants from its 1M-step checkpoint + 250k steps
    pre = mix_configs["pretrain_bestrq"]
    assert pre["max_steps"] == 1_250_000 and 1_000_000 in pre["keep_steps"]
    assert "--baseline pretrain_bestrq --baseline-step 1000000" in (EGS / "mix" / "run.sh").read_text()
    assert pre["weighted_sampling"] is True and pre["sharded"] is True
    factor = lambda step: warmup_decay_factor(step, pre["warmup_steps"], pre["max_steps"], pre["decay"],  # noqa: E731
                                              pre["min_lr_ratio"])
    for name in CONTINUE:
        c = mix_configs[name]
        assert 1_000_000 + c["max_steps"] == pre["max_steps"], name
        for key in ("max_batch_frames", "max_frames", "num_buckets", "weighted_sampling", "sharded", "grad_accum"):
            assert c[key] == pre[key], (name, key)
        # the continued LR goes from the baseline schedule's value at 1M to its value at 1.25M
        assert c["lr"] == pytest.approx(pre["lr"] * factor(1_000_000), rel=1e-3), name
        assert c["lr"] * c["min_lr_ratio"] == pytest.approx(pre["lr"] * factor(1_250_000), rel=1e-3), name


def test_mix_language_streams_use_lambda_16(mix_configs):
    for name in CONTINUE[1:]:
        streams = {s.name: s for s in mix_configs[name]["model"].streams}
        assert streams["lang"].weight == 16.0, name
    assert set(s.name for s in mix_configs["continue_geomasr"]["model"].streams) == {"lang", "geo"}
    assert set(s.name for s in mix_configs["continue_textmasr"]["model"].streams) == {"lang", "text"}


# ---- shell scripts ---------------------------------------------------------------------------

def run(args, cwd, timeout=30):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_ROOT")}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=str(cwd), env=env,
                          timeout=timeout)


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("script", sorted(EGS.glob("*/run.sh")) + sorted(EGS.glob("*/local/*.sh")), ids=rel)
def test_script_syntax_and_help(script, tmp_path):
    assert os.access(script, os.X_OK), f"{rel(script)} is not executable"
    r = run(["bash", "-n", script], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    before = listing(script.parent)
    r = run([script, "--help"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Usage" in r.stdout
    assert not re.search(r"stage \d+ \(\w+\)", r.stdout + r.stderr), "--help started a stage"
    assert listing(script.parent) == before and listing(tmp_path) == [], "--help created files"


# ---- READMEs ---------------------------------------------------------------------------------

def recipe_options(recipe):
    """Options a recipe's run.sh accepts: recipes/masr.sh's variables and the run.sh's own ones."""
    text = MASR_SH.read_text(encoding="utf-8")
    names = set(re.findall(r"^([a-z][a-z0-9_]*)=", text.split("print_help()", 1)[0], re.M))
    options = {"--" + n.replace("_", "-") for n in names} | {"--help", "-h"}
    own = (recipe / "run.sh").read_text(encoding="utf-8")
    for pattern in re.findall(r"^\s*((?:--[a-z0-9-]+\|?)+)\)", own, re.M):
        options |= set(pattern.split("|"))
    return options


def readme_commands(text):
    """Command lines of a README (code blocks, continuation lines joined; inline code spans)."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        commands += [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += re.findall(r"`([^`\n]+)`", text)
    return commands


def run_sh_calls(command, recipe):
    """(recipe folder, arguments) of each run.sh call in a command line."""
    calls = []
    for m in re.finditer(r"(\S*)run\.sh\b", command):
        path = m.group(1)
        where = recipe if path in ("", "./") else (recipe / path).resolve() if path.startswith("..") else None
        if where is None and path.startswith("egs/"):
            where = ROOT / path
        if where is None or not (where / "run.sh").is_file() or where == ROOT:
            continue
        try:
            tokens = shlex.split(command[m.end():], comments=True)
        except ValueError:
            raise AssertionError(f"unbalanced quotes in README command: {command}") from None
        args = []
        for tok in tokens:
            if tok in ("&&", "||", "|", ";"):
                break
            args.append(tok)
        calls.append((where, args))
    return calls


@pytest.mark.parametrize("readme", sorted(EGS.glob("*/README.md")), ids=rel)
def test_readme_commands_use_existing_options_and_files(readme):
    recipe = readme.parent
    text = readme.read_text(encoding="utf-8")
    calls = [c for command in readme_commands(text) for c in run_sh_calls(command, recipe)]
    assert any(where == recipe for where, _ in calls), f"{rel(readme)} shows no ./run.sh command"
    for where, args in calls:
        known = recipe_options(where)
        i = 0
        while i < len(args):
            tok = args[i]
            if tok.startswith("-"):
                name = tok.split("=", 1)[0]
                assert name in known, f"{rel(readme)}: {rel(where)}/run.sh has no option {name}"
                i += 1 if ("=" in tok or name in ("--help", "-h")) else 2
            else:
                i += 1
    for ref in re.findall(r"(?<![\w/.-])((?:\.\./[\w-]+/)?(?:conf|local)/[\w.-]+\.(?:yaml|conf|sh))", text):
        assert (recipe / ref).is_file(), f"{rel(readme)} names {ref}, which does not exist"
