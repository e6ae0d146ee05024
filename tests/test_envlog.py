"""masr.utils.envlog: env.log records versions, the checkout's commit and the GPUs, and never
fails because a probe (git, nvidia-smi) is missing or broken."""

import os
import shutil
import subprocess
import sys

import torch

from masr.utils import envlog
from masr.utils.envlog import git_state, write_env_log


def fields(text):
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith(" "))


def checkout_commit():
    """What git says about the folder holding masr, or None when it is not a checkout's top."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        top = subprocess.run([git, "rev-parse", "--show-toplevel"], cwd=envlog.ROOT, capture_output=True,
                             text=True, timeout=30, check=True).stdout.strip()
        if os.path.realpath(top) != os.path.realpath(envlog.ROOT):
            return None
        return subprocess.run([git, "rev-parse", "HEAD"], cwd=envlog.ROOT, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def test_env_log_has_versions_command_and_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "hparams/a b.yaml", "--seed", "1"])
    path = write_env_log(tmp_path / "exp")
    assert path == str(tmp_path / "exp" / "env.log")
    got = fields(open(path, encoding="utf-8").read())
    assert got["torch"] == torch.__version__
    assert got["command"] == "train.py 'hparams/a b.yaml' --seed 1"
    assert got["CUDA available"] == str(torch.cuda.is_available())
    assert got["torch CUDA version"] == str(torch.version.cuda)
    assert got["CPU count"].startswith(str(os.cpu_count()))
    for key in ("date", "host", "python", "platform", "torchaudio", "speechbrain", "numpy"):
        assert got[key], key
    assert "\nnvidia-smi:" in open(path, encoding="utf-8").read()
    expected = checkout_commit()
    assert got["git commit"] == (expected or "unknown")
    if expected:
        assert got["git dirty"] == "no" or got["git dirty"].startswith("yes (")
    assert os.listdir(tmp_path / "exp") == ["env.log"]  # written atomically: no temporary file left


def test_env_log_lists_the_declared_distributions(tmp_path):
    text = open(write_env_log(tmp_path), encoding="utf-8").read()
    listed = dict(line.strip().split("==", 1) for line in text.split("declared distributions:\n", 1)[1].splitlines())
    assert {"torch", "numpy", "speechbrain", "kaldiio", "safetensors"} <= set(listed)
    assert listed["numpy"] == __import__("numpy").__version__
    assert all(version for version in listed.values())  # a version or "not installed", never empty


def test_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    assert git_state(str(tmp_path)) == ("unknown", "unknown")
    # an installed copy inside some other repository is not that repository's commit
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        (tmp_path / "site-packages").mkdir()
        assert git_state(str(tmp_path / "site-packages")) == ("unknown", "unknown")
    monkeypatch.setattr(envlog, "ROOT", str(tmp_path / "site-packages"))
    got = fields(open(write_env_log(tmp_path / "run"), encoding="utf-8").read())
    assert got["git commit"] == "unknown" and got["git dirty"] == "unknown"


def test_no_git_and_no_nvidia_smi_on_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    got = fields(open(write_env_log(tmp_path / "run"), encoding="utf-8").read())
    assert got["nvidia-smi"] == "not found"
    assert got["git commit"] == "unknown"
    assert got["torch"] == torch.__version__


def test_a_failing_nvidia_smi_is_reported_not_raised(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\n"
                    "exit 9\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    got = fields(open(write_env_log(tmp_path / "run"), encoding="utf-8").read())
    assert got["nvidia-smi"].startswith("failed (exit status 9: NVIDIA-SMI has failed")


def test_nvidia_smi_gpu_list_is_recorded(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '0, NVIDIA H200, 570.86.15, 143771 MiB'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    text = open(write_env_log(tmp_path / "run"), encoding="utf-8").read()
    assert "\nnvidia-smi:\n  0, NVIDIA H200, 570.86.15, 143771 MiB\n" in text
