"""recipes/masr.sh --cmd slurm (tools/cmd.sh): each run of stages 2-7 as one `sbatch --wait` job.

A fake ``sbatch`` (and ``srun`` / ``scontrol`` for egs/mix/slurm/pretrain_multinode.sbatch) on PATH
records its argv and environment and runs the job script here; a fake launcher (``--launcher``)
records the command each run was given. With Debian's slurm-wlm installed and root, one test also
runs jobs on a real one-node Slurm cluster (skipped otherwise).
"""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.ddp import free_port

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

ROOT = Path(__file__).resolve().parents[1]
MASR_SH = ROOT / "recipes" / "masr.sh"
MULTINODE = ROOT / "egs" / "mix" / "slurm" / "pretrain_multinode.sbatch"

# sbatch [options] script [args]: records {"argv", "cwd", "env"} as a JSON line in $FAKE_SLURM_RECORD,
# runs the script with bash (output to --output, %j and %x replaced, %% -> %; the script's #SBATCH
# lines are options too, overridden by the command line's) and, with --wait, exits with its status;
# without --wait it leaves the job running and exits 0.
FAKE_SBATCH = r'''#!/usr/bin/env python3
import json, os, shlex, subprocess, sys
FLAGS = {"--wait", "-W", "--parsable", "--requeue", "--no-requeue", "--exclusive", "--hold", "-H",
         "--test-only", "--overcommit", "-O", "--contiguous", "--quiet", "-Q", "--verbose", "-v"}
argv = sys.argv[1:]
with open(os.environ["FAKE_SLURM_RECORD"], "a") as f:
    f.write(json.dumps({"prog": "sbatch", "argv": argv, "cwd": os.getcwd(),
                        "env": {k: v for k, v in os.environ.items() if k in ("CUDA_VISIBLE_DEVICES", "VIRTUAL_ENV")}}) + "\n")
if os.environ.get("FAKE_SBATCH_REJECT"):
    sys.exit("sbatch: error: invalid partition specified: " + os.environ["FAKE_SBATCH_REJECT"])
def parse(words, opts):
    i = 0
    while i < len(words) and words[i].startswith("-"):
        a = words[i]
        if a in FLAGS:
            opts[a] = True; i += 1
        elif a.startswith("--") and "=" in a:
            k, v = a.split("=", 1); opts[k] = v; i += 1
        else:
            opts[a] = words[i + 1]; i += 2
    return i
cli = {}
i = parse(argv, cli)
script, args = argv[i], argv[i + 1:]
header = []
for line in open(script).read().splitlines()[1:]:
    if line.startswith("#SBATCH"):
        header += shlex.split(line[len("#SBATCH"):])
    elif line.strip() and not line.startswith("#"):
        break
opts = {}
parse(header, opts)
opts.update(cli)
counter = os.environ["FAKE_SLURM_RECORD"] + ".jobid"
import fcntl
with open(counter, "a+") as f:   # concurrent submissions (--nj > 1) each get their own job id
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    job = int(f.read() or 0) + 1
    f.seek(0)
    f.truncate()
    f.write(str(job))
name = opts.get("--job-name", opts.get("-J", os.path.basename(script)))
out = opts.get("--output", opts.get("-o", f"slurm-{job}.out"))
out = out.replace("%%", "\0").replace("%j", str(job)).replace("%x", name).replace("\0", "%")
print(f"Submitted batch job {job}", flush=True)
env = dict(os.environ, SLURM_JOB_ID=str(job), SLURM_JOB_NAME=name, SLURM_SUBMIT_DIR=os.getcwd(),
           SLURM_JOB_NODELIST="fakenode1", SLURM_JOB_NUM_NODES="1", SLURM_NNODES="1")
with open(out, "a" if opts.get("--open-mode") == "append" else "w") as log:
    proc = subprocess.Popen(["bash", script, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
if "--wait" in opts or "-W" in opts:
    sys.exit(proc.wait())
'''

