"""Fault injection: training survives kill -9 (also mid-checkpoint), broken checkpoints, a second
writer, a dead launcher and non-finite losses, and says clearly what it refuses.

Real processes are killed with SIGKILL where the fault is a kill; a corrupted file is corrupted
on disk. "Equal" means bit-identical weights (max abs difference 0) to an uninterrupted run.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import kaldiio
import numpy as np
import pytest
import torch

from masr.train import pretrain
from masr.train.checkpoint import MANIFEST, CheckpointError, list_checkpoints
from masr.train.lock import exp_dir_lock
from masr.train.pretrain import build_pretrain_trainer
from masr.train.trainer import EmptyEpochError, Trainer
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import tiny_bestrq_config
from tests.helpers.runs import trainer_config as config

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: A tiny BEST-RQ on one thread for the runs in separate processes: 12 steps, a checkpoint every 2.
TINY = tiny_bestrq_config(seed=3, cpu_threads=1, max_batch_frames=400, max_steps=12, lr=0.003, warmup_steps=2,
                          keep_checkpoints=3, max_nonfinite_steps=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dump dir, the config, and the weights of an uninterrupted 12-step run."""
    root = tmp_path_factory.mktemp("faults")
    dump = make_dump_dir(str(root / "dump"), num_utts=24)
    conf = root / "tiny.yaml"
    conf.write_text(TINY)
    straight = str(root / "straight")
    assert subprocess.run(_command(conf, dump, straight), env=_env(), cwd=ROOT).returncode == 0
    return {"root": root, "dump": dump, "conf": conf, "straight": _final_weights(straight)}


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")


def _command(conf, dump, exp, *extra):
    return [sys.executable, "-m", "masr.train.pretrain", str(conf), "--train_dir", dump, "--exp_dir", exp,
            "--device", "cpu", *extra]


def _final_weights(exp):
    step, path = list_checkpoints(os.path.join(exp, "checkpoints"))[-1]
    assert step == 12
    return torch.load(os.path.join(path, "state.pt"), weights_only=True)["model"]


def _assert_equal_weights(a, b):
    assert a.keys() == b.keys()
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert diff == 0.0, f"max abs difference {diff}"


def _wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------------------- kill -9


