"""bench run --launcher slurm against a real one-node Slurm (tests/slurm_cluster.py; .ci/run
installs slurm-wlm and munge and these tests start the daemons): a grid of mini cells equal to
the same cells run in process, arrays split at MaxArraySize, preemption and requeue, a job
killed without warning, the same cell submitted twice, DDP inside a job, --dry-run, and the bad
input sbatch would refuse, caught before anything is submitted."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch

import slurm_cluster
from bench.mini.build import MiniSpec
from bench.mini.model import mini_resnet
from conftest import assert_informative, save_cutmix_format

pytestmark = pytest.mark.slurm
HOOKS = Path(__file__).resolve().parent / "slurm_hooks"
SPEC = MiniSpec(seed=3, train=100, val=40, epochs=1)
WSOL = [a for task in ("cub_loc", "imagenet_loc") for s in ("batch_size=20", "interval=0.05") for a in ("--set", f"{task}:{s}")]
MAX_ARRAY = 4  # the test cluster's MaxArraySize: an 8-cell grid is two arrays


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The cluster's SLURM_CONF: the one .ci/run started (SLURM_CONF set and answering), else one
    started here and shared by pytest-xdist's workers (the last to finish stops it)."""
    given = os.environ.get("SLURM_CONF")
    if given and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        yield given
        return
    why = slurm_cluster.available()
    if why:
        pytest.skip(f"no Slurm can be started here: {why}")
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "slurm-cluster"
    shared.mkdir(exist_ok=True)
    me = shared / f"user-{os.getpid()}"
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conf = shared / "slurm.conf"
        env = {**os.environ, "SLURM_CONF": str(conf)}
        up = (shared / "pids").exists() and subprocess.run(["sinfo", "-h"], env=env, capture_output=True).returncode == 0
        if not up:
            slurm_cluster.start(shared, MAX_ARRAY)
        me.touch()
    os.environ["SLURM_CONF"] = str(conf)
    yield str(conf)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        me.unlink()
        if not list(shared.glob("user-*")):
            slurm_cluster.stop(shared)


@pytest.fixture
def cluster_env(slurm, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm)
    return slurm


@pytest.fixture(scope="session")
def mini_ckpts(shared_files):
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(save_cutmix_format(mini_resnet(10), shared_files / f"mini{seed}.pth.tar"))
    return out


def grid_args(data, ckpts, results, *extra):
    return ["run", "--backbone", f"a={ckpts[0]},b={ckpts[1]}", "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--mini",
            "--data-root", data, "--results", results, "--workers", "0", "--batch-size", "10", "--quiet", *WSOL, *extra]


SLURM = ["--launcher", "slurm", "--cpus-per-task", "1", "--mem", "1G", "--time", "10"]


def records(results: Path) -> list[dict]:
    from bench.store import ResultsStore

    ResultsStore.open(results).close()  # ingests what the jobs delivered
    db = sqlite3.connect(results / "bench.sqlite")
    return [json.loads(r) for (r,) in db.execute("SELECT record FROM results ORDER BY backbone, task, seed")]


def by_cell(recs):
    return {(r["backbone"]["name"], r["task"]["name"], r["seed"]): r["metrics"] for r in recs}


