"""bench.launch without a cluster: resources (defaults, profile, flags), Slurm's time formats,
arrays split at MaxArraySize, the local launcher (its concurrency cap, its numbers equal to the
in-process run's, bench status), and what is refused before anything is submitted."""

from __future__ import annotations

import json
import os
import sqlite3
import sys

import pytest

from bench.errors import BenchError
from bench.launch.plan import Cell, arrays
from bench.launch.resources import MINI, TASK_DEFAULTS, Profile, format_minutes, load_profile, parse_minutes, resources_for


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("1:30:00", 90), ("2-00", 2880), ("1-2:03", 1563), ("0-0:0:59", 1), (45, 45)])
def test_slurm_time_formats(text, minutes):
    assert parse_minutes(text) == minutes  # sbatch(1): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; seconds round up


@pytest.mark.parametrize("text", ["soon", "1h", "0", "-5", "1:2:3:4"])
def test_times_sbatch_would_not_read_are_refused(text):
    with pytest.raises(BenchError):
        parse_minutes(text)


def test_format_minutes():
    assert [format_minutes(m) for m in (5, 90, 1563)] == ["00:05:00", "01:30:00", "1-02:03:00"]


def test_a_profile_overrides_task_defaults_and_flags_override_both(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("partition: gpu\nmax_parallel: 8\nslurm_extra: {exclusive: user}\ndefaults: {cpus_per_task: 6, mem: 24g}\n"
                    "tasks:\n  voc_det*: {gpus_per_node: 8, time: '2-00:00:00'}\n  voc_det_ssd: {time: 600}\n")
    profile = load_profile(path)
    assert profile.max_parallel == 8
    frcnn = resources_for("voc_det_frcnn", profile, {}, {}, small=False)
    assert (frcnn.partition, frcnn.gpus_per_node, frcnn.cpus_per_task, frcnn.mem, frcnn.time) == ("gpu", 8, 6, "24G", 2880)
    assert frcnn.processes == 8 and frcnn.world_size() == 8 and frcnn.extra == (("exclusive", "user"),)
    ssd = resources_for("voc_det_ssd", profile, {"time": "12:00:00"}, {"mail-type": "END"}, small=False)
    assert ssd.time == 720 and ssd.gpus_per_node == 8 and dict(ssd.extra) == {"exclusive": "user", "mail-type": "END"}  # the flag wins over both entries
    cls = resources_for("imagenet_cls", profile, {}, {}, small=False)
    assert cls.gpus_per_node == TASK_DEFAULTS["imagenet_cls"]["gpus_per_node"] and cls.time == TASK_DEFAULTS["imagenet_cls"]["time"] and cls.cpus_per_task == 6
    mini = resources_for("voc_det_frcnn", Profile(), {}, {}, small=True)
    assert (mini.gpus_per_node, mini.time, mini.mem) == (MINI["gpus_per_node"], MINI["time"], MINI["mem"])


@pytest.mark.parametrize("text, message", [
    ("partitoin: gpu\n", "unknown key partitoin"),
    ("defaults: {gpus: 2}\n", "defaults: unknown resource 'gpus'"),
    ("tasks: {cub_loc: {time: soon}}\n", "tasks: cub_loc: time 'soon' is not a Slurm time"),
    ("defaults: {nodes: 0}\n", "nodes must be a whole number >= 1"),
    ("max_parallel: 0\n", "max_parallel must be a whole number >= 1"),
    ("- a\n", "must be a mapping"),
])
def test_a_profile_that_makes_no_sense_is_refused(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(BenchError, match=message.replace("(", r"\(")):
        load_profile(path)


def _cell(i, task="cub_loc", gpus=1):
    from bench.launch.resources import Resources

    return Cell(f"{i:016d}", f"{i:064d}", "spec", None, "b", task, 0, Resources(gpus_per_node=gpus))


def test_arrays_share_resources_and_split_at_max_array_size():
    cells = [_cell(i, gpus=1) for i in range(7)] + [_cell(10 + i, gpus=4) for i in range(3)] + [_cell(20, gpus=1)]
    got = arrays(cells, 3)
    assert [[c.id[-2:] for c in a] for a in got] == [["00", "01", "02"], ["03", "04", "05"], ["06", "20"], ["10", "11", "12"]]
    assert [len(a) for a in arrays(cells, 1001)] == [8, 3]


@pytest.fixture
def grid(tmp_path, checkpoint):
    from conftest import make_val

    data = make_val(tmp_path / "data", per_class=2)
    return ["run", "--backbone", f"a={checkpoint},b={checkpoint}", "--arch", "resnet18", "--num-classes", "12", "--task", "imagenet_cls,imagenet_fgsm",
            "--data-root", data, "--workers", "0", "--batch-size", "8", "--quiet"]


def test_the_local_launcher_equals_the_in_process_run_and_keeps_its_cap(run_bench, grid, tmp_path):
    code, out, err = run_bench(*grid, "--results", tmp_path / "local", "--launcher", "local", "--max-parallel", "2")
    assert code == 0, err
    ended = sorted(line.split("] ")[1].split(" (")[0] for line in err.splitlines() if line.startswith("bench: ["))
    assert ended == ["a x imagenet_cls seed 0: done", "a x imagenet_fgsm seed 0: done", "b x imagenet_cls seed 0: done", "b x imagenet_fgsm seed 0: done"], err
    assert "| a        | imagenet_cls" in out  # the result table, as after an in-process run
    code, _, err = run_bench(*grid, "--results", tmp_path / "here")
    assert code == 0, err

    def metrics(folder):
        return {(json.loads(r)["backbone"]["name"], json.loads(r)["task"]["name"]): json.loads(r)["metrics"]
                for (r,) in sqlite3.connect(folder / "bench.sqlite").execute("SELECT record FROM results")}

    local, here = metrics(tmp_path / "local"), metrics(tmp_path / "here")
    assert local == here and len(local) == 4
    sub = next((tmp_path / "local" / "launch").glob("*/submission.json")).parent
    from bench.launch.ledger import states

    said = states(sub)
    assert len(said) == 4 and {s["state"] for s in said.values()} == {"done"}
    records = [json.loads(r) for (r,) in sqlite3.connect(tmp_path / "local" / "bench.sqlite").execute("SELECT record FROM results")]
    assert {r["launch"]["launcher"] for r in records} == {"local"} and len({r["launch"]["job_id"] for r in records}) == 4
    code, out, err = run_bench("status", "--results", tmp_path / "local")
    assert code == 0 and out.strip().endswith("4 done (4 cells)"), out


def test_the_local_cap_holds(monkeypatch, tmp_path):
    """submitit's local executor starts every job at once; bench hands it max_parallel at a time."""
    import bench.launch.submit as submit

    live, peak = [0], [0]

    class Future:
        def __init__(self):
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            self.polls, self.job_id, self.paths = 0, str(100 + peak[0]), type("P", (), {"folder": tmp_path})()

        def done(self):
            self.polls += 1
            if self.polls == 3:
                live[0] -= 1
                return True
            return False

    class Executor:
        def __init__(self, **kw):
            pass

        def update_parameters(self, **kw):
            pass

        def submit(self, job):
            return Future()

    fake = type("submitit", (), {"LocalExecutor": Executor})
    monkeypatch.setattr(submit, "require_submitit", lambda: fake)
    monkeypatch.setattr(submit.time, "sleep", lambda s: None)
    ended = []
    submit.run_local(tmp_path, [_cell(i) for i in range(7)], None, 3, {}, lambda k, n, c, f: ended.append(k))
    assert peak[0] == 3 and ended == list(range(1, 8))


def test_launcher_options_without_a_launcher_are_refused(run_bench, grid, tmp_path):
    code, _, err = run_bench(*grid, "--partition", "gpu")
    assert code == 2 and "--partition applies to launched runs only. add --launcher slurm" in err


def test_no_slurm_on_the_path(run_bench, grid, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err = run_bench(*grid, "--launcher", "slurm")
    assert code == 2 and "--launcher slurm needs Slurm's commands" in err and "or use --launcher local" in err, err


def test_submitit_not_installed(run_bench, grid, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    code, _, err = run_bench(*grid, "--launcher", "local")
    assert code == 2 and err.strip() == "bench: error: --launcher needs submitit, which is not installed. pip install 'bench[cluster]' (or: pip install submitit)"


def test_a_results_folder_that_is_not_writable(run_bench, grid, tmp_path):
    if os.geteuid() == 0:
        (tmp_path / "ro").write_text("a file, not a folder")  # root writes anywhere: a path that cannot be a folder
        results = tmp_path / "ro" / "results"
    else:
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", 0o500)
        results = tmp_path / "ro"
    code, _, err = run_bench(*grid, "--results", results, "--launcher", "local")
    assert code == 2 and f"results folder {results} is not writable" in err, err


def test_a_set_for_one_task_of_the_grid(run_bench, grid, tmp_path):
    code, _, err = run_bench(*grid, "--results", tmp_path / "r", "--set", "imagenet_fgsm:eps=4/255")
    # only imagenet_fgsm got it: its cells fail on the value, imagenet_cls's ran and are stored
    assert code == 1 and "x imagenet_fgsm: task imagenet_fgsm: setting eps=['4/255'] is not valid" in err and "imagenet_cls" not in err, err
    stored = sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT task FROM results").fetchall()
    assert stored == [("imagenet_cls",), ("imagenet_cls",)]
    code, _, err = run_bench(*grid, "--results", tmp_path / "r", "--set", "imagenet_fgsmm:eps=0.01")
    assert code == 2 and "unknown task 'imagenet_fgsmm'" in err


def test_a_time_shorter_than_the_stored_runs_is_warned(tmp_path):
    from bench.launch.plan import time_warnings
    from bench.launch.resources import Resources
    from bench.store import ResultsStore
    from test_incoming import fake_record

    store = ResultsStore.open(tmp_path / "r")
    for i, seconds in enumerate((300.0, 1900.0)):
        store.insert(fake_record(i) | {"timing": {"total_s": seconds}, "device": {"type": "cuda", "world_size": 1}})
    short = Cell("0" * 16, "0" * 64, "s", None, "b", "imagenet_cls", 0, Resources(time=30))
    enough = Cell("1" * 16, "1" * 64, "s", None, "b", "imagenet_cls", 0, Resources(time=40))
    (line,) = time_warnings([short, enough], store)
    assert line.startswith("imagenet_cls: time 00:30:00 is shorter than the 00:32:00 its slowest stored run took (record 20261207T000000-00000001, on cuda)")
    store.close()


def _submitted(results: Path, said: dict[str, dict]) -> None:
    """A hand-written Slurm submission of len(said) cells, each with its state file."""
    from bench.launch.ledger import new_submission, write_json, write_state

    sub = new_submission(results)
    cells = [{"id": cid, "key": f"{i:064d}", "job_id": f"77_{i}", "folder": str(sub / "jobs"), "backbone": "a", "task": "cub_loc", "seed": i}
             for i, cid in enumerate(said)]
    write_json(sub / "submission.json", {"launcher": "slurm", "cells": cells, "arrays": []})
    for cid, fields in said.items():
        if fields:
            write_state(sub, cid, **fields)


def test_status_without_an_answer_from_slurm_says_what_the_state_files_say(monkeypatch, tmp_path):
    """squeue not answering must not read as every job ended: running stays running."""
    from bench.launch import cluster
    from bench.launch.status import cell_statuses

    _submitted(tmp_path, {"c0": {"state": "running", "node": "n1"}, "c1": {"state": "requeued"}, "c2": {}, "c3": {"state": "failed", "error": "bench: error: boom"}})

    def down(*_):
        raise BenchError("squeue failed (slurm_load_jobs error: Socket timed out on send/recv operation)")

    monkeypatch.setattr(cluster, "queue", down)
    rows = cell_statuses(tmp_path, None)
    assert [(r.state, r.node) for r in rows] == [("running", "n1"), ("pending", ""), ("pending", ""), ("failed", "")]
    assert rows[3].error == "bench: error: boom" and "Slurm did not answer" in rows[0].error
    # Slurm answering that it knows none of them: every one ended without a record
    monkeypatch.setattr(cluster, "queue", lambda ids: {})
    monkeypatch.setattr(cluster, "show_job", lambda job: None)
    assert [r.state for r in cell_statuses(tmp_path, None)] == ["failed"] * 4


def test_squeue_errors_other_than_unknown_jobs_are_raised(monkeypatch):
    import subprocess

    from bench.launch import cluster

    def answer(stderr):
        return lambda argv, timeout=30: subprocess.CompletedProcess(argv, 1, "", stderr)

    monkeypatch.setattr(cluster, "_run", answer("slurm_load_jobs error: Invalid job id specified\n"))
    assert cluster.queue(["5_0"]) == {}
    monkeypatch.setattr(cluster, "_run", answer("slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"))
    with pytest.raises(BenchError, match="squeue failed .*Unable to contact"):
        cluster.queue(["5_0"])
