"""`bench check` end to end on trained mini backbones: a checkpoint damaged on purpose is "worse"
(exit 1), a checkpoint against itself "equivalent" (exit 0), two seeds of one recipe are not
"worse"; the numbers it prints equal an independent recomputation from the samples files and the
stored metrics; and every bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from bench.cli import main
from bench.mini.build import MiniSpec, ensure_data, ensure_zoo, weights_file

SPEC = MiniSpec(seed=0, train=600, val=1000, epochs=4, datasets=("imagenet", "cub"))
ARCH = ["--arch", "bench.mini.model:mini_resnet", "--num-classes", "10"]


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Trained mini backbones; 'worse', mini_baseline's file with its weights replaced by noise
    (batch norm kept); 'twin', a copy of mini_cutmix's file; 'wide', a copy of mini_baseline's
    scored with another resize. All of them stored on imagenet_cls and cub_loc (cub_loc for
    mini_cutmix and twin under seeds 0 and 1). Built once per test run, under a lock, for every
    pytest-xdist worker; read it, never change it (tests that damage files copy the results)."""
    import fcntl
    import os

    top = tmp_path_factory.getbasetemp()
    base = (top.parent if os.environ.get("PYTEST_XDIST_WORKER") else top) / "check-world"
    base.mkdir(parents=True, exist_ok=True)
    with open(base.parent / "check-world.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / ".complete").is_file():
            _build_world(base)
            (base / ".complete").touch()
    return {"base": base, "root": ensure_data(base / "mini", SPEC), "results": base / "results"}


def _build_world(base: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE", str(base / "cache"))
        mp.setenv("TQDM_DISABLE", "1")
        mp.chdir(base)
        root = ensure_data(base / "mini", SPEC)
        ensure_zoo(root, base / "mini", SPEC, progress=False)
        raw = torch.load(weights_file("baseline"), map_location="cpu", weights_only=False)
        g = torch.Generator().manual_seed(0)
        for k, v in raw["state_dict"].items():
            if v.is_floating_point() and v.dim() > 1:
                raw["state_dict"][k] = torch.randn(v.shape, generator=g) * v.std()
        torch.save(raw, base / "worse.pth.tar")
        shutil.copy(weights_file("cutmix"), base / "twin.pth.tar")
        shutil.copy(weights_file("baseline"), base / "wide.pth.tar")
        results = base / "results"
        common = ["--mini", "--data-root", str(root), "--results", str(results), "--quiet", "--workers", "0"]
        assert main(["run", "--backbone", "mini_baseline,mini_cutmix", "--task", "imagenet_cls,cub_loc", *common]) == 0
        assert main(["run", "--backbone", f"worse={base / 'worse.pth.tar'}", *ARCH, "--preprocessing-from", "mini_baseline", "--task", "imagenet_cls,cub_loc", *common]) == 0
        assert main(["run", "--backbone", "mini_cutmix", "--task", "imagenet_cls,cub_loc", "--seeds", "2", *common]) == 0
        assert main(["run", "--backbone", f"twin={base / 'twin.pth.tar'}", *ARCH, "--preprocessing-from", "mini_cutmix", "--task", "cub_loc", "--seeds", "0,1", *common]) == 0
        assert main(["run", "--backbone", f"wide={base / 'wide.pth.tar'}", *ARCH, "--preprocessing-from", "mini_baseline", "--resize", "72", "--task", "imagenet_cls", *common]) == 0


def check(world, *args, fmt="json"):
    return main(["check", "--results", str(world["results"]), "--format", fmt, *args])


def rows_of(world, backbone, task):
    db = sqlite3.connect(world["results"] / "bench.sqlite")
    records = [json.loads(r) for (r,) in db.execute("SELECT record FROM results WHERE backbone = ? AND task = ? ORDER BY seed", (backbone, task))]
    return records, [[json.loads(line) for line in Path(r["artifacts"]["samples"]).read_text().splitlines()] for r in records]


def test_run_seeds_runs_seeded_tasks_per_seed_and_deterministic_ones_once(world):
    db = sqlite3.connect(world["results"] / "bench.sqlite")
    counts = dict(db.execute("SELECT task, COUNT(*) FROM results WHERE backbone = 'mini_cutmix' GROUP BY task"))
    assert counts == {"imagenet_cls": 1, "cub_loc": 2}
    assert sorted(s for (s,) in db.execute("SELECT seed FROM results WHERE backbone = 'twin'")) == [0, 1]


def test_a_damaged_checkpoint_is_worse_and_the_numbers_are_the_samples(world, capsys, tmp_path):
    out = tmp_path / "check.json"
    code = check(world, "--backbone", f"worse={world['base'] / 'worse.pth.tar'}", *ARCH, "--against", "mini_baseline", "--output", str(out))
    report = json.loads(out.read_text())
    assert code == 1 and json.loads(capsys.readouterr().out) == report
    by = {(m["task"], m["metric"]): m for m in report["metrics"]}
    assert by["imagenet_cls", "top1_err"]["verdict"] == "worse" and by["cub_loc", "maxboxacc_v2"]["verdict"] == "worse"
    assert "worse than mini_baseline" in report["summary"]
    # independent recomputation: the stored metrics, statsmodels' McNemar and Wilson on the samples files
    (new_rec,), (new_rows,) = rows_of(world, "worse", "imagenet_cls")
    (ref_rec,), (ref_rows,) = rows_of(world, "mini_baseline", "imagenet_cls")
    r = by["imagenet_cls", "top1_err"]["result"]
    assert r["new"] == pytest.approx(new_rec["metrics"]["top1_err"], abs=1e-9) and r["ref"] == pytest.approx(ref_rec["metrics"]["top1_err"], abs=1e-9)
    wrong_new = {x["index"]: x["top5"][0] != x["target"] for x in new_rows}
    wrong_ref = {x["index"]: x["top5"][0] != x["target"] for x in ref_rows}
    b = sum(wrong_new[i] and not wrong_ref[i] for i in wrong_new)
    c = sum(wrong_ref[i] and not wrong_new[i] for i in wrong_new)
    assert r["p"] == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue, rel=1e-9)
    assert r["diff"] == pytest.approx(100 * (b - c) / len(wrong_new), abs=1e-9) and r["low"] <= r["diff"] <= r["high"]
    lo, hi = proportion_confint(sum(wrong_new.values()), len(wrong_new), method="wilson")
    assert (r["new_low"], r["new_high"]) == pytest.approx((100 * lo, 100 * hi), abs=1e-9)
    # the bootstrap's observed values are the stored MaxBoxAcc / MaxBoxAccV2 (computed by the scorer at run time)
    (cub_new,), _ = rows_of(world, "worse", "cub_loc")
    assert by["cub_loc", "maxboxacc_v2"]["result"]["new"] == pytest.approx(cub_new["metrics"]["maxboxacc_v2"], abs=1e-9)
    assert by["cub_loc", "maxboxacc"]["result"]["new"] == pytest.approx(cub_new["metrics"]["maxboxacc"], abs=1e-9)
    assert by["cub_loc", "maxboxacc_v2"]["result"]["resamples"] == 2000 and by["imagenet_cls", "top1_err"]["result"]["resamples"] == 10000


def test_a_checkpoint_against_itself_is_equivalent(world, capsys):
    assert check(world, "--backbone", "mini_baseline", "--against", "mini_baseline", "--task", "imagenet_cls,cub_loc") == 0
    report = json.loads(capsys.readouterr().out)
    assert {m["verdict"] for m in report["metrics"]} == {"equivalent"}
    assert all(m["result"]["diff"] == 0 and m["result"]["low"] == 0 == m["result"]["high"] for m in report["metrics"])


def test_two_seeds_of_one_recipe_are_not_worse(world, capsys):
    assert check(world, "--backbone", f"twin={world['base'] / 'twin.pth.tar'}", *ARCH, "--against", "mini_cutmix", "--task", "cub_loc") == 0
    report = json.loads(capsys.readouterr().out)
    assert all(m["verdict"] != "worse" for m in report["metrics"])
    top = next(m for m in report["metrics"] if m["metric"] == "maxboxacc_v2")
    assert top["seeds"] == [[0, 1], [0, 1]] and top["result"]["kind"] == "seeds" and "image_level" in top
    # the seed level: the difference of the seed means of the stored values
    twin, _ = rows_of(world, "twin", "cub_loc")
    cut, _ = rows_of(world, "mini_cutmix", "cub_loc")
    assert top["result"]["diff"] == pytest.approx(np.mean([r["metrics"]["maxboxacc_v2"] for r in twin]) - np.mean([r["metrics"]["maxboxacc_v2"] for r in cut]), abs=1e-9)
    # one seed per side: image noise only, and the verdict says so
    assert check(world, "--backbone", f"twin={world['base'] / 'twin.pth.tar'}", *ARCH, "--against", "mini_cutmix", "--task", "cub_loc", "--seeds", "1", fmt="md") == 0
    text = capsys.readouterr().out
    assert "image noise only: one seed per side; --seeds on both for a claim about the recipe" in text and "verdict: twin is not worse" in text


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("bench: error: "), err
    for needle in needles:
        assert needle in err, err


def test_bad_input_is_one_line_and_writes_nothing(world, capsys, tmp_path):
    out = tmp_path / "out.json"
    against = ["--backbone", "mini_cutmix", "--against", "mini_baseline", "--output", str(out)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: {imagenet_cls: {top1_err: [}")
    one_line_error(capsys, check(world, *against, "--tolerance", str(bad)), "not valid YAML", str(bad))
    bad.write_text("tasks:\n  imagenet_cls: {top1_eror: 0.5}\n")
    one_line_error(capsys, check(world, *against, "--tolerance", str(bad)), "metric 'top1_eror'", "does not emit")
    bad.write_text("tasks:\n  imagenet_cls: {top1_err: -1}\n")
    one_line_error(capsys, check(world, *against, "--tolerance", str(bad)), "must be a number >= 0")
    one_line_error(capsys, check(world, "--backbone", "mini_cutmix", "--against", "mini_mixup", "--task", "imagenet_cls"), "mini_mixup has no complete imagenet_cls results")
    one_line_error(capsys, check(world, "--backbone", f"wide={world['base'] / 'wide.pth.tar'}", *ARCH, "--against", "mini_baseline", "--task", "imagenet_cls"),
                   "different the setting preprocessing.resize (72 vs 64)", "--allow-config-diff")
    one_line_error(capsys, check(world, *against, "--task", "imagenet_clss"), "unknown task 'imagenet_clss'")
    one_line_error(capsys, check(world, *against, "--seeds", "0,0"), "--seeds lists a seed twice")
    one_line_error(capsys, check(world, *against, "--seeds", "0,-1"), "negative")
    one_line_error(capsys, main(["run", "--backbone", "mini_cutmix", "--task", "cub_loc", "--seeds", "1,1"]), "--seeds lists a seed twice")
    assert not out.exists()
    # damaged samples files, in a copy of the results folder: missing, truncated, other sample ids
    copy = tmp_path / "results"
    shutil.copytree(world["results"], copy)
    (rec,), _ = rows_of(world, "mini_baseline", "imagenet_cls")
    samples = copy / "samples" / f"{rec['run_id']}.jsonl"
    text = samples.read_text()
    argv = ["check", "--results", str(copy), "--backbone", "mini_cutmix", "--against", "mini_baseline", "--task", "imagenet_cls", "--output", str(out)]
    samples.write_text(text[: len(text) // 2])
    one_line_error(capsys, main(argv), "truncated or corrupt at line", "--force")
    samples.write_text(text.replace('"index":0,', '"index":100000,', 1))
    one_line_error(capsys, main(argv), "scored other samples", "(1000 and 1000, 999 in common)")
    samples.unlink()
    one_line_error(capsys, main(argv), "samples file of mini_baseline x imagenet_cls (seed 0) is missing", "--force")
    assert not out.exists()


def test_the_shipped_tolerances_name_real_metrics():
    """The default file is read without validation at run time (no task module imported); here it is validated."""
    from bench.checks.verdicts import DEFAULTS, Tolerances

    tol = Tolerances(DEFAULTS)  # as a user's file: every task and metric checked
    assert tol.by_task["imagenet_cls"]["top1_err"][0] == 0.3 and tol.by_unit["%"][0] == 1.0


def test_check_from_stored_results_imports_no_torch(world):
    import subprocess
    import sys

    code = ("import sys\nfrom bench.cli import main\ncode = main(['check', '--backbone', 'mini_cutmix', '--against', 'mini_baseline', '--results', %r])\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nsys.exit(code)" % str(world["results"]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert "verdict: mini_cutmix is not worse than mini_baseline" in out.stdout


def test_compare_lists_the_discordant_images_and_tests_each_class(world, capsys):
    from statsmodels.stats.multitest import multipletests

    assert main(["compare", "mini_cutmix", "mini_baseline", "--task", "imagenet_cls", "--results", str(world["results"]), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    (_,), (a_rows,) = rows_of(world, "mini_cutmix", "imagenet_cls")
    (_,), (b_rows,) = rows_of(world, "mini_baseline", "imagenet_cls")
    right_a = {r["image"]: r["top5"][0] == r["target"] for r in a_rows}
    right_b = {r["image"]: r["top5"][0] == r["target"] for r in b_rows}
    only_a = sorted(i for i in right_a if right_a[i] and not right_b[i])
    only_b = sorted(i for i in right_a if right_b[i] and not right_a[i])
    assert d["metric"] == "top1_err" and d["n"] == 1000
    assert sorted(r["image"] for r in d["only_a"]) == only_a and sorted(r["image"] for r in d["only_b"]) == only_b
    assert all(r["mini_cutmix pred"] == r["target"] != r["mini_baseline pred"] for r in d["only_a"])
    target = {r["image"]: r["target"] for r in a_rows}
    per = {c["class"]: c for c in d["per_class"]}
    ps = []
    for c in sorted(per, key=lambda c: -(per[c]["mini_cutmix only"] + per[c]["mini_baseline only"])):
        x, y = sum(target[i] == c for i in only_a), sum(target[i] == c for i in only_b)
        assert (per[c]["mini_cutmix only"], per[c]["mini_baseline only"]) == (x, y)
        assert per[c]["p"] == pytest.approx(mcnemar([[0, x], [y, 0]], exact=True).pvalue, rel=1e-9)
        ps.append(per[c]["p"])
    assert [per[c]["p_holm"] for c in sorted(per, key=lambda c: -(per[c]["mini_cutmix only"] + per[c]["mini_baseline only"]))] == pytest.approx(
        multipletests(ps, method="holm")[1].tolist(), abs=1e-12)
    # WSOL: the IoUs of both sides
    assert main(["compare", "mini_cutmix", "mini_baseline", "--task", "cub_loc", "--metric", "top1_err", "--results", str(world["results"])]) == 0
    assert "| mini_cutmix iou | mini_baseline iou |" in capsys.readouterr().out


def test_check_run_runs_the_missing_cells_first(world, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(world["base"] / "cache"))  # where the mini backbones were trained
    copy = tmp_path / "results"
    shutil.copytree(world["results"], copy)
    code = main(["check", "--backbone", "mini_mixup", "--against", "mini_baseline", "--task", "imagenet_cls", "--run", "--mini", "--data-root", str(world["root"]),
                 "--results", str(copy), "--format", "json", "--quiet"])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    report = json.loads(out.out)
    assert code in (0, 1) and report["new"] == "mini_mixup" and "| mini_mixup " in out.err  # the run's table goes to stderr
    db = sqlite3.connect(copy / "bench.sqlite")
    assert db.execute("SELECT COUNT(*) FROM results WHERE backbone = 'mini_mixup' AND task = 'imagenet_cls'").fetchone() == (1,)


def test_against_paper_needs_published_numbers(world, capsys):
    one_line_error(capsys, check(world, "--backbone", "mini_cutmix", "--against", "paper", "--task", "imagenet_cls"), "has no published numbers for imagenet_cls")


def test_strict_fails_on_an_inconclusive_headline_metric(world, capsys):
    argv = ["--backbone", "mini_cutmix", "--against", "mini_baseline", "--task", "imagenet_cls"]
    assert check(world, *argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert any(m["headline"] and m["verdict"] == "inconclusive" for m in report["metrics"])  # 1,000 images cannot show a 0.3-point equivalence
    assert check(world, *argv, "--strict") == 3