def wait_for(predicate, timeout=240, what="the jobs"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not get there in {timeout} s")


def status(run_bench, results):
    code, out, err = run_bench("status", "--results", results, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_a_grid_through_slurm_equals_the_same_cells_in_process(cluster_env, run_bench, mini_data, mini_ckpts, tmp_path, monkeypatch):
    data = mini_data(SPEC)
    argv = grid_args(data, mini_ckpts, tmp_path / "slurm", "--task", "cub_loc,imagenet_loc", "--seeds", "2", "--limit", "8")
    code, out, err = run_bench(*argv, *SLURM, "--max-parallel", "2", "--wait")
    assert code == 0, err
    info = json.loads(next((tmp_path / "slurm" / "launch").glob("*/submission.json")).read_text())
    assert [a["cells"] for a in info["arrays"]] == [4, 4] and all(a["max_parallel"] == 2 for a in info["arrays"])  # split at MaxArraySize 4
    launched = records(tmp_path / "slurm")
    assert len(launched) == 8 and len({r["cell_key"] for r in launched}) == 8  # every cell once
    assert all(r["launch"]["launcher"] == "slurm" and r["launch"]["requeues"] == 0 and r["launch"]["job_id"] for r in launched)
    assert {r["launch"]["job_id"] for r in launched} == {c["job_id"] for c in info["cells"]}
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache-here"))  # trained here again, not read from the jobs' stages
    code, _, err = run_bench(*grid_args(data, mini_ckpts, tmp_path / "here", "--task", "cub_loc,imagenet_loc", "--seeds", "2", "--limit", "8"))
    assert code == 0, err
    here = records(tmp_path / "here")
    assert by_cell(launched) == by_cell(here) and len(by_cell(here)) == 8  # the numbers, exactly
    assert {r["cell_key"] for r in launched} == {r["cell_key"] for r in here}
    assert_informative({f"{k}{i}": v for i, r in enumerate(launched) for k, v in r["metrics"].items()})
    samples = [r["artifacts"]["samples"] for r in launched if r["artifacts"].get("samples")]
    assert samples and all(Path(s).parent == tmp_path / "slurm" / "samples" and Path(s).is_file() for s in samples)
    rows = status(run_bench, tmp_path / "slurm")
    assert len(rows) == 8 and {r["state"] for r in rows} == {"done"}
    # submitted again: every cell is stored, nothing goes to Slurm
    code, _, err = run_bench(*argv, *SLURM)
    assert code == 0 and "8 cells already in the store; not submitted" in err and "nothing to submit" in err
    assert len(list((tmp_path / "slurm" / "launch").glob("*/submission.json"))) == 1


def _pause(monkeypatch, folder: Path, seconds: int = 120):
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HOOKS), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("BENCH_TEST_PAUSE", f"{folder}:{seconds}")
    return folder / "paused"


def _logs(results: Path) -> str:
    """The jobs' logs and state files, for a failure's message."""
    files = sorted((results / "launch").glob("*/jobs/*_log.*")) + sorted((results / "launch").glob("*/state/*"))
    return "\n".join(f"== {f.name}\n{f.read_text(errors='replace')[-3000:]}" for f in files)


def _job_of(results: Path) -> str:
    """The job id of the first submission's first cell."""
    info = json.loads(sorted((results / "launch").glob("*/submission.json"))[0].read_text())
    return info["cells"][0]["job_id"]


def test_a_preempted_job_is_requeued_and_resumes_to_the_same_numbers(cluster_env, run_bench, mini_data, mini_ckpts, tmp_path, monkeypatch):
    data = mini_data(SPEC)
    one = ["--backbone", f"a={mini_ckpts[0]}", "--task", "cub_loc", "--set", "cub_loc:epochs=3", "--limit", "8"]
    base = grid_args(data, mini_ckpts, tmp_path / "slurm")
    base = base[:1] + base[3:]  # the single backbone of `one` instead of the pair
    paused = _pause(monkeypatch, tmp_path / "pause")
    code, _, err = run_bench(*base, *one, *SLURM)
    assert code == 0, err
    job = _job_of(tmp_path / "slurm")
    wait_for(paused.exists, what="the first epoch's checkpoint")
    # what Slurm does to a preempted job (and what submitit's own _interrupt sends): SIGTERM, then USR2
    subprocess.run(["scancel", "--signal", "TERM", job], check=True)
    subprocess.run(["scancel", "--signal", "USR2", job], check=True)
    rows = wait_for(lambda: (s := status(run_bench, tmp_path / "slurm")) and s[0]["state"] in ("done", "failed") and s, what="the requeued job")
    assert rows[0]["state"] == "done" and rows[0]["requeues"] == 1, (rows, _logs(tmp_path / "slurm"))
    (record,) = records(tmp_path / "slurm")
    assert record["launch"]["requeues"] == 1 and record["launch"]["job_id"] == job  # requeued under its id
    assert record["details"]["finetune"]["resumed_from_epoch"] == 1, record["details"]["finetune"]
    monkeypatch.delenv("BENCH_TEST_PAUSE")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache-here"))  # trained again from scratch, without a pause
    code, _, err = run_bench(*base, *one, "--results", tmp_path / "here")
    assert code == 0, err
    (whole,) = records(tmp_path / "here")
    assert whole["details"]["finetune"]["resumed_from_epoch"] == 0 and not whole["details"]["finetune"].get("cached")
    assert record["metrics"] == whole["metrics"] and record["cell_key"] == whole["cell_key"]


def test_a_killed_job_shows_failed_and_resubmit_failed_completes_it(cluster_env, run_bench, mini_data, mini_ckpts, tmp_path, monkeypatch):
    data = mini_data(SPEC)
    base = grid_args(data, mini_ckpts, tmp_path / "slurm")
    base = base[:1] + base[3:]
    one = ["--backbone", f"a={mini_ckpts[0]}", "--task", "cub_loc", "--set", "cub_loc:epochs=2", "--limit", "8"]
    paused = _pause(monkeypatch, tmp_path / "pause")
    code, _, err = run_bench(*base, *one, *SLURM)
    assert code == 0, err
    pid = int(wait_for(lambda: paused.exists() and paused.read_text(), what="the paused job"))
    code, _, err = run_bench(*base, *one, *SLURM)  # submitted again while it runs: not a second job
    assert code == 0 and f"a x cub_loc seed 0: already submitted (job {_job_of(tmp_path / 'slurm')}, not ended); not submitted again" in err, err
    assert len(list((tmp_path / "slurm" / "launch").glob("*/submission.json"))) == 1
    os.kill(pid, signal.SIGKILL)  # no warning: what the OOM killer or a lost node does
    rows = wait_for(lambda: (s := status(run_bench, tmp_path / "slurm")) and s[0]["state"] == "failed" and s, what="the failed state")
    assert rows[0]["error"] and rows[0]["log"].endswith("_0_log.err"), rows
    code, out, _ = run_bench("status", "--results", tmp_path / "slurm")
    assert "| failed |" in out.replace("  ", " ") or " failed " in out
    code, _, err = run_bench("run", "--launcher", "slurm", "--resubmit-failed", "--results", tmp_path / "slurm", "--wait", "--quiet")
    assert code == 0, err
    assert "resubmitting a x cub_loc seed 0" in err
    rows = status(run_bench, tmp_path / "slurm")
    assert [r["state"] for r in rows] == ["done"] and rows[0]["job_id"] != _job_of(tmp_path / "slurm")
    assert len(records(tmp_path / "slurm")) == 1


def test_the_same_cell_submitted_twice_at_once_is_stored_once(cluster_env, run_bench, mini_data, mini_ckpts, tmp_path, monkeypatch):
    """Two submissions race (each sees no earlier one): both jobs start; the second waits on the
    cell's lock while the first trains, then finds its record."""
    from bench.launch import ledger

    data = mini_data(SPEC)
    base = grid_args(data, mini_ckpts, tmp_path / "slurm")
    base = base[:1] + base[3:]
    one = ["--backbone", f"a={mini_ckpts[0]}", "--task", "cub_loc", "--set", "cub_loc:epochs=2", "--limit", "8"]
    paused = _pause(monkeypatch, tmp_path / "pause", seconds=8)
    monkeypatch.setattr("bench.launch.status.active_keys", lambda results: {})  # the race: neither submission sees the other
    for _ in range(2):
        code, _, err = run_bench(*base, *one, *SLURM)
        assert code == 0, err
    subs = [f for f, _ in ledger.submissions(tmp_path / "slurm")]
    assert len(subs) == 2
    wait_for(lambda: all(ledger.states(s) and list(ledger.states(s).values())[0].get("state") in ("done", "cached", "failed") for s in subs), what="both jobs")
    said = sorted(list(ledger.states(s).values())[0]["state"] for s in subs)
    assert said == ["cached", "done"] and paused.exists()
    assert len(records(tmp_path / "slurm")) == 1


def test_a_multi_task_job_runs_ddp_and_scores_like_one_process(cluster_env, run_bench, mini_data, mini_ckpts, tmp_path):
    data = mini_data(SPEC)
    base = grid_args(data, mini_ckpts, tmp_path / "slurm")
    base = base[:1] + base[3:]
    one = ["--backbone", f"a={mini_ckpts[0]}", "--task", "imagenet_cls"]
    code, _, err = run_bench(*base, *one, *SLURM, "--tasks-per-node", "2", "--wait")
    assert code == 0, err
    (record,) = records(tmp_path / "slurm")
    assert record["device"]["world_size"] == 2 and record["launch"]["world_size"] == 2
    code, _, err = run_bench(*base, *one, "--results", tmp_path / "here")
    assert code == 0, err
    (whole,) = records(tmp_path / "here")
    assert whole["device"]["world_size"] == 1 and whole["cell_key"] == record["cell_key"]
    assert record["metrics"]["top1_err"] == whole["metrics"]["top1_err"] and record["metrics"]["top5_err"] == whole["metrics"]["top5_err"]
    assert record["metrics"]["nll"] == pytest.approx(whole["metrics"]["nll"], abs=1e-9)


def test_dry_run_prints_arrays_headers_and_cells(cluster_env, run_bench, mini_data, mini_ckpts, tmp_path):
    data = mini_data(SPEC)
    results = tmp_path / "slurm"
    argv = grid_args(data, mini_ckpts, results, "--task", "cub_loc,imagenet_cls", "--seeds", "3")
    code, out, err = run_bench(*argv, *SLURM, "--max-parallel", "2", "--dry-run", "--slurm-extra", "comment=bench-test")
    assert code == 0, err
    lines = out.splitlines()
    # cub_loc is seeded (2 backbones x 3 seeds), imagenet_cls deterministic (2 cells): 8 cells, arrays of 4
    assert lines[0] == "dry run: 8 cells in 2 arrays (launcher slurm, MaxArraySize 4, at most 2 at once per array); 0 stored and 0 still submitted, not submitted; nothing was submitted"
    folder = results.resolve() / "launch" / "<submission>" / "jobs"
    header = [
        "#SBATCH --array=0-3%2",
        "#SBATCH --comment=bench-test",
        "#SBATCH --cpus-per-task=1",
        f"#SBATCH --error='{folder}/%A_%a/%A_%a_0_log.err'",
        "#SBATCH --job-name=bench-grid",
        "#SBATCH --mem=1G",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output='{folder}/%A_%a/%A_%a_0_log.out'",
        "#SBATCH --signal=USR2@60",
        "#SBATCH --time=10",
        "#SBATCH --wckey=submitit",
    ]
    resources = "1 node, 1 task/node, 0 GPU/node, 1 CPU/task, mem 1G, time 00:10:00, comment=bench-test"
    assert lines[1:3] == ["", f"array 1 of 2: 4 cells; {resources}"]
    assert lines[3:16] == header
    # cells: for each seed, backbone by backbone, tasks in the order given (a deterministic task at the first seed only)
    cells = [line.split() for line in lines[16:20]]
    assert [c[:5] for c in cells] == [["0", "a", "cub_loc", "seed", "0"], ["1", "a", "imagenet_cls", "seed", "0"],
                                      ["2", "b", "cub_loc", "seed", "0"], ["3", "b", "imagenet_cls", "seed", "0"]]
    assert all(c[5] == "cell" and len(c[6]) == 16 for c in cells)
    assert lines[20:22] == ["", f"array 2 of 2: 4 cells; {resources}"]
    assert lines[22:35] == [line.replace("bench-grid", "bench-cub_loc") for line in header]  # one task in this array
    assert [line.split()[:5] for line in lines[35:]] == [["0", "a", "cub_loc", "seed", "1"], ["1", "b", "cub_loc", "seed", "1"],
                                                          ["2", "a", "cub_loc", "seed", "2"], ["3", "b", "cub_loc", "seed", "2"]]
    assert not (results / "launch").exists() and not (results / "bench.sqlite").exists()  # nothing submitted, nothing written


@pytest.mark.parametrize("extra, message", [
    (["--partition", "gpuu"], "partition 'gpuu' does not exist on this cluster. did you mean gpu"),
    (["--partition", "gpu", "--time", "2:00:00"], "time 02:00:00 is over partition gpu's limit of 01:00:00"),
    (["--slurm-extra", "gres=gpu:1"], "sbatch would refuse the jobs of imagenet_cls"),
    (["--mem", "100000G"], "sbatch would refuse the jobs of imagenet_cls"),
    (["--time", "soon"], "--time 'soon' is not a Slurm time"),
])
def test_bad_options_are_refused_before_submitting(cluster_env, run_bench, tmp_path, checkpoint, data_root, extra, message):
    argv = ["run", "--backbone", checkpoint, "--arch", "resnet18", "--num-classes", "12", "--task", "imagenet_cls", "--data-root", data_root,
            "--results", tmp_path / "r", "--launcher", "slurm", "--cpus-per-task", "1", *extra]
    code, _, err = run_bench(*argv)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "r" / "launch").glob("*/submission.json")) if (tmp_path / "r" / "launch").exists() else True
    out = subprocess.run(["squeue", "-h"], capture_output=True, text=True)
    assert "bench-imagenet_cls" not in out.stdout