# srun [options] command...: records, then runs the command here (one task), exiting with its status
FAKE_SRUN = r'''#!/usr/bin/env python3
import json, os, subprocess, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_SLURM_RECORD"], "a") as f:
    f.write(json.dumps({"prog": "srun", "argv": argv, "cwd": os.getcwd(), "env": {}}) + "\n")
i = 0
while i < len(argv) and argv[i].startswith("-"):
    i += 1 if "=" in argv[i] or argv[i] in ("--kill-on-bad-exit",) else 2
sys.exit(subprocess.call(argv[i:], env=dict(os.environ, SLURM_PROCID="0", SLURM_NODEID="0")))
'''

FAKE_SCONTROL = r'''#!/usr/bin/env bash
echo "scontrol $*" >> "$FAKE_SLURM_RECORD.scontrol"
if [ "$1 $2" = "show hostnames" ]; then echo localhost; fi
'''

# the launcher of stages 3-6 (--launcher): records its argv, makes the run's checkpoints folder
# (stage 4 and 5-6 look for them), fails when an argument contains $FAKE_FAIL
FAKE_LAUNCHER = r'''#!/usr/bin/env python3
import json, os, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_LAUNCHER_RECORD"], "a") as f:
    f.write(json.dumps({"argv": argv, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                        "job": os.environ.get("SLURM_JOB_ID")}) + "\n")
exp_dir = argv[argv.index("--exp_dir") + 1]
print(f"launcher ran {argv[1]} in {exp_dir}")
if os.environ.get("FAKE_FAIL") and any(os.environ["FAKE_FAIL"] in a for a in argv):
    print("launcher: failing on purpose", flush=True)
    sys.exit(7)
os.makedirs(os.path.join(exp_dir, "checkpoints", "step-00000002"), exist_ok=True)
print("launcher done")
'''


def write_exe(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def output(r):
    return f"--- rc {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


@pytest.fixture
def fake(tmp_path):
    """A work folder (with a space in its name) with fake sbatch/srun/scontrol and launcher."""
    work = tmp_path / "my work"
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "sbatch", FAKE_SBATCH)
    write_exe(bin_dir / "srun", FAKE_SRUN)
    write_exe(bin_dir / "scontrol", FAKE_SCONTROL)
    launcher = write_exe(tmp_path / "launcher dir" / "fake launch", FAKE_LAUNCHER)
    work.mkdir()
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
               FAKE_SLURM_RECORD=str(tmp_path / "slurm.jsonl"), FAKE_LAUNCHER_RECORD=str(tmp_path / "launcher.jsonl"))
    env.pop("FAKE_FAIL", None)

    def recipe(*args, extra_env=None, timeout=120):
        return subprocess.run(["bash", str(MASR_SH), *map(str, args)], cwd=work, capture_output=True, text=True,
                              env=dict(env, **(extra_env or {})), timeout=timeout)

    class Fake:
        pass
    f = Fake()
    f.tmp, f.work, f.exp, f.env, f.recipe = tmp_path, work, work / "my exp", env, recipe
    f.launcher = launcher
    f.sbatch = lambda: [r for r in records(tmp_path / "slurm.jsonl") if r["prog"] == "sbatch"]
    f.launches = lambda: records(tmp_path / "launcher.jsonl")
    return f


SLURM_OPTS = ["--partition", "gpu", "--gres", "gpu:1", "--time", "1:00:00", "--comment", "two words"]
CMD_SLURM = "slurm --partition gpu --gres gpu:1 --time 1:00:00 --comment 'two words'"


def stages_3_to_6(fake, cmd, *more, **kw):
    """Stages 3-6 with the fake launcher: 1 pretraining, 2 continuations, 1 LangID, 1 ASR run."""
    return fake.recipe(
        "--corpus", "t", "--stage", 3, "--stop-stage", 6, "--nj", 2, "--cmd", cmd,
        "--data", "my data", "--dump", "my dump", "--exp", "my exp",
        "--launcher", f"'{fake.launcher}' --flag 'a b'",
        "--pretrain-configs", "conf/pre.yaml", "--pretrain-opts", "--note 'pre note' --path \"/x/y z\"",
        "--baseline", "pre", "--masr-configs", "conf/a.yaml conf/b.yaml", "--lang2vec-types", "",
        "--masr-opts", "--valid_dir 'my dump/dev 2'",
        "--langid-models", "a", "--langid-opts", "--x 'it''s'", "--asr-models", "b", "--asr-opts", "--y \"q\\\"uote\"",
        "--probe-models", "", *more, **kw)


