"""Behaviour that needs real processes: start-up imports, Ctrl-C, a read-only or locked store,
downloads over HTTP, and the distributed path under torchrun (two CPU processes on gloo)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import NUM_CLASSES, assert_informative, make_val, save_cutmix_format, tiny_model, assert_stats_reproduce
from interrupt_point import run_to_point

REPO = Path(__file__).resolve().parent.parent
BASE = ["--arch", "resnet18", "--num-classes", str(NUM_CLASSES), "--task", "imagenet_cls"]


def bench(*args, env=None, prefix=(), **kw):
    return subprocess.run([*prefix, sys.executable, "-m", "bench", *map(str, args)], cwd=REPO, env=env or os.environ.copy(), capture_output=True, text=True, **kw)


@pytest.mark.parametrize("argv", [["--help"], ["list", "tasks"], ["list", "backbones"], ["run", "--help"]])
def test_cli_start_up_does_not_import_torch(argv):
    code = (
        "import sys\nfrom bench.cli import main\ntry:\n    code = main(%r)\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('CODE', code)\nprint('TORCH', sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))" % argv
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("CODE 0\nTORCH []")


@pytest.mark.parametrize("argv, message", [
    (["run", "--backbone", "r50_cutmx", "--task", "imagenet_cls"], "unknown backbone 'r50_cutmx'. did you mean r50_cutmix"),
    (["run", "--backbone", "r50_cutmix", "--task", "imagenet_clss"], "unknown task 'imagenet_clss'. did you mean imagenet_cls"),
    (["validate", "--backbone", "r50_cutmx", "--task", "imagenet_cls"], "unknown backbone 'r50_cutmx'"),
    (["run", "--backbone", "r50_cutmix", "--task", "imagenet_cls", "--limit", "abc"], "argument --limit: invalid int value: 'abc'"),
])
def test_a_typo_is_answered_before_torch_is_imported(argv, message):
    code = (
        "import sys\nfrom bench.cli import main\ntry:\n    code = main(%r)\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('CODE', code)\nprint('TORCH', sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))" % argv
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip().endswith("CODE 2\nTORCH []"), out.stdout + out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_ctrl_c_mid_run_stores_nothing(tmp_path, checkpoint):
    data = make_val(tmp_path / "data", per_class=30)
    # blocked after the first scored batch: interrupted mid-evaluation, never after it finished
    proc = run_to_point(["run", "--backbone", checkpoint, *BASE, "--data-root", data, "--results", tmp_path / "r", "--workers", "0", "--batch-size", "4"],
                        "tasks.classification:TopKEvaluator.process", cwd=REPO)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "bench: interrupted; nothing was stored for the unfinished cell"
    db = sqlite3.connect(tmp_path / "r" / "bench.sqlite")
    assert db.execute("SELECT count(*) FROM results").fetchone() == (0,)
    assert not (tmp_path / "r" / "samples").exists()


def _without_root_powers() -> list[str]:
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder read-only")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("existing", [False, True])
def test_read_only_results_store(tmp_path, data_root, checkpoint, existing):
    results = tmp_path / "r"
    if existing:  # a store written earlier, now read-only
        assert bench("run", "--backbone", checkpoint, *BASE, "--data-root", data_root, "--results", results, "--limit", 2, "--workers", 0).returncode == 0
        for p in results.rglob("*"):
            p.chmod(0o444 if p.is_file() else 0o555)
    else:
        results.mkdir()
    results.chmod(0o555)
    try:
        out = bench("run", "--backbone", checkpoint, *BASE, "--data-root", data_root, "--results", results, "--workers", 0, prefix=_without_root_powers())
    finally:
        results.chmod(0o755)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("bench: error: results store") and "read-only" in out.stderr
    assert "pass --results DIR pointing at a writable folder" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_two_processes_write_one_store_at_once(tmp_path, data_root, checkpoint):
    common = ["run", "--backbone", str(checkpoint), *BASE, "--data-root", str(data_root), "--results", str(tmp_path / "r"), "--workers", "0"]
    # a barrier right before the store's insert: the three writes happen at the same moment
    barrier = ["tests/interrupt_point.py", "--barrier", "bench.store:ResultsStore.insert", str(tmp_path / "barrier"), "3", "--"]
    # three cells (imagenet_cls has no seed to vary: three --limit values)
    procs = [subprocess.Popen([sys.executable, *barrier, *common, "--limit", str(n)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (3, 4, 5)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    db = sqlite3.connect(tmp_path / "r" / "bench.sqlite")
    assert sorted(json.loads(r[0])["task"]["config"]["limit"] for r in db.execute("SELECT record FROM results")) == [3, 4, 5]


def test_locked_results_store(tmp_path, data_root, checkpoint, run_bench, monkeypatch):
    results = tmp_path / "r"
    assert run_bench("run", "--backbone", checkpoint, *BASE, "--data-root", data_root, "--results", results, "--limit", 2, "--workers", 0)[0] == 0
    holder = sqlite3.connect(results / "bench.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setenv("BENCH_DB_TIMEOUT", "0.5")
    try:
        code, _, err = run_bench("run", "--backbone", checkpoint, *BASE, "--data-root", data_root, "--results", results, "--workers", 0)
    finally:
        holder.execute("ROLLBACK")
    assert code == 2 and "is locked by another process" in err


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server over a folder; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _card(folder: Path, url: str, sha: str | None, file: str = "model_best.pth.tar") -> None:
    folder.mkdir(exist_ok=True)
    (folder / "remote.yaml").write_text(
        f"name: remote\narch: resnet18\nnum_classes: {NUM_CLASSES}\n"
        f"weights: {{url: '{url}', file: {file}, sha256: {repr(sha) if sha else 'null'}, format: cutmix}}\n"
        "preprocessing: {resize: 64, crop: 56}\n"
    )


@pytest.mark.parametrize("as_zip", [False, True])
def test_download_is_verified_and_atomic(tmp_path, http_root, data_root, run_bench, monkeypatch, as_zip):
    served, base = http_root
    ckpt = save_cutmix_format(tiny_model(), tmp_path / "model_best.pth.tar")
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    if as_zip:  # a shared-folder link arrives as a zip of the folder
        with zipfile.ZipFile(served / "folder.zip", "w") as zf:
            zf.write(ckpt, "model_best.pth.tar")
            zf.writestr("README.txt", "x")
        url = f"{base}/folder.zip?dl=1"
    else:
        shutil.copy(ckpt, served / "model_best.pth.tar")
        url = f"{base}/model_best.pth.tar"
    cards = tmp_path / "cards"
    monkeypatch.setenv("BENCH_CARDS", str(cards))
    cache = Path(os.environ["BENCH_CACHE"]) / "weights" / "remote"
    # a wrong digest: error, and nothing left in the cache
    _card(cards, url, "ab" * 32)
    code, _, err = run_bench("run", "--backbone", "remote", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)
    assert code == 2 and "sha256 mismatch" in err
    assert list(cache.iterdir()) == []
    # the right digest: downloaded, verified, renamed into place, used
    _card(cards, url, sha)
    code, out, err = run_bench("run", "--backbone", "remote", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)
    assert code == 0, err
    assert [p.name for p in cache.iterdir()] == ["model_best.pth.tar"]
    assert hashlib.sha256((cache / "model_best.pth.tar").read_bytes()).hexdigest() == sha


def test_offline_download_says_where_to_put_the_file(tmp_path, data_root, run_bench, monkeypatch):
    cards = tmp_path / "cards"
    monkeypatch.setenv("BENCH_CARDS", str(cards))
    _card(cards, "http://127.0.0.1:9/none/model_best.pth.tar", "ab" * 32)
    code, _, err = run_bench("run", "--backbone", "remote", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r")
    target = Path(os.environ["BENCH_CACHE"]) / "weights" / "remote" / "model_best.pth.tar"
    assert code == 2 and "cannot download http://127.0.0.1:9/none/model_best.pth.tar" in err
    assert f"place the file at {target} (sha256 {'ab' * 32}) and run again" in err


def test_torchrun_two_processes_equal_one(tmp_path, data_root, checkpoint):
    common = ["--backbone", checkpoint, *BASE, "--data-root", data_root, "--workers", 0, "--device", "cpu", "--batch-size", 3]
    single = bench("run", *common, "--results", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dist = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench", "run", *map(str, common), "--results", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert dist.returncode == 0, dist.stderr[-3000:]
    one = json.loads(bench("export", "--results", tmp_path / "one").stdout)
    two = json.loads(bench("export", "--results", tmp_path / "two").stdout)
    assert len(one) == len(two) == 1  # rank 0 alone wrote
    assert two[0]["device"]["world_size"] == 2
    assert two[0]["metrics"] == one[0]["metrics"]
    assert_informative(one[0]["metrics"])
    assert two[0]["n_samples"] == one[0]["n_samples"]
    rows = lambda rec: Path(rec["artifacts"]["samples"]).read_text()
    assert rows(two[0]) == rows(one[0])  # same per-sample outputs, in dataset order


def test_torchrun_wsol_fine_tunes_data_parallel_and_scores_like_one_process(tmp_path):
    """cub_loc under torchrun: the fine-tuning runs data-parallel (DDP on gloo) with batch_size as
    the global batch, and rank 0 alone writes the stage and the record; one process trains a stage
    of its own, and a second torchrun run reuses the two-process stage with the same metrics."""
    import torch

    from bench.mini.digits import make_scenes
    from bench.mini.model import mini_resnet
    from test_localization import SETTINGS, write_mini_cub

    root = write_mini_cub(tmp_path / "data", make_scenes("train", 33, seed=2), make_scenes("val", 16, seed=2))
    torch.manual_seed(0)
    ckpt = save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")
    common = ["--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "cub_loc",
              "--data-root", root, "--workers", 0, "--device", "cpu", "--batch-size", 4]
    for setting in SETTINGS:
        common += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench", "run", *map(str, common)]
    dist = subprocess.run([*torchrun, "--results", str(tmp_path / "two")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    two = json.loads(bench("export", "--results", tmp_path / "two").stdout)
    assert len(two) == 1 and two[0]["device"]["world_size"] == 2
    ft = two[0]["details"]["finetune"]
    assert not ft["cached"] and ft["train_images"] == 33 and Path(ft["stage_dir"], "finetuned.pt").is_file()
    assert ft["world_size"] == 2 and ft["per_process_batch"] == 8  # batch_size=16 is the global batch
    assert_informative(two[0]["metrics"])
    # one process trains its own stage: BatchNorm statistics are per process, so the world size keys the stage
    single = bench("run", *common, "--results", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    one = json.loads(bench("export", "--results", tmp_path / "one").stdout)
    assert not one[0]["details"]["finetune"]["cached"] and one[0]["details"]["finetune"]["stage_dir"] != ft["stage_dir"]
    assert one[0]["details"]["finetune"]["per_process_batch"] == 16
    again = subprocess.run([*torchrun, "--results", str(tmp_path / "three")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    three = json.loads(bench("export", "--results", tmp_path / "three").stdout)
    assert three[0]["details"]["finetune"]["cached"] and three[0]["details"]["finetune"]["stage_dir"] == ft["stage_dir"]
    assert three[0]["metrics"] == two[0]["metrics"]


def test_torchrun_voc_detection_equals_one_process(tmp_path):
    """voc_det_ssd under torchrun (two CPU processes on gloo): the detector trains data-parallel
    and rank 0 alone writes; one process trains a stage of its own (the world size keys it); the
    evaluation sharded over two processes and gathered gives exactly the planned detections' rows
    and mAP; a run killed mid-training resumes from its checkpoint."""
    import torch

    from bench.mini.model import mini_resnet
    from test_detection import args_for, write_tiny_voc

    root = write_tiny_voc(tmp_path / "data")
    torch.manual_seed(0)
    ckpt = save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = args_for("voc_det_ssd", ckpt, root, tmp_path / "two")[1:]
    dist = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench", "run", *map(str, common)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    two = json.loads(bench("export", "--results", tmp_path / "two").stdout)
    assert len(two) == 1 and two[0]["device"]["world_size"] == 2
    train = two[0]["details"]["ssd"]["train"]
    assert not train["cached"] and train["world_size"] == 2 and Path(train["stage_dir"], "detector.pt").is_file()
    # one process trains a stage of its own: the world size keys detector stages
    one = bench(*args_for("voc_det_ssd", ckpt, root, tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    single = json.loads(bench("export", "--results", tmp_path / "one").stdout)[0]
    assert not single["details"]["ssd"]["train"]["cached"] and single["details"]["ssd"]["train"]["stage_dir"] != train["stage_dir"]
    rows = lambda rec: Path(rec["artifacts"]["samples"]).read_text()
    assert sum(len(json.loads(r)["detections"]) for r in rows(two[0]).splitlines()) > 0

    # the evaluation sharded over two processes and gathered, on planned detections that hit
    from det_oracle import plan_detections
    from test_detection import expected_voc07, sample_rows, tiny_voc_test

    ids, objects = tiny_voc_test()
    planned = plan_detections(objects)
    (tmp_path / "planned.json").write_text(json.dumps(dict(zip(ids, planned))))
    fixed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "tests/det_oracle.py",
                            *map(str, args_for("voc_det_ssd", ckpt, root, tmp_path / "fixed"))], cwd=REPO,
                           env={**env, "BENCH_TEST_DETECTIONS": str(tmp_path / "planned.json")}, capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    record = json.loads(bench("export", "--results", tmp_path / "fixed").stdout)[0]
    voc07, area = expected_voc07(objects, planned)
    assert record["device"]["world_size"] == 2 and 0 < voc07 < 100
    assert record["metrics"]["map_voc07"] == pytest.approx(voc07, abs=1e-9) and record["metrics"]["map_area"] == pytest.approx(area, abs=1e-9)
    gathered = [json.loads(r) for r in rows(record).splitlines()]
    assert [{k: r[k] for k in ("detector", "id", "detections")} for r in gathered] == sample_rows(ids, planned, "ssd")
    assert assert_stats_reproduce(record) == 2  # the per-detection flags gathered over two processes give back mAP
    assert_informative(record["metrics"])

    # killed mid-training, blocked right after its first checkpoint (iteration 2), then run again: it resumes there
    slow = args_for("voc_det_ssd", ckpt, root, tmp_path / "three", extra=["iterations=6", "checkpoint_every=2"])
    proc = run_to_point(slow[:], "bench.detection.train:save_atomic", env=env, cwd=REPO)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list((Path(os.environ["BENCH_CACHE"]) / "artifacts" / "voc_det" / "ssd").glob("*/state.pt"))) == 1
    again = bench(*slow)
    assert again.returncode == 0, again.stderr
    record = json.loads(bench("export", "--results", tmp_path / "three").stdout)[0]
    assert record["details"]["ssd"]["train"]["resumed_from_iteration"] == 2


def test_wsol_fine_tuning_batch_is_global_under_torchrun(tmp_path):
    """batch_size is the global batch: 1 process and 2 processes on gloo take the same optimizer
    steps and, on a BatchNorm-free network without augmentation, reach the same weights."""
    import torch

    one = subprocess.run([sys.executable, "tests/finetune_ddp.py", str(tmp_path / "one.pt")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "tests/finetune_ddp.py", str(tmp_path / "two.pt")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    info1, info2 = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert (info1["steps_this_run"], info1["per_process_batch"]) == (6, 8) and (info2["steps_this_run"], info2["per_process_batch"]) == (6, 4)
    w1, w2 = torch.load(tmp_path / "one.pt", weights_only=True), torch.load(tmp_path / "two.pt", weights_only=True)
    assert not torch.equal(w1["fc.weight"], __import__("finetune_ddp").Plain().fc.weight.detach())  # it trained
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-5, atol=1e-6)


def test_torchrun_captioning_equals_one_process(tmp_path):
    """coco_cap under torchrun (two CPU processes on gloo): rank 0 trains the decoder stage while
    the other waits, the captions are decoded on two shards and gathered; one process then reuses
    that stage and gives the same captions and metrics."""
    import torch

    from bench.mini.build import MiniSpec, ensure_data
    from bench.mini.model import mini_resnet

    root = ensure_data(tmp_path / "mini", MiniSpec(seed=2, train=60, val=18, datasets=("coco",)))
    torch.manual_seed(0)
    ckpt = save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "coco_cap", "--mini", "--data-root", root,
              "--workers", "0", "--set", "epochs=1", "--set", "beam=2", "--batch-size", "4"]
    dist = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench", "run", *map(str, common),
                           "--results", str(tmp_path / "two")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    one = bench("run", *common, "--results", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    (two,) = json.loads(bench("export", "--results", tmp_path / "two").stdout)
    (single,) = json.loads(bench("export", "--results", tmp_path / "one").stdout)
    assert two["device"]["world_size"] == 2 and not two["details"]["decoder"]["cached"] and single["details"]["decoder"]["cached"]
    assert two["metrics"] == single["metrics"] and two["n_samples"] == single["n_samples"] == {"total": 18, "evaluated": 18}
    rows = lambda rec: [json.loads(line) for line in Path(rec["artifacts"]["samples"]).read_text().splitlines()]
    assert rows(two) == rows(single)


def test_captioning_decoder_killed_mid_training_resumes_to_the_same_weights(tmp_path):
    """coco_cap killed with SIGKILL right after its first epoch's checkpoint, then run again: it
    resumes there, and its decoder equals an uninterrupted run's, weight for weight."""
    import torch

    from bench.mini.build import MiniSpec, ensure_data
    from bench.mini.model import mini_resnet

    root = ensure_data(tmp_path / "mini", MiniSpec(seed=2, train=60, val=12, datasets=("coco",)))
    torch.manual_seed(0)
    ckpt = save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")
    argv = ["run", "--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "coco_cap", "--mini", "--data-root", root,
            "--workers", "0", "--set", "epochs=3", "--set", "beam=2", "--set", "batch_size=20"]
    whole_env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache_whole")}
    assert bench(*argv, "--results", tmp_path / "whole", env=whole_env).returncode == 0
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache_killed")}
    # save_atomic's calls: the training features, the scored features, then epoch 1's checkpoint
    proc = run_to_point([*argv, "--results", tmp_path / "killed"], "bench.captioning.train:save_atomic", count=3, env=env, cwd=REPO)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert bench(*argv, "--results", tmp_path / "killed", env=env).returncode == 0
    (whole,) = json.loads(bench("export", "--results", tmp_path / "whole").stdout)
    (killed,) = json.loads(bench("export", "--results", tmp_path / "killed").stdout)
    assert killed["details"]["decoder"]["resumed_from_epoch"] == 1 and whole["details"]["decoder"]["resumed_from_epoch"] == 0
    a = torch.load(Path(whole["details"]["decoder"]["stage_dir"]) / "decoder.pt", weights_only=True)["model"]
    b = torch.load(Path(killed["details"]["decoder"]["stage_dir"]) / "decoder.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert whole["metrics"] == killed["metrics"]


def test_torchrun_imagenet_c_generates_on_rank_0_and_scores_like_one_process(tmp_path, data_root, checkpoint):
    """imagenet_c with generated corruptions under torchrun: rank 0 builds the cache while the
    other waits, the clean error comes from the store on rank 0 for both, and the metrics and
    per-sample rows equal one process's on the same cache."""
    common = ["--backbone", checkpoint, "--arch", "resnet18", "--num-classes", NUM_CLASSES, "--data-root", data_root, "--workers", 0, "--device", "cpu",
              "--batch-size", 5]
    task = ["--task", "imagenet_c", "--set", "source=generated", "--set", "corruptions=[gaussian_noise, fog]", "--set", "severities=[1, 2]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for results in ("one", "two"):
        assert bench("run", *common, "--task", "imagenet_cls", "--results", tmp_path / results).returncode == 0
    dist = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench", "run", *map(str, common + task), "--results", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = bench("run", *common, *task, "--results", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    one = [r for r in json.loads(bench("export", "--results", tmp_path / "one").stdout) if r["task"]["name"] == "imagenet_c"]
    two = [r for r in json.loads(bench("export", "--results", tmp_path / "two").stdout) if r["task"]["name"] == "imagenet_c"]
    assert len(one) == len(two) == 1 and two[0]["device"]["world_size"] == 2
    assert two[0]["details"]["generation"]["written"] == 2 * 2 * 2 * NUM_CLASSES and one[0]["details"]["generation"]["written"] == 0
    assert two[0]["details"]["clean"]["source"] == "stored imagenet_cls record"
    # predictions equal exactly; ECE and NLL to float tolerance (the shards batch the images differently)
    assert two[0]["metrics"] == pytest.approx(one[0]["metrics"], rel=1e-7) and "rel_ce@fog" not in one[0]["metrics"]
    assert {k: v for k, v in two[0]["metrics"].items() if "err" in k} == {k: v for k, v in one[0]["metrics"].items() if "err" in k}
    assert Path(two[0]["artifacts"]["samples"]).read_text() == Path(one[0]["artifacts"]["samples"]).read_text()


def test_torchrun_ood_scores_like_one_process(tmp_path):
    """cifar100_ood under torchrun (two CPU processes on gloo), ODIN included: each rank scores a
    shard of every set, the scores are gathered in dataset order, and metrics and per-sample rows
    equal one process's."""
    import numpy as np
    import torch
    import torchvision

    from test_cifar import CIFAR_MEAN, CIFAR_STD, cifar_fixture
    from test_ood import odin_folders

    cifar_fixture(tmp_path / "data", n_test=30)
    odin_folders(tmp_path / "data")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=100).state_dict(), tmp_path / "r18.pth")
    common = ["--backbone", tmp_path / "r18.pth", "--arch", "resnet18", "--num-classes", 100, "--resize", 32, "--crop", 32, "--mean", ",".join(map(str, CIFAR_MEAN)),
              "--std", ",".join(map(str, CIFAR_STD)), "--task", "cifar100_ood", "--data-root", tmp_path / "data", "--workers", 0, "--device", "cpu",
              "--batch-size", 5, "--set", "noise_count=12", "--set", "scores=[msp, energy, odin]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dist = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench", "run", *map(str, common), "--results", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = bench("run", *common, "--results", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    (one,) = json.loads(bench("export", "--results", tmp_path / "one").stdout)
    (two,) = json.loads(bench("export", "--results", tmp_path / "two").stdout)
    assert two["device"]["world_size"] == 2 and two["n_samples"] == one["n_samples"] == {"total": 30 + 5 * 16 + 2 * 12, "evaluated": 30 + 5 * 16 + 2 * 12}
    assert two["metrics"] == pytest.approx(one["metrics"], abs=1e-9)
    rows = [[json.loads(line) for line in Path(r["artifacts"]["samples"]).read_text().splitlines()] for r in (one, two)]
    assert [(r["set"], r["index"]) for r in rows[0]] == [(r["set"], r["index"]) for r in rows[1]]
    assert np.allclose([r["msp"] for r in rows[0]], [r["msp"] for r in rows[1]], rtol=1e-6, atol=0)
    assert_informative({k: v for k, v in one["metrics"].items() if k.startswith("msp_auroc@")})
