"""End to end through the CLI: results equal a direct torchvision evaluation, caching, --limit,
report/export, grids, and the bad inputs a user can cause."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision import transforms as T

from bench.errors import BenchError
from conftest import CARD, NUM_CLASSES, assert_informative, own_weights, save_cutmix_format, tiny_model

def direct_eval(checkpoint: Path, val: Path) -> dict[str, float]:
    """Reference: torchvision ImageFolder + ToTensor/Normalize + a strict torchvision load."""
    model = torchvision.models.resnet18(weights=None, num_classes=NUM_CLASSES)
    sd = torch.load(checkpoint, weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    tf = T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    data = torchvision.datasets.ImageFolder(str(val), tf)
    loader = torch.utils.data.DataLoader(data, batch_size=5)  # the run's batch size: convolutions need not be bit-identical across batch sizes
    top, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            top.append(model.eval()(x).topk(5, 1).indices)
            targets.append(y)
    top, targets = torch.cat(top), torch.cat(targets)
    hits = top == targets[:, None]
    n = len(targets)
    return {
        "top1_err": 100 * (1 - int(hits[:, 0].sum()) / n),
        "top5_err": 100 * (1 - int(hits.any(1).sum()) / n),
        "top5": top.tolist(),
    }


def test_run_equals_direct_torchvision_and_stores_a_full_record(run_bench, cards, data_root, tmp_path):
    results = tmp_path / "results"
    code, out, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", results, "--batch-size", 5, "--workers", 0)
    assert code == 0, err
    rec = json.loads(run_bench("export", "--results", results)[1])[0]
    ref = direct_eval(cards["tiny_a"], data_root / "imagenet" / "val")
    assert rec["metrics"]["top1_err"] == ref["top1_err"]
    assert rec["metrics"]["top5_err"] == ref["top5_err"]
    assert 0 < ref["top5_err"] < 100  # a metric that can tell right from wrong
    assert_informative(rec["metrics"])
    assert "| tiny_a   | imagenet_cls v2 | top1_err | ↓      |" in out and "| Better |" in out and "12.50" in out
    # the record carries what DESIGN.md asks for
    assert rec["backbone"]["sha256"] == __import__("hashlib").sha256(cards["tiny_a"].read_bytes()).hexdigest()
    assert rec["backbone"]["load_report"]["format"] == "cutmix"
    assert rec["backbone"]["load_report"]["meta"]["best_err1"] == 21.4
    assert rec["task"]["config"]["preprocessing"]["crop"] == 56 and rec["task"]["version"] == "2"
    assert rec["n_samples"] == {"total": 2 * NUM_CLASSES, "evaluated": 2 * NUM_CLASSES} and rec["limited"] is False
    assert rec["seed"] == 0 and rec["determinism"]["cudnn_deterministic"] is True
    assert {"torch", "torchvision", "python", "bench"} <= set(rec["env"]["versions"])
    assert "commit" in rec["env"]["git"] and rec["device"]["type"] == "cpu"
    assert rec["reported"] == {"top1_err": 12.5}
    samples = [json.loads(line) for line in Path(rec["artifacts"]["samples"]).read_text().splitlines()]
    assert [s["top5"] for s in samples] == ref["top5"]  # same images, same order, same predictions
    # the store is a WAL SQLite file with one row
    db = sqlite3.connect(results / "bench.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*), task, limited FROM results").fetchone() == (1, "imagenet_cls", 0)


def test_cache_force_and_limit(run_bench, cards, data_root, tmp_path):
    args = ["run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    assert run_bench(*args)[0] == 0
    code, out, _ = run_bench(*args)
    assert code == 0 and "cached" in out
    code, out, _ = run_bench(*args, "--force")
    assert code == 0 and "| new" in out
    code, out, _ = run_bench(*args, "--limit", 5)
    assert code == 0 and "5/24" in out and "limited" in out
    records = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert len(records) == 2 and sorted(r["limited"] for r in records) == [False, True]
    limited = next(r for r in records if r["limited"])
    samples = [json.loads(line) for line in Path(limited["artifacts"]["samples"]).read_text().splitlines()]
    assert [s["index"] for s in samples] == [0, 4, 9, 14, 19]  # N evenly spaced: i * 24 // 5
    # limited runs never enter the report unless asked
    code, out, _ = run_bench("report", "--results", tmp_path / "r")
    assert code == 0 and "tiny_a" in out and "[12.50]" in out and "±" not in out
    # a limited run has another config: never averaged with the full one, and never preferred to
    # it even though it is newer (issue case 2: the 5-image run was shown, unmarked)
    full = next(r for r in records if not r["limited"])["metrics"]["top1_err"]
    code, out, _ = run_bench("report", "--results", tmp_path / "r", "--include-limited")
    assert "±" not in out and "results under 2 configs or data; showing a complete run" in out
    assert f" {full:.2f} [12.50] |" in out and "| imagenet_cls/n |" in out and "limited" not in out.split("note:")[0]
    # imagenet_cls has no randomness: another seed is the same cell, not a second sample of "± 0.00 (n=2)"
    code, out, _ = run_bench(*args, "--seed", 1)
    assert code == 0 and "cached" in out
    code, out, _ = run_bench("report", "--results", tmp_path / "r")
    assert f"{full:.2f} [12.50]" in out and "±" not in out


def test_report_marks_limited_cells_and_shows_counts(run_bench, cards, data_root, tmp_path):
    """Case 2: a limited result is marked in every cell it appears in; the count is shown."""
    args = ["run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    assert run_bench(*args, "--limit", 5)[0] == 0
    code, out, _ = run_bench("report", "--results", tmp_path / "r", "--include-limited")
    row = next(line for line in out.splitlines() if line.startswith("| tiny_a"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(c.endswith("(limited 5/24)") for c in cells[1:-1]) and len(cells) == 6 and cells[-1] == "5/24", row  # 4 metrics, then n
    assert run_bench(*args)[0] == 0
    code, out, _ = run_bench("report", "--results", tmp_path / "r", "--include-limited")
    row = next(line for line in out.splitlines() if line.startswith("| tiny_a"))
    assert "limited" not in row and row.rstrip(" |").endswith("24"), row


def test_grid_with_wildcard_and_a_failing_cell(run_bench, cards, data_root, tmp_path):
    own_weights(cards, "tiny_b").write_bytes(b"not a checkpoint")
    code, out, err = run_bench("run", "--backbone", "tiny_*", "--task", "imagenet_*", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)
    assert code == 1
    assert "| tiny_a" in out and "failed:" in out
    lines = out.splitlines()
    last_row = max(k for k, line in enumerate(lines) if line.startswith("|"))
    failed = [k for k, line in enumerate(lines) if line.startswith("failed: tiny_b x imagenet_cls: ")]
    assert failed and failed[0] > last_row and "is not a PyTorch checkpoint" in lines[failed[0]]  # below the table, not in a column
    assert all("not a PyTorch" not in line for line in lines[:last_row + 1]) and "| failed (below) |" in out
    assert "tiny_b x imagenet_cls: " in err and "is not a PyTorch checkpoint" in err
    # tiny_a's imagenet_cls and imagenet_fgsm cells ran; imagenet_loc (no train split here) and tiny_b's failed
    assert sorted(r["task"]["name"] for r in json.loads(run_bench("export", "--results", tmp_path / "r")[1])) == ["imagenet_cls", "imagenet_fgsm"]


def test_validate(run_bench, cards, data_root, tmp_path):
    results = tmp_path / "r"
    assert run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", results, "--workers", 0)[0] == 0
    code, out, _ = run_bench("validate", "--backbone", "tiny_a,tiny_b", "--task", "imagenet_cls", "--data-root", data_root, "--results", results)
    assert code == 0 and out.count("✓ imagenet_cls v2: imagenet: 24 val images, 12 classes (class_folders)") == 2
    cells = [line[line.rindex("["):] for line in out.splitlines() if "imagenet_cls v2" in line]
    assert cells == ["[cached]", "[to run]"]  # tiny_a ran, tiny_b did not
    # a launched job's record still waiting in incoming/ of a folder with no bench.sqlite yet counts as stored
    from bench.store import ResultsStore
    from bench.store.incoming import deliver

    store = ResultsStore.open(results, write=False)
    (record,) = store.records()
    store.close()
    deliver(tmp_path / "jobs", record)
    code, out, _ = run_bench("validate", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "jobs")
    assert code == 0 and out.rstrip().endswith("[cached]"), out
    code, out, err = run_bench("validate", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", tmp_path / "nowhere")
    assert code == 1 and "data root" in out and "does not exist" in out


@pytest.mark.parametrize("workers", [0, 2])
def test_undecodable_image_names_the_file_and_stores_nothing(run_bench, cards, data_root, tmp_path, workers):
    bad = sorted((data_root / "imagenet" / "val").rglob("*.JPEG"))[5]
    bad.write_bytes(b"\xff\xd8\xff\xe0 broken jpeg")
    code, out, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", workers)
    assert code == 2
    assert err.startswith(f"bench: error: cannot decode image {bad}") and len(err.strip().splitlines()) == 1
    db = sqlite3.connect(tmp_path / "r" / "bench.sqlite")
    assert db.execute("SELECT count(*) FROM results").fetchone() == (0,)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--task", "imagenet_clss"], "unknown task 'imagenet_clss'. did you mean imagenet_cls or imagenet_c or imagenet_loc?"),
        (["--task", "wsol_*"], "no task matches 'wsol_*'"),
        (["--backbone", "tiny_c"], "unknown backbone 'tiny_c'. did you mean tiny_"),
        (["--data-root", "/nonexistent/data"], "data root /nonexistent/data does not exist"),
        (["--data-root", None], "no data root for dataset 'imagenet'. pass --data-root DIR"),
        (["--limit", "0"], "--limit must be positive"),
        (["--set", "nothing=1"], "task imagenet_cls has no setting nothing"),
        (["--data-path", "imagenet=/nope"], "imagenet folder /nope (from --data-path) does not exist"),
        (["--device", "cuda:3"], "no CUDA device"),
    ],
)
def test_user_errors_are_one_line(run_bench, cards, data_root, tmp_path, argv, message):
    args = {"--backbone": "tiny_a", "--task": "imagenet_cls", "--data-root": str(data_root), "--results": str(tmp_path / "r")}
    for flag, value in zip(argv[::2], argv[1::2]):
        if value is None:
            args.pop(flag)
        else:
            args[flag] = value
    flat = [x for kv in args.items() for x in kv]
    if torch.cuda.is_available() and "--device" in argv:
        pytest.skip("a CUDA device is present")
    code, out, err = run_bench("run", *flat, "--workers", 0)
    assert code == 2 and out == ""
    assert err.startswith("bench: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_wrong_sha256_on_a_card(run_bench, cards, data_root, tmp_path):
    card = Path(__import__("os").environ["BENCH_CARDS"]) / "tiny_a.yaml"
    card.write_text(CARD.format(name="tiny_a", n=NUM_CLASSES, file=cards["tiny_a"], sha="0" * 64))
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r")
    assert code == 2 and "weights.sha256 must be quoted" in err
    card.write_text(CARD.format(name="tiny_a", n=NUM_CLASSES, file=cards["tiny_a"], sha="'" + "0" * 64 + "'"))
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r")
    assert code == 2 and "sha256 mismatch" in err and "delete it and run again" in err
    assert not (tmp_path / "r" / "samples").exists()


def test_class_missing_from_val_is_refused_before_running(run_bench, cards, data_root, tmp_path):
    import shutil

    shutil.rmtree(next((data_root / "imagenet" / "val").iterdir()))
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r")
    assert code == 2 and f"has {NUM_CLASSES - 1} classes but the backbone predicts {NUM_CLASSES}" in err


def _bad_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = tiny_model()
    out = {}
    whole = save_cutmix_format(good, tmp_path / "good.pth.tar").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(whole[: len(whole) // 3])
    out["truncated"] = (tmp_path / "truncated.pth", "is a truncated or damaged PyTorch checkpoint")
    (tmp_path / "page.pth").write_text("<html>quota exceeded</html>")
    out["not a checkpoint"] = (tmp_path / "page.pth", "is not a PyTorch checkpoint (it starts with b'<htm')")
    torch.save(tiny_model(arch="resnet34", num_classes=NUM_CLASSES).state_dict(), tmp_path / "r34.pth")
    out["other architecture"] = (tmp_path / "r34.pth", "look like resnet34: pass --arch resnet34")
    sd = good.state_dict()
    torch.save({k: v for k, v in sd.items() if k != "layer2.0.bn1.weight"}, tmp_path / "missing.pth")
    out["missing keys"] = (tmp_path / "missing.pth", "1 missing (layer2.0.bn1.weight)")
    torch.save({**sd, "head2.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    out["extra keys"] = (tmp_path / "extra.pth", "1 unexpected (head2.weight)")
    torch.save({"state_dict": sd, "args": argparse_namespace()}, tmp_path / "code.pth")
    out["needs code"] = (tmp_path / "code.pth", "needs code to load")
    return out


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=0.1)


@pytest.mark.parametrize("kind", ["truncated", "not a checkpoint", "other architecture", "missing keys", "extra keys", "needs code"])
def test_bad_checkpoint_is_one_line_and_nonzero(run_bench, data_root, tmp_path, kind):
    path, message = _bad_checkpoints(tmp_path)[kind]
    code, out, err = run_bench("run", "--backbone", path, "--arch", "resnet18", "--num-classes", NUM_CLASSES, "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r")
    assert code == 2 and out == ""
    assert err.startswith("bench: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_debug_shows_the_traceback(run_bench, data_root, tmp_path):
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="does not exist"):
        run_bench("--debug", "run", "--backbone", tmp_path / "none.pth", "--arch", "resnet18", "--task", "imagenet_cls", "--data-root", data_root)


def test_list_and_did_you_mean(run_bench):
    code, out, _ = run_bench("list", "backbones", "r50_*")
    assert code == 0 and out.splitlines()[0].startswith("r50_baseline") and len(out.splitlines()) == 6
    code, out, _ = run_bench("list", "tasks")
    assert code == 0 and out.startswith("imagenet_cls  ")
    code, _, err = run_bench("list", "backbones", "r50_cutmx")
    assert code == 2 and "did you mean r50_cutmix" in err


def test_data_path_and_environment_variables(run_bench, cards, data_root, tmp_path, monkeypatch):
    """--data-path NAME=DIR points one dataset elsewhere; BENCH_DATA and BENCH_RESULTS stand in for
    --data-root and --results."""
    moved = tmp_path / "fast" / "ILSVRC2012"
    moved.parent.mkdir()
    (data_root / "imagenet").rename(moved)
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-path", f"imagenet={moved}", "--results", tmp_path / "r1", "--workers", 0)
    assert code == 0, err
    one = json.loads(run_bench("export", "--results", tmp_path / "r1")[1])
    assert len(one) == 1 and one[0]["n_samples"]["total"] == 24
    (tmp_path / "env" / "imagenet").parent.mkdir()
    moved.rename(tmp_path / "env" / "imagenet")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "r2"))
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--workers", 0)
    assert code == 0, err
    two = json.loads(run_bench("export")[1])
    assert (tmp_path / "r2" / "bench.sqlite").is_file() and two[0]["metrics"] == one[0]["metrics"]


def test_trust_checkpoint_on_the_command_line(run_bench, data_root, tmp_path):
    from test_loading import NeedsCode

    model = tiny_model(seed=3)
    torch.save({"state_dict": model.state_dict(), "extra": NeedsCode(1)}, tmp_path / "code.pth")
    args = ["run", "--backbone", tmp_path / "code.pth", "--arch", "resnet18", "--num-classes", NUM_CLASSES, "--task", "imagenet_cls",
            "--data-root", data_root, "--workers", 0]
    code, _, err = run_bench(*args, "--results", tmp_path / "r")
    assert code == 2 and "needs code to load" in err and "--trust-checkpoint" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_bench(*args, "--results", tmp_path / "r", "--trust-checkpoint")
    assert code == 0, err
    plain = save_cutmix_format(model, tmp_path / "plain.pth.tar")
    code, _, err = run_bench(*[plain if a == tmp_path / "code.pth" else a for a in args], "--results", tmp_path / "r2")
    assert code == 0, err
    trusted, reference = (json.loads(run_bench("export", "--results", tmp_path / d)[1])[0] for d in ("r", "r2"))
    assert trusted["metrics"] == reference["metrics"]


def test_a_typo_in_a_grid_stops_before_any_cell_runs(run_bench, cards, data_root, tmp_path):
    code, out, err = run_bench("run", "--backbone", "tiny_a,tiny_c", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)
    assert code == 2 and "tiny_c" in err and "did you mean" in err and len(err.strip().splitlines()) == 1
    assert "| tiny_a" not in out and not (tmp_path / "r" / "bench.sqlite").exists()  # tiny_a did not run first


def test_debug_and_quiet_work_after_the_subcommand(run_bench, cards, tmp_path):
    from bench.cli import build_parser

    for argv in (["--debug", "list", "tasks"], ["list", "tasks", "--debug"], ["run", "--backbone", "x", "--task", "y", "--debug", "--quiet"],
                 ["score", "voc", "--detections", "d", "--devkit", "v", "--debug"]):
        args = build_parser().parse_args(argv)
        assert args.debug is True, argv
    assert build_parser().parse_args(["list", "tasks"]).debug is False and build_parser().parse_args(["--quiet", "list", "tasks"]).quiet is True
    with pytest.raises(BenchError):  # --debug after the subcommand re-raises instead of printing one line
        from bench.cli import main

        main(["run", "--backbone", "no_such_card", "--task", "imagenet_cls", "--results", str(tmp_path / "r"), "--debug"])


def test_export_into_a_new_folder_and_into_a_closed_pipe(run_bench, cards, data_root, tmp_path):
    import subprocess
    import sys

    assert run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)[0] == 0
    code, _, err = run_bench("export", "--results", tmp_path / "r", "--output", tmp_path / "new" / "deeper" / "all.json")
    assert code == 0, err
    assert len(json.loads((tmp_path / "new" / "deeper" / "all.json").read_text())) == 1
    # `bench export | head`: the reader goes away; one quiet exit 0, no traceback, no "Exception ignored"
    script = ("import os, sys\nr, w = os.pipe()\nos.close(r)\nos.dup2(w, 1)\nfrom bench.cli import main\n"
              "rc = main(['export', '--results', sys.argv[1]])\nos.write(2, f'RC {rc}'.encode())\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "RC 0", out.stderr


def test_negative_workers_is_one_clear_line(run_bench, cards, data_root, tmp_path):
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", -1)
    assert code == 2 and "--workers must be 0 or more, got -1" in err and "--workers 0 loads data in the main process" in err


def test_a_checkpoint_with_another_classifier_size_is_named_not_the_data(run_bench, data_root, tmp_path):
    """A 12-way file without --num-classes: the checkpoint's classifier is the problem (the val set was
    blamed before: "a class is missing ... restore the complete val set")."""
    ckpt = save_cutmix_format(tiny_model(num_classes=NUM_CLASSES), tmp_path / "m.pth.tar")
    code, _, err = run_bench("run", "--backbone", ckpt, "--arch", "resnet18", "--task", "imagenet_cls", "--data-root", data_root,
                             "--results", tmp_path / "r", "--workers", 0)
    assert code == 2 and f"the checkpoint's classifier has {NUM_CLASSES} outputs: pass --num-classes {NUM_CLASSES}" in err
    assert "val set" not in err and len(err.strip().splitlines()) == 1


def test_limit_spans_the_classes_and_a_limit_above_the_split_is_not_limited(run_bench, cards, data_root, tmp_path):
    """The class-folder layout lists images class by class (2 per class here): --limit 12 takes one
    of every class, where the first 12 files would have been 6 classes."""
    args = ["run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    assert run_bench(*args, "--limit", 12)[0] == 0
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[0]
    samples = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    assert [s["index"] for s in samples] == list(range(0, 24, 2)) and sorted(s["target"] for s in samples) == list(range(NUM_CLASSES))
    assert record["limited"] is True and record["n_samples"] == {"total": 24, "evaluated": 12}
    assert run_bench(*args, "--limit", 500)[0] == 0
    whole = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    assert whole["limited"] is False and whole["n_samples"] == {"total": 24, "evaluated": 24}