# the runs of stages 3-6: (stage log folder, run name, the launcher's exp_dir)
RUNS = [("stage3.pretrain", "pre", "my exp/pre"),
        ("stage4.masr", "a.seed1", "my exp/a/seed1"), ("stage4.masr", "b.seed1", "my exp/b/seed1"),
        ("stage.langid", "a.seed1", "my exp/langid/a/seed1"), ("stage.asr", "b.seed1", "my exp/asr/b/seed1")]


def test_slurm_submits_each_run_as_one_job_with_the_users_options(fake):
    r = stages_3_to_6(fake, CMD_SLURM)
    assert r.returncode == 0, output(r)
    jobs = fake.sbatch()
    assert len(jobs) == len(RUNS), jobs
    by_name = {}
    for job in jobs:
        argv = job["argv"]
        assert argv[:2] == ["--wait", "--job-name"], argv
        # the user's options, verbatim and in order, after our job name; our --output after them
        assert argv[3:3 + len(SLURM_OPTS)] == SLURM_OPTS, argv
        assert argv[3 + len(SLURM_OPTS)] == "--output", argv
        assert job["cwd"] == str(fake.work)
        assert "CUDA_VISIBLE_DEVICES" not in job["env"]
        by_name[argv[2]] = argv
    for stage, run, _ in RUNS:
        stage_name = stage.replace("stage.", "stage")  # tools/jobs.sh folders: stage.langid -> job masr.t.stage.langid.
        name = f"masr.t.{stage}.{run}"
        assert name in by_name, (name, sorted(by_name), stage_name)
        argv = by_name[name]
        log = fake.exp / "log" / stage / f"{run}.log"
        assert argv[-2:] == [str(log), str(log.with_suffix(".sbatch"))]   # --output LOG, the job script
        assert log.with_suffix(".sbatch").is_file()
        text = log.read_text()
        assert "launcher done" in text and "# slurm job" in text, text
    # stage 3's output is also in the stage's log (as under --cmd local)
    assert "launcher done" in (fake.exp / "log" / "stage3.pretrain.log").read_text()
    for n in (3, 4, 5, 6):
        assert len(list((fake.exp / "stamps").glob(f"stage{n}.*.done"))) == 1, n
    # every run got its arguments intact: quoted values, paths with spaces
    launches = {tuple(x["argv"][x["argv"].index("--exp_dir") + 1:][:1]): x for x in fake.launches()}
    assert len(launches) == len(RUNS)
    for x in fake.launches():
        argv = x["argv"]
        assert argv[:2] == ["--flag", "a b"], argv
        assert x["job"] is not None and x["cuda"] is None
    pre = next(x["argv"] for x in fake.launches() if "conf/pre.yaml" in x["argv"])
    assert pre[-4:] == ["--note", "pre note", "--path", "/x/y z"], pre
    assert pre[pre.index("--train_dir") + 1] == "my dump/pretrain"
    cont = next(x["argv"] for x in fake.launches() if "conf/a.yaml" in x["argv"])
    assert cont[-2:] == ["--valid_dir", "my dump/dev 2"], cont
    assert cont[cont.index("--init_from") + 1] == "my exp/pre/checkpoints/step-00000002"
    assert cont[cont.index("--cpu_threads") + 1] == "1"   # no --cpus-per-task: Slurm's default, 1 CPU
    langid = next(x["argv"] for x in fake.launches() if "masr.downstream.langid" in x["argv"])
    assert langid[-2:] == ["--x", "its"], langid   # 'it''s': shell quoting, two quoted parts
    assert langid[langid.index("--pretrain_langs") + 1] == "my dump/pretrain/utt2lang"
    asr = next(x["argv"] for x in fake.launches() if "masr.downstream.asr" in x["argv"])
    assert asr[-2:] == ["--y", 'q"uote'], asr