@pytest.mark.parametrize("trial", [0, 1])
def test_kill_9_at_a_random_step_then_resume_equals_the_uninterrupted_run(setup, tmp_path, trial):
    step = random.Random(trial).randint(2, 6)   # of 12: the kill lands in the middle of the run
    exp = str(tmp_path / "exp")
    log = os.path.join(exp, "train_log.txt")
    proc = subprocess.Popen(_command(setup["conf"], setup["dump"], exp), env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: os.path.isfile(log) and f"step {step} |" in open(log).read() or proc.poll() is not None,
                  60, f"step {step}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    resumed = subprocess.run(_command(setup["conf"], setup["dump"], exp), env=_env(), cwd=ROOT,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in open(os.path.join(exp, "train_log.txt")).read()
    _assert_equal_weights(_final_weights(exp), setup["straight"])


DRIVER = """\
import os, signal, sys
import masr.train.checkpoint as ckpt
save = ckpt._save_durably
def dying_save(obj, path):
    if os.path.basename(path) == "state.pt" and "step-00000006" in path:
        save(obj, path)
        with open(path, "r+b") as f:   # the kill arrives in the middle of writing the file
            f.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, path)
ckpt._save_durably = dying_save
from masr.train import pretrain
sys.exit(pretrain.main(sys.argv[1:]))
"""


def test_kill_9_in_the_middle_of_a_checkpoint_write_then_resume_equals_the_uninterrupted_run(setup, tmp_path):
    exp = str(tmp_path / "exp")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    args = _command(setup["conf"], setup["dump"], exp)[3:]
    died = subprocess.run([sys.executable, str(driver), *args], env=_env(), cwd=ROOT, capture_output=True)
    assert died.returncode == -signal.SIGKILL
    assert os.path.isdir(os.path.join(exp, "checkpoints", "step-00000006.tmp"))
    assert [s for s, _ in list_checkpoints(os.path.join(exp, "checkpoints"))] == [2, 4]
    resumed = subprocess.run(_command(setup["conf"], setup["dump"], exp), env=_env(), cwd=ROOT,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not os.path.exists(os.path.join(exp, "checkpoints", "step-00000006.tmp"))  # the leftover is removed
    _assert_equal_weights(_final_weights(exp), setup["straight"])


# ---------------------------------------------------------------------------- broken checkpoints


def _train(dump, exp, **kw):
    trainer = build_pretrain_trainer(config(dump, exp, **kw))
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """In-process runs (tests.test_trainer's config): 8 steps straight, checkpoints at 4 and 8."""
    root = tmp_path_factory.mktemp("small")
    dump = make_dump_dir(str(root / "dump"), num_utts=24)
    straight = _train(dump, str(root / "straight"))
    return dump, {k: v.clone() for k, v in straight.model.state_dict().items()}


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


def _empty(path):
    open(path, "wb").close()


def _flip_a_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def _without_manifest_truncated(path):
    os.remove(os.path.join(os.path.dirname(path), MANIFEST))  # as written before manifests existed
    _truncate(path)


@pytest.mark.parametrize("damage", [_truncate, _empty, _flip_a_byte, _without_manifest_truncated])
def test_a_broken_newest_checkpoint_falls_back_to_the_older_one(small, tmp_path, damage):
    dump, straight = small
    exp = str(tmp_path / "exp")
    _train(dump, exp, checkpoint_every=2, keep_checkpoints=3)     # checkpoints at steps 4, 6 and 8
    shutil.rmtree(os.path.join(exp, "checkpoints", "step-00000008"))  # as if killed before step 8
    newest = os.path.join(exp, "checkpoints", "step-00000006")
    damage(os.path.join(newest, "state.pt"))
    resumed = _train(dump, exp)                          # on to step 8
    log = open(os.path.join(exp, "train_log.txt")).read()
    assert f"WARNING: checkpoint {newest} is broken" in log and "step-00000004" in log.split("is broken")[1]
    for key, value in straight.items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_no_intact_checkpoint_is_a_clear_error_naming_each(small, tmp_path, capsys):
    dump, _ = small
    exp = str(tmp_path / "exp")
    _train(dump, exp, max_steps=6, checkpoint_every=4)
    for step in (4, 6):
        _empty(os.path.join(exp, "checkpoints", f"step-{step:08d}", "state.pt"))
    with pytest.raises(CheckpointError, match=r"no checkpoint can be resumed") as err:
        _train(dump, exp)
    assert "step-00000004: state.pt has 0 bytes" in str(err.value)
    assert "step-00000006: state.pt has 0 bytes" in str(err.value)


def test_a_missing_rng_file_is_refused_unless_inexact_resume_is_allowed(small, tmp_path):
    dump, _ = small
    exp = str(tmp_path / "exp")
    _train(dump, exp, max_steps=4)
    ckpt = os.path.join(exp, "checkpoints", "step-00000004")
    os.remove(os.path.join(ckpt, "rng.rank0.pt"))
    with pytest.raises(CheckpointError, match=r"rng.rank0.pt are missing.*--allow-inexact-resume"):
        _train(dump, exp)
    trainer = _train(dump, exp, allow_inexact_resume=True)
    assert trainer.step == 8
    assert "resuming " + ckpt + " although its random state" in open(os.path.join(exp, "train_log.txt")).read()


def test_another_number_of_processes_is_refused_unless_inexact_resume_is_allowed(small, tmp_path):
    dump, _ = small
    exp = str(tmp_path / "exp")
    _train(dump, exp, max_steps=4)
    ckpt = os.path.join(exp, "checkpoints", "step-00000004")
    manifest = json.load(open(os.path.join(ckpt, MANIFEST)))
    manifest["world_size"] = 2                      # as written by a 2-process run
    shutil.copy(os.path.join(ckpt, "rng.rank0.pt"), os.path.join(ckpt, "rng.rank1.pt"))
    manifest["files"]["rng.rank1.pt"] = dict(manifest["files"]["rng.rank0.pt"])
    json.dump(manifest, open(os.path.join(ckpt, MANIFEST), "w"))
    with pytest.raises(CheckpointError, match="written by 2 process"):
        _train(dump, exp)
    assert _train(dump, exp, allow_inexact_resume=True).step == 8


def _interrupted_run(setup, exp):
    """A 12-step run of the tiny config left as if killed just after its step-8 checkpoint."""
    argv = [str(setup["conf"]), "--train_dir", setup["dump"], "--exp_dir", exp, "--device", "cpu"]
    assert pretrain.main(argv) == 0
    for step in (10, 12):
        shutil.rmtree(os.path.join(exp, "checkpoints", f"step-{step:08d}"))
    return argv


def test_entry_point_exits_1_without_traceback_on_a_refused_resume(setup, tmp_path, capsys):
    exp = str(tmp_path / "exp")
    argv = _interrupted_run(setup, exp)
    os.remove(os.path.join(exp, "checkpoints", "step-00000008", "rng.rank0.pt"))
    capsys.readouterr()
    assert pretrain.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "step-00000008: resuming would not continue the run exactly" in err
    assert "Traceback" not in err
    assert pretrain.main(argv + ["--allow-inexact-resume"]) == 0


# --------------------------------------------------------------------------- writers, launcher


def test_a_second_writer_in_the_same_run_folder_is_refused(setup, tmp_path, capsys):
    exp = str(tmp_path / "exp")
    proc = subprocess.Popen(_command(setup["conf"], setup["dump"], exp, "--max_steps", "100000"), env=_env(),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: list_checkpoints(os.path.join(exp, "checkpoints")), 60, "the first run's checkpoint")
        overrides = open(os.path.join(exp, "overrides.yaml")).read()
        code = pretrain.main([str(setup["conf"]), "--train_dir", setup["dump"], "--exp_dir", exp, "--device", "cpu",
                              "--max_steps", "5"])
        assert code == 1
        assert f"another process (pid {proc.pid}) is training in this folder" in capsys.readouterr().err
        assert open(os.path.join(exp, "overrides.yaml")).read() == overrides  # nothing of the run touched
        assert proc.poll() is None  # the first run trains on
    finally:
        proc.kill()
        proc.wait()
    with exp_dir_lock(exp):  # the kernel released the killed run's lock
        pass


def _children(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(name))
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_torchrun_workers_die_with_a_killed_launcher(setup, tmp_path):
    exp = str(tmp_path / "exp")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    launcher = subprocess.Popen(torchrun + ["-m", "masr.train.pretrain"] + _command(setup["conf"], setup["dump"], exp,
                                "--max_steps", "100000")[3:], env=_env(), cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        _wait_for(lambda: list_checkpoints(os.path.join(exp, "checkpoints")), 90, "the workers' first checkpoint")
        workers = _children(launcher.pid)
        assert len(workers) == 2
        launcher.send_signal(signal.SIGKILL)   # the launcher alone, as an OOM killer would
        launcher.wait()
        _wait_for(lambda: not any(_alive(p) for p in workers), 15, "the workers to die")
    finally:
        for pid in [launcher.pid] + workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        launcher.wait()


EXTRACTION_DRIVER = """\
import sys, time
from masr.utils.parallel import parallel_map
if __name__ == "__main__":
    for _ in parallel_map(time.sleep, [60] * 4, nj=2, chunksize=1):
        pass
"""


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_extraction_workers_die_with_a_killed_parent(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(EXTRACTION_DRIVER)
    parent = subprocess.Popen([sys.executable, str(driver)], env=_env(), cwd=ROOT)
    workers = []
    try:
        _wait_for(lambda: len([p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]) == 2, 60,
                  "two workers")
        workers = [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]
        time.sleep(1.5)  # past their initialiser, sleeping in their first job
        assert parent.poll() is None and all(_alive(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not any(_alive(p) for p in workers), 15, "the workers to die")
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_moved_run_folder_resumes(setup, tmp_path):
    first, moved = str(tmp_path / "first"), str(tmp_path / "moved")
    argv = _interrupted_run(setup, first)
    shutil.move(first, moved)
    assert pretrain.main(argv[:argv.index("--exp_dir")] + ["--exp_dir", moved, "--device", "cpu"]) == 0
    log = open(os.path.join(moved, "train_log.txt")).read()
    assert f"resumed from {moved}/checkpoints/step-00000008" in log
    _assert_equal_weights(_final_weights(moved), setup["straight"])


# -------------------------------------------------------------------------- non-finite, empty


def _poison(dump, utt):
    """Give one utterance of a dump features so large (finite) that the model's activations overflow."""
    scp = dict(line.split(maxsplit=1) for line in open(os.path.join(dump, "feats.scp")).read().splitlines())
    mat = np.array(kaldiio.load_mat(scp[utt].strip()))
    mat[5:9] = 3e38
    ark = os.path.join(dump, "poison.ark")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{ark}.scp") as writer:
        writer(utt, mat)
    scp[utt] = open(f"{ark}.scp").read().split(maxsplit=1)[1].strip()
    with open(os.path.join(dump, "feats.scp"), "w") as f:
        f.writelines(f"{u} {scp[u].strip()}\n" for u in sorted(scp))


def test_a_nan_loss_stops_training_with_exit_1_naming_the_batch(tmp_path, capsys):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=12)
    _poison(dump, "spk1_0005")
    conf = tmp_path / "tiny.yaml"
    conf.write_text(TINY)
    exp = str(tmp_path / "exp")
    code = pretrain.main([str(conf), "--train_dir", dump, "--exp_dir", exp, "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "spk1_0005" in err and "max_nonfinite_steps 0" in err and "gradient norm nan" in err
    assert "Traceback" not in err
    for _, path in list_checkpoints(os.path.join(exp, "checkpoints")):  # none saved holds a NaN
        state = torch.load(os.path.join(path, "state.pt"), weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_non_finite_steps_up_to_the_limit_are_skipped_and_counted(tmp_path):
    dump = make_dump_dir(str(tmp_path / "dump"), num_utts=12)
    _poison(dump, "spk1_0005")
    exp = str(tmp_path / "exp")
    trainer = build_pretrain_trainer(config(dump, exp, max_steps=10, max_nonfinite_steps=100))
    trainer.fit()
    assert trainer.step == 10 and trainer.nonfinite_steps >= 1   # every epoch meets the utterance once
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    log = open(os.path.join(exp, "train_log.txt")).read()
    assert log.count("skipped without updating the model") == trainer.nonfinite_steps
    state = torch.load(os.path.join(list_checkpoints(os.path.join(exp, "checkpoints"))[-1][1], "state.pt"),
                       weights_only=True)
    assert state["trainer"]["nonfinite_steps"] == trainer.nonfinite_steps   # resumed runs keep counting


class _NoBatches:
    """A batch sampler with nothing to give (e.g. a rank left without shards)."""

    def __iter__(self):
        return iter([])

    def __len__(self):
        return 0

    def set_epoch(self, epoch):
        pass

    def load_state_dict(self, state):
        pass


def test_an_epoch_without_batches_is_an_error_not_an_endless_loop(small, tmp_path):
    dump, _ = small
    built = build_pretrain_trainer(config(dump, str(tmp_path / "exp")))
    trainer = Trainer(built.model, built.optimizer, built.scheduler, built.dataset, _NoBatches(), built.collate_fn,
                      built.step_fn, str(tmp_path / "exp"), max_steps=2, progress=False)
    with pytest.raises(EmptyEpochError, match="epoch 0 has no batch"):
        trainer.fit()
