"""What a new user meets first: named checkpoint files run together, `bench list results`, one-line
usage errors, the demo's folders in the errors, and the smaller answers of the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import NUM_CLASSES, save_cutmix_format, tiny_model

COMMON = ["--task", "imagenet_cls", "--num-classes", NUM_CLASSES, "--workers", 0, "--batch-size", 6]


def _rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ") and not line.startswith("| Backbone")]


@pytest.fixture
def two_files(tmp_path) -> tuple[Path, Path]:
    """Two different checkpoints, both called model_best.pth.tar, as two training runs leave them."""
    a, b = tmp_path / "run_a" / "model_best.pth.tar", tmp_path / "run_b" / "model_best.pth.tar"
    for seed, path in ((1, a), (2, b)):
        path.parent.mkdir()
        save_cutmix_format(tiny_model(seed=seed), path)
    return a, b


def test_named_files_share_one_arch_and_their_names_are_the_rows(run_bench, two_files, data_root, tmp_path):
    a, b = two_files
    results = tmp_path / "r"
    common = [*COMMON, "--data-root", data_root, "--results", results, "--arch", "resnet18"]
    code, out, err = run_bench("run", "--backbone", f"mine={a},theirs={b}", *common)
    assert code == 0, err
    names = {row[0] for row in _rows(out)}
    assert names == {"mine", "theirs"}
    records = json.loads(run_bench("export", "--results", results)[1])
    import hashlib
    assert {r["backbone"]["name"]: r["backbone"]["sha256"] for r in records} == {
        "mine": hashlib.sha256(a.read_bytes()).hexdigest(), "theirs": hashlib.sha256(b.read_bytes()).hexdigest()}
    # each is its own evaluation: the same numbers as running the file alone under its file name
    for name, path in (("mine", a), ("theirs", b)):
        code, solo, _ = run_bench("run", "--backbone", path, *COMMON, "--data-root", data_root, "--results", tmp_path / f"solo_{name}", "--arch", "resnet18")
        assert code == 0
        ours = next(r for r in records if r["backbone"]["name"] == name)
        theirs = json.loads(run_bench("export", "--results", tmp_path / f"solo_{name}")[1])[0]
        assert ours["metrics"] == theirs["metrics"] and theirs["backbone"]["name"] == "model_best.pth.tar"
    code, report, _ = run_bench("report", "--results", results)
    assert "| mine " in report and "| theirs " in report and "@" not in report
    # --name for one file; cached under the same name, and a name is part of the cell like a card's
    code, out, _ = run_bench("run", "--backbone", a, "--name", "mine", *common)
    assert code == 0 and "cached" in out and _rows(out)[0][0] == "mine"


@pytest.mark.parametrize("argv, message", [
    (["--backbone", "{a},{b}"], "backbones {a} and {b} would both be called 'model_best.pth.tar'"),
    (["--backbone", "{a},{b}", "--name", "x"], "--name names one checkpoint file, but 2 were given"),
    (["--backbone", "tiny_a={a}"], "display name 'tiny_a' of {a} is the name of a card"),
    (["--backbone", "x={a},x={b}"], "would both be called 'x'"),
    (["--backbone", "tiny_b", "--name", "x"], "--name names one checkpoint file, but 0 were given"),
])
def test_bad_names_are_one_line_before_any_cell_runs(run_bench, cards, two_files, data_root, tmp_path, argv, message):
    a, b = two_files
    argv = [v.format(a=a, b=b) for v in argv]
    code, out, err = run_bench("run", *argv, *COMMON, "--data-root", data_root, "--results", tmp_path / "r", "--arch", "resnet18")
    assert code == 2 and message.format(a=a, b=b) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_list_results_names_every_record(run_bench, cards, data_root, tmp_path):
    results = tmp_path / "r"
    common = ["--data-root", data_root, "--results", results, "--workers", 0]
    assert run_bench("run", "--backbone", "tiny_a,tiny_b", "--task", "imagenet_cls", *common)[0] == 0
    assert run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_fgsm", "--limit", 6, "--set", "eps=[0.01]", *common)[0] == 0
    code, out, err = run_bench("list", "results", "--results", results)
    assert code == 0, err
    rows = _rows(out)
    records = json.loads(run_bench("export", "--results", results)[1])
    assert len(rows) == len(records) == 3
    for row, r in zip(rows, records):  # oldest first, like the store
        assert row[0] == r["backbone"]["name"] and row[1] == r["backbone"]["sha256"][:12]
        assert row[2] == f"{r['task']['name']} v{r['task']['version']}" and row[4] == str(r["seed"])
        assert row[5] == r["created_at"][:16].replace("T", " ")
        assert row[7] == (r["artifacts"].get("samples") or "-")
    fgsm = rows[2]
    assert fgsm[3] == "eps=[0.01]" and fgsm[6] == f"6/{2 * NUM_CLASSES}"
    assert rows[0][3] == "defaults" and rows[0][6] == "no"
    code, out, _ = run_bench("list", "results", "tiny_b", "--results", results)
    assert [r[0] for r in _rows(out)] == ["tiny_b"]
    code, _, err = run_bench("list", "results", "--results", tmp_path / "none")
    assert code == 2 and "no results store at" in err


def test_usage_errors_are_one_line(run_bench):
    for argv, message in ((["run", "--backbone", "a", "--task", "b", "--limit", "abc"], "argument --limit: invalid int value: 'abc' (see 'bench run --help')"),
                          (["lst"], "invalid choice: 'lst'"), (["score"], "the following arguments are required: WHAT")):
        with pytest.raises(SystemExit) as exc:
            run_bench(*argv)
        assert exc.value.code == 2


def test_usage_error_text_is_one_line(capsys):
    from bench.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--backbone", "a", "--task", "b", "--limit", "abc"])
    err = capsys.readouterr().err
    assert err == "bench: error: argument --limit: invalid int value: 'abc' (see 'bench run --help')\n"


def test_a_task_without_settings_says_so(run_bench):
    code, out, _ = run_bench("list", "settings", "imagenet_cls")
    assert code == 0 and "imagenet_cls has no settings" in out and "| Setting" not in out
    code, out, _ = run_bench("list", "settings", "imagenet_fgsm")
    assert code == 0 and "| Setting" in out and "eps " in out


def test_a_cached_run_lists_metrics_in_the_tasks_order(run_bench, cards, data_root, tmp_path):
    common = ["--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    code, new, _ = run_bench("run", *common)
    code, cached, _ = run_bench("run", *common)
    order_new, order_cached = [r[2] for r in _rows(new)], [r[2] for r in _rows(cached)]
    from tasks.classification import ImageNetClassification

    declared = [m.name for m in ImageNetClassification.metrics]
    assert order_new == order_cached and "cached" in cached
    assert order_new == [n for n in declared if n in order_new] and order_new != sorted(order_new)


def test_score_ood_names_a_classification_samples_file(run_bench, cards, data_root, tmp_path):
    results = tmp_path / "r"
    run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", results, "--workers", 0)
    samples = json.loads(run_bench("export", "--results", results)[1])[0]["artifacts"]["samples"]
    code, _, err = run_bench("score", "ood", "--samples", samples)
    assert code == 2 and "is not an OOD task's samples file" in err and "pick one with --score" not in err


def test_errors_point_at_the_demos_folders(run_bench, tmp_path, monkeypatch):
    cache = tmp_path / "cache"  # BENCH_CACHE (isolated_env)
    code, _, err = run_bench("report")
    assert code == 2 and "no results store" in err and "the demo's results" not in err
    code, out, _ = run_bench("validate", "--backbone", "torchvision:resnet18.IMAGENET1K_V1", "--task", "imagenet_cls")
    assert "no data root" in out and "the demo's data" not in out
    (cache / "mini" / "results").mkdir(parents=True)
    sqlite3.connect(cache / "mini" / "results" / "bench.sqlite").close()
    data = cache / "mini" / "data" / "digits-key"
    data.mkdir(parents=True)
    (data / ".complete").write_text("digits-key\n")
    from bench.demo import point_current

    point_current(data)
    code, _, err = run_bench("report")
    assert code == 2 and f"the demo's results are --results {cache / 'mini' / 'results'}" in err
    code, out, _ = run_bench("validate", "--backbone", "torchvision:resnet18.IMAGENET1K_V1", "--task", "imagenet_cls")
    assert f"the demo's data is --data-root {cache / 'mini' / 'data' / 'current'} (with --mini)" in out


def test_the_robustness_figure_names_what_imagenet_c_was():
    from bench.figures import corruption_source

    assert corruption_source({"source": "released", "root": "/data/ImageNet-C"}) == "released files"
    assert corruption_source({"source": "released", "origin": "mini"}) == "mini benchmark, generated by bench"
    assert corruption_source({"source": "generated", "library": "imagecorruptions-imaug 1.0"}) == "generated by bench from ImageNet val, imagecorruptions-imaug 1.0"


def test_the_mini_imagenet_c_says_where_it_came_from(tmp_path):
    """The mini data's ImageNet-C is in the released layout, and its records say bench made it."""
    from bench.data.imagenet_c import MINI_MARKER
    from bench.mini.build import MiniSpec, write_imagenet_c
    from bench.mini.digits import make_scenes

    spec = MiniSpec(seed=0, train=10, val=20)
    write_imagenet_c(tmp_path, make_scenes("train", 10, 0), make_scenes("val", 20, 0), spec)
    assert json.loads((tmp_path / "ImageNet-C" / MINI_MARKER).read_text())["origin"] == "mini"