def test_local_cmd_runs_the_same_commands_here_and_never_calls_sbatch(fake, tmp_path):
    r = stages_3_to_6(fake, "local")
    assert r.returncode == 0, output(r)
    assert fake.sbatch() == []
    local = fake.launches()
    assert all(x["job"] is None for x in local)
    for stage, run, _ in RUNS[1:]:   # stages 4-7: one log per run, as before
        assert "launcher done" in (fake.exp / "log" / stage / f"{run}.log").read_text()
        assert not (fake.exp / "log" / stage / f"{run}.sbatch").exists()
    assert not (fake.exp / "log" / "stage3.pretrain").exists()   # stage 3: its output in the stage log only
    assert "launcher done" in (fake.exp / "log" / "stage3.pretrain.log").read_text()
    # the same argv as under slurm, but for the CPU threads (nproc / nj here)
    shutil.rmtree(fake.work / "my exp")
    (tmp_path / "launcher.jsonl").unlink()
    r = stages_3_to_6(fake, CMD_SLURM + " --cpus-per-task 3")
    assert r.returncode == 0, output(r)

    def norm(xs):
        out = []
        for x in xs:
            a = list(x["argv"])
            if "--cpu_threads" in a:
                a[a.index("--cpu_threads") + 1] = "N"
            out.append(a)
        return sorted(out)
    assert norm(local) == norm(fake.launches())
    assert {x["argv"][x["argv"].index("--cpu_threads") + 1] for x in fake.launches() if "--cpu_threads" in x["argv"]} \
        == {"3"}


@pytest.mark.parametrize("failing, stage, failed_log", [
    ("conf/b.yaml", 4, "stage4.masr/b.seed1.log"),
    ("conf/pre.yaml", 3, "stage3.pretrain/pre.log"),
], ids=["stage4-run", "stage3-run"])
def test_a_failing_job_fails_its_stage_and_writes_no_stamp(fake, failing, stage, failed_log):
    r = stages_3_to_6(fake, CMD_SLURM, extra_env={"FAKE_FAIL": failing})
    assert r.returncode != 0, output(r)
    assert f"stage {stage} (" in r.stdout and "FAILED" in r.stdout + r.stderr, output(r)
    assert "failing on purpose" in (fake.exp / "log" / failed_log).read_text()
    stamps = sorted(p.name for p in (fake.exp / "stamps").glob("*.done"))
    assert stamps == [f"stage{n}.{name}.done" for n, name in [(3, "pretrain")] if n < stage]
    if stage == 4:   # the other run of the stage finished; the stage still failed
        assert "launcher done" in (fake.exp / "log" / "stage4.masr" / "a.seed1.log").read_text()
        assert "run b.seed1 FAILED" in r.stdout


def test_a_rejected_submission_fails_the_stage(fake):
    r = stages_3_to_6(fake, CMD_SLURM, "--stop-stage", 3, extra_env={"FAKE_SBATCH_REJECT": "gpu"})
    assert r.returncode != 0, output(r)
    assert "invalid partition specified" in r.stdout + r.stderr
    assert not (fake.exp / "stamps" / "stage3.pretrain.done").exists()
    assert fake.launches() == []


def test_nj_bounds_the_slurm_jobs_in_flight(fake, tmp_path):
    slow = write_exe(tmp_path / "slow launch", FAKE_LAUNCHER.replace('print("launcher done")',
                                                                   'import time; t0 = time.time(); time.sleep(0.6); '
                                                                   'print("launcher done", t0, time.time())'))
    (fake.exp / "pre" / "checkpoints" / "step-00000002").mkdir(parents=True)
    r = fake.recipe("--corpus", "t", "--stage", 4, "--stop-stage", 4, "--nj", 2, "--cmd", "slurm",
                    "--exp", "my exp", "--launcher", f"'{slow}'", "--baseline", "pre",
                    "--masr-configs", "conf/a.yaml conf/b.yaml conf/c.yaml conf/d.yaml", "--lang2vec-types", "",
                    "--seeds", "1", "--pretrain-configs", "")
    assert r.returncode == 0, output(r)
    spans = []
    for conf in "abcd":
        words = (fake.exp / "log" / "stage4.masr" / f"{conf}.seed1.log").read_text().split("launcher done")[1].split()
        spans.append((float(words[0]), float(words[1])))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = most = 0
    for _, d in events:
        now += d
        most = max(most, now)
    assert most == 2, spans
    assert len(fake.sbatch()) == 4


