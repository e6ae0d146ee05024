"""tools/jobs.sh: parallel runs of stages 4-7, --nj at a time or one per GPU of --gpus."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_jobs(tmp_path, commands, nj=1, gpus=""):
    script = [f". {ROOT}/tools/jobs.sh"]
    for name, cmd in commands:
        script.append(f"add_job {name} {_quote(cmd)}")
    script.append(f"jobs_nj={nj} jobs_gpus='{gpus}' run_jobs {tmp_path / 'log'}")
    return subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=60)


def _quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def intervals(tmp_path, names):
    """(start, end, gpu) of each run, from what it wrote."""
    out = {}
    for name in names:
        start, end, gpu = (tmp_path / f"{name}.t").read_text().split()
        out[name] = (float(start), float(end), gpu)
    return out


def max_overlap(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = best = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def timed(tmp_path, name, seconds=0.4):
    return (f"s=$(date +%s.%N); sleep {seconds}; echo $s $(date +%s.%N) ${{CUDA_VISIBLE_DEVICES:-none}} "
            f"> {tmp_path}/{name}.t; echo last line of {name}")


def test_nj_bounds_the_runs_at_a_time_and_logs_each_run(tmp_path):
    names = [f"r{i}" for i in range(5)]
    r = run_jobs(tmp_path, [(n, timed(tmp_path, n)) for n in names], nj=2)
    assert r.returncode == 0, r.stdout + r.stderr
    spans = intervals(tmp_path, names)
    assert max_overlap([(s, e) for s, e, _ in spans.values()]) == 2
    assert all(gpu == "none" for _, _, gpu in spans.values())
    for n in names:
        assert (tmp_path / "log" / f"{n}.log").read_text() == f"last line of {n}\n"
        assert f"run {n} done: last line of {n}" in r.stdout


def test_gpus_give_each_run_its_own_gpu(tmp_path):
    names = [f"r{i}" for i in range(5)]
    r = run_jobs(tmp_path, [(n, timed(tmp_path, n, 0.3 + 0.2 * (i % 2))) for i, n in enumerate(names)],
                 nj=5, gpus="3 5")
    assert r.returncode == 0, r.stdout + r.stderr
    spans = intervals(tmp_path, names)
    assert {gpu for _, _, gpu in spans.values()} == {"3", "5"}
    assert max_overlap([(s, e) for s, e, _ in spans.values()]) == 2   # one run per GPU, not --nj
    for gpu in ("3", "5"):
        assert max_overlap([(s, e) for s, e, g in spans.values() if g == gpu]) == 1, gpu
    assert "run r0 (GPU 3):" in r.stdout and "run r1 (GPU 5):" in r.stdout


def test_a_failed_run_fails_the_batch_after_the_others_finish(tmp_path):
    r = run_jobs(tmp_path, [("bad", "echo oops; exit 3"), ("good", f"sleep 0.3; echo fine > {tmp_path}/good")],
                 nj=1)
    assert r.returncode == 1
    assert "run bad FAILED; last lines of" in r.stdout and "oops" in r.stdout
    assert (tmp_path / "good").read_text() == "fine\n"