@pytest.mark.parametrize("args, message", [
    (["--cmd", "pbs -q x"], "--cmd must be 'local' or 'slurm"),
    (["--cmd", "local --x"], "--cmd local takes no options"),
    (["--cmd", "slurm --output x.log"], "'--output' is set by the recipe"),
    (["--cmd", "slurm -p 'gpu"], "--cmd: cannot split"),
    (["--cmd", "slurm", "--gpus", "0 1"], "--gpus is for --cmd local"),
    (["--pretrain-opts", "--note 'unclosed"], "--pretrain-opts: cannot split"),
    (["--launcher", ""], "--launcher must not be empty"),
], ids=["backend", "local-opts", "output", "quote", "gpus", "opts-quote", "launcher"])
def test_bad_cmd_and_opts_fail_before_any_stage(fake, args, message):
    r = fake.recipe("--exp", "my exp", *args)
    assert r.returncode == 2, output(r)
    assert message in r.stderr, output(r)
    assert "stage 1" not in r.stdout
    assert not fake.exp.exists() and fake.sbatch() == []


def test_slurm_without_sbatch_on_path(fake):
    env = {"PATH": ":".join(p for p in fake.env["PATH"].split(":")[1:])}
    if shutil.which("sbatch", path=env["PATH"]):
        pytest.skip("a real sbatch is installed")
    r = fake.recipe("--cmd", "slurm", extra_env=env)
    assert r.returncode == 2 and "no sbatch on PATH" in r.stderr, output(r)


# ---- egs/mix/slurm/pretrain_multinode.sbatch ------------------------------------------------


def test_multinode_sbatch_script_runs_torchrun_and_resumes_when_requeued(fake, tmp_path):
    """The script under the fake sbatch/srun (1 node, 1 process on CPU): a tiny real pretraining;
    then, its last checkpoint removed (preempted between checkpoints), the requeued job resumes."""
    from tests.helpers.dumps import make_dump_dir
    from tests.helpers.runs import tiny_bestrq_config

    # a copy of egs/mix's layout: the script sources ../../tools/env.sh
    egs_mix = tmp_path / "egs" / "mix"
    (egs_mix / "conf").mkdir(parents=True)
    (egs_mix / "exp" / "log").mkdir(parents=True)
    (egs_mix / "conf" / "pretrain_bestrq.yaml").write_text(
        tiny_bestrq_config(max_steps=4, checkpoint_every=2, cpu_threads=1, num_workers=0))
    make_dump_dir(str(egs_mix / "dump" / "pretrain"), num_utts=8)
    (tmp_path / "tools").symlink_to(ROOT / "tools")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = dict(fake.env, NPROC_PER_NODE="1", RDZV_PORT=str(free_port()), VALID_DIR="null",
               PYTHONPATH=str(ROOT))

    def run_job():   # --wait: the fake sbatch returns when the job has ended
        r = subprocess.run(["sbatch", "--wait", "--nodes", "1", "--gpus-per-node", "0", str(MULTINODE),
                            "--device", "cpu"], cwd=egs_mix, capture_output=True, text=True, env=env, timeout=240)
        job = r.stdout.split()[-1]
        log = _read(egs_mix / "exp" / "log" / f"masr.mix.pretrain.{job}.log")
        assert r.returncode == 0, output(r) + log
        return log

    log1 = run_job()
    assert "new run" in log1, log1
    srun = [x for x in records(tmp_path / "slurm.jsonl") if x["prog"] == "srun"][-1]["argv"]
    assert srun[:3] == ["--kill-on-bad-exit=1", "--nodes=1", "--ntasks-per-node=1"], srun
    t = srun.index("torchrun")
    assert srun[t + 1:t + 6] == ["--nnodes=1", "--nproc_per_node=1", "--rdzv_id=1", "--rdzv_backend=c10d",
                                 f"--rdzv_endpoint=localhost:{env['RDZV_PORT']}"], srun
    assert srun[t + 6:] == ["-m", "masr.train.pretrain", "conf/pretrain_bestrq.yaml", "--train_dir", "dump/pretrain",
                            "--valid_dir", "null", "--exp_dir", "exp/pretrain_bestrq", "--progress", "false",
                            "--device", "cpu"], srun
    # preempted after step 2's checkpoint: the requeued attempt resumes from it
    shutil.rmtree(egs_mix / "exp" / "pretrain_bestrq" / "checkpoints" / "step-00000004")
    log2 = run_job()
    assert "resuming from exp/pretrain_bestrq/checkpoints/step-00000002" in log2, log2
    train_log = _read(egs_mix / "exp" / "pretrain_bestrq" / "train_log.txt")
    assert "resumed from" in train_log and "(step 2" in train_log, train_log


def _read(path):
    return Path(path).read_text() if Path(path).exists() else ""


def test_multinode_sbatch_script_header():
    text = MULTINODE.read_text()
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8", "#SBATCH --requeue",
                 "#SBATCH --open-mode=append", "#SBATCH --signal=B:USR1@900"):
        assert line in text
    assert subprocess.run(["bash", "-n", str(MULTINODE)]).returncode == 0
    r = subprocess.run(["bash", str(MULTINODE)], cwd=ROOT, capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")})
    assert r.returncode == 2 and "submit from egs/mix" in r.stderr, output(r)


# ---- a real one-node Slurm cluster (Debian's slurm-wlm; needs root) -------------------------

SLURM_BINS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch", "/usr/bin/sinfo")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """slurmctld + slurmd + munged of this machine, private to the test (own ports, state, socket)."""
    if not all(os.access(b, os.X_OK) for b in SLURM_BINS) or os.geteuid() != 0:
        pytest.skip("needs root and slurm-wlm (apt-get install slurm-wlm)")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("spool", "state", "munge", "log"):
        (d / sub).mkdir()
    (d / "munge").chmod(0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname()
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=masrtest
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge/sock
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/builtin
MpiDefault=none
PlugStackConfig=/dev/null
NodeName={host} CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    env = dict(os.environ, SLURM_CONF=str(conf))
    pid_files = [d / "munge" / "pid", d / "slurmctld.pid", d / "slurmd.pid"]
    try:
        subprocess.run(["/usr/sbin/munged", f"--key-file={key}", f"--socket={d}/munge/sock", f"--pid-file={pid_files[0]}",
                        f"--log-file={d}/munge/log", f"--seed-file={d}/munge/seed", "-f"], check=True, timeout=30)
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf), "-i"], check=True, env=env, timeout=30)
        subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, env=env, timeout=30)
        for _ in range(60):
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env, timeout=30)
            if "idle" in r.stdout:
                break
            time.sleep(0.5)
        else:
            pytest.skip(f"the Slurm cluster did not come up: {r.stdout} {r.stderr}")
        yield env
    finally:
        for pid_file in reversed(pid_files):   # only the daemons this fixture started
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError):
                pass


def test_real_slurm_runs_stages_and_propagates_a_failure(fake, slurm_cluster):
    env = dict(fake.env, SLURM_CONF=slurm_cluster["SLURM_CONF"], PATH=os.environ["PATH"])   # the real sbatch
    r = stages_3_to_6(fake, "slurm --partition debug --time 10 --comment 'two words'", "--stop-stage", 4,
                      extra_env=dict(env, FAKE_FAIL="conf/b.yaml"), timeout=240)
    assert r.returncode != 0, output(r)
    assert "Submitted batch job" in r.stdout + r.stderr
    assert "launcher done" in (fake.exp / "log" / "stage3.pretrain.log").read_text()
    assert "launcher done" in (fake.exp / "log" / "stage4.masr" / "a.seed1.log").read_text()
    assert "failing on purpose" in (fake.exp / "log" / "stage4.masr" / "b.seed1.log").read_text()
    assert sorted(p.name for p in (fake.exp / "stamps").glob("*.done")) == ["stage3.pretrain.done"]
    jobs = {x["argv"][x["argv"].index("--exp_dir") + 1]: x["job"] for x in fake.launches()}
    assert all(job and job.isdigit() for job in jobs.values()), jobs   # each ran in a Slurm job
    q = subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=env, timeout=30)
    assert q.stdout.strip() == "", q.stdout
