"""bench report --table: every table and format from a store of synthetic records for all the real
cards and every task, each number checked against an independent recomputation from the store;
the LaTeX compiled by pdflatex; the HTML page driven in headless Chromium; bad input refused in one
line with nothing written."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from bench.cards import load_cards
from bench.cli import main
from bench.report import catalog
from bench.report.latex import escape
from bench.store import ResultsStore
from browser import column_order, console_errors, needs_chromium, open_page, screenshot_colours, shown_cells
from report_store import synthetic_records, write_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    folder = write_store(tmp_path_factory.mktemp("synthetic") / "results", synthetic_records(seeds=2))
    return folder, list(ResultsStore.open(folder, write=False).records())


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _expected(records):
    """(backbone, task, metric) -> the stored values, by an independent walk over the records."""
    values = defaultdict(list)
    for r in records:
        for m, v in r["metrics"].items():
            values[r["backbone"]["name"], r["task"]["name"], m].append(v)
    return values


def test_the_catalog_is_the_tasks_declarations():
    assert catalog.load() == catalog.from_specs(), "tasks/report_tables.json is stale: python -m bench.report.catalog"


def test_every_cell_of_every_table_equals_the_store(synthetic, capsys):
    folder, records = synthetic
    code, out, _ = _run(capsys, "report", "--results", folder, "--table", "all", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    values = _expected(records)
    cards = load_cards()
    higher = {(r["task"]["name"], m): r["metric_meta"][m]["higher_is_better"] for r in records for m in r["metrics"]}
    cells = doc["cells"]
    assert {t["name"] for t in doc["tables"]} >= {"transfer", "tables_3_4", "table_5", "table_9", "table_10", "table_11", "table_12", "table_a1",
                                                  "table_a2", "figure_5a", "figure_5b", "imagenet_c", "calibration", "distribution_shift", "imagenet_ood"}
    for c in cells:
        vals = values[c["backbone"], c["task"], c["metric"]]
        assert c["value"] == pytest.approx(float(np.mean(vals)), abs=1e-12)
        assert c["n_seeds"] == len(vals)
        assert c["std"] == (pytest.approx(float(np.std(vals, ddof=1)), abs=1e-12) if len(vals) > 1 else None)
        card = cards[c["backbone"]]
        key = next(r for r in records if r["task"]["name"] == c["task"])["task"]["name"]
        assert c["published"] == card.reported(_reported_key(key)).get(c["metric"])
    # the column's best by the metric's direction, and the baseline: the *_baseline card of the same architecture
    by_column = defaultdict(list)
    for c in cells:
        by_column[c["table"], c["column"]].append(c)
    arch = {name: card.arch for name, card in cards.items()}
    for (table, column), cs in by_column.items():
        up = higher[cs[0]["task"], cs[0]["metric"]]
        best = (max if up else min)(c["value"] for c in cs)
        assert {c["backbone"] for c in cs if c["best"]} == ({c["backbone"] for c in cs if c["value"] == best} if len(cs) > 1 else set()), (table, column)
        for c in cs:
            base = next((b for b in cs if b["backbone"].endswith("_baseline") and arch[b["backbone"]] == arch[c["backbone"]]), None)
            if base is None or base is c:
                assert c["baseline_diff"] is None
            else:
                assert c["baseline"] == base["backbone"] and c["baseline_diff"] == pytest.approx(c["value"] - base["value"], abs=1e-12)
    # every card has a row in the tables of every task that declares one (every card x every task)
    tagged = {(t, m) for t, e in catalog.load().items() for m in e["metrics"]}
    for name in cards:
        for task, spec in tagged:
            assert any(c["backbone"] == name and c["task"] in _fillers(task) for c in cells), (name, task, spec)
    assert len(cards) == len(list((ROOT / "checkpoints").glob("*.yaml"))) == 24


def _reported_key(task: str) -> str:
    from tasks import TASKS

    return TASKS.get(task).load().reported_key or task


def _fillers(task: str) -> set[str]:
    """voc_det shares its columns with voc_det_frcnn and voc_det_ssd: the newest record fills them."""
    return {"voc_det", "voc_det_frcnn", "voc_det_ssd"} if task.startswith("voc_det") else {task}


def test_csv_markdown_and_latex_carry_the_same_numbers(synthetic, capsys, tmp_path):
    folder, records = synthetic
    _, js, _ = _run(capsys, "report", "--results", folder, "--table", "transfer,table_9", "--format", "json")
    cells = json.loads(js)["cells"]
    _, text, _ = _run(capsys, "report", "--results", folder, "--table", "transfer,table_9", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(cells)
    for row, cell in zip(rows, cells):
        assert float(row["value"]) == pytest.approx(cell["value"], abs=1e-9) and row["backbone"] == cell["backbone"] and row["metric"] == cell["metric"]
        assert (row["published"] == "") == (cell["published"] is None) and row["run_ids"].split() == cell["run_ids"].split()
    _, md, _ = _run(capsys, "report", "--results", folder, "--table", "transfer", "--backbones", "r50_*")
    line = next(x for x in md.splitlines() if x.startswith("| r50_cutmix "))
    cell = next(c for c in cells if c["table"] == "transfer" and c["backbone"] == "r50_cutmix" and c["metric"] == "top1_err")
    assert f"{cell['value']:.2f}" in line and f"[{cell['published']:.2f}]" in line and f"({cell['baseline_diff']:+.2f})" in line
    assert cell["published"] == 21.40  # the paper's Table 3, via the card


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex (texlive-latex-base/-recommended; .ci/run installs them)")
def test_the_latex_tables_compile(synthetic, capsys, tmp_path):
    folder, records = synthetic
    odd = [dict(r, backbone={**r["backbone"], "name": "mine_50%&#$"}, run_id=r["run_id"] + "x", cell_key=r["cell_key"] + "x") for r in records[:3]]
    store = write_store(tmp_path / "odd", records + odd)
    code, out, _ = _run(capsys, "report", "--results", store, "--table", "all", "--format", "latex", "--ci", "--output", tmp_path / "tables.tex")
    assert code == 0
    tex = (tmp_path / "tables.tex").read_text()
    assert tex.count(r"\begin{table}") == len(json.loads(_run(capsys, "report", "--results", store, "--table", "all", "--format", "json")[1])["tables"])
    assert r"mine\_50\%\&\#\$" in tex and r"\toprule" in tex
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
                   "\\input{tables.tex}\n\\end{document}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_latex_escapes_every_special_character():
    assert escape("a_b % & # $ { } [ ] < > \\ ~ ^") == (r"a\_b \% \& \# \$ \{ \} {[} {]} \textless{} \textgreater{} \textbackslash{} "
                                                         r"\textasciitilde{} \textasciicircum{}")
    assert escape("1.00 ± 0.20 ↑") == r"1.00 $\pm$ 0.20 $\uparrow$"


def test_seeds_under_different_settings_are_not_averaged(synthetic, capsys, tmp_path):
    folder, records = synthetic
    mine = [r for r in records if r["backbone"]["name"] == "r50_cutmix" and r["task"]["name"] == "cub_loc"]
    other = dict(mine[0], run_id=mine[0]["run_id"] + "o", cell_key=mine[0]["cell_key"] + "o", task={**mine[0]["task"], "config_hash": "other"},
                 metrics={k: 1.0 for k in mine[0]["metrics"]}, created_at="2026-12-08T00:00:00+00:00")
    store = write_store(tmp_path / "cfg", [r for r in records if r["task"]["name"] == "cub_loc"] + [other])
    _, js, _ = _run(capsys, "report", "--results", store, "--table", "table_9", "--format", "json")
    doc = json.loads(js)
    cell = next(c for c in doc["cells"] if c["backbone"] == "r50_cutmix" and c["metric"] == "top1_loc")
    # the newest configuration is shown, alone: its one seed is never averaged with the two of the other settings
    assert cell["n_seeds"] == 1 and cell["value"] == 1.0 and cell["run_ids"] == other["run_id"]
    assert statistics.fmean(r["metrics"]["top1_loc"] for r in mine) != 1.0
    assert any("r50_cutmix x cub_loc: results under 2 configs or data; showing a complete run (other, v2)" in n for t in doc["tables"] for n in t["footnotes"])


def test_a_limited_run_never_fills_a_table(synthetic, capsys, tmp_path):
    folder, records = synthetic
    r = next(r for r in records if r["task"]["name"] == "imagenet_fgsm")
    limited = dict(r, backbone={**r["backbone"], "name": "only_limited", "sha256": "f" * 64}, limited=True, run_id="lim", cell_key="lim")
    store = write_store(tmp_path / "lim", [x for x in records if x["task"]["name"] == "imagenet_fgsm"] + [limited])
    _, js, _ = _run(capsys, "report", "--results", store, "--table", "table_11", "--format", "json", "--include-limited")
    assert "only_limited" not in {c["backbone"] for c in json.loads(js)["cells"]}


def test_bad_input_is_one_line_and_writes_nothing(synthetic, capsys, tmp_path):
    folder, records = synthetic
    cases = [
        (["--table", "tabel_9"], "unknown table 'tabel_9'", "did you mean table_9"),
        (["--table", "transfer", "--format", "ltx"], "unknown format 'ltx'", "did you mean latex"),
        (["--table", "transfer", "--baseline", "r50_basline", "--backbones", "r50_*"], "unknown baseline 'r50_basline'", "did you mean r50_baseline"),
        (["--table", "transfer", "--format", "csv", "--output", tmp_path / "file.txt" / "x.csv"], "cannot write the report to", "--output"),
        (["--format", "csv"], "--format csv needs --table", "--list-tables"),
    ]
    (tmp_path / "file.txt").write_text("a file, not a folder")
    for argv, message, hint in cases:
        code, out, err = _run(capsys, "report", "--results", folder, *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)
        assert message in err and hint in err, (argv, err)
    fgsm = write_store(tmp_path / "fgsm", [r for r in records if r["task"]["name"] == "imagenet_fgsm"])
    code, out, err = _run(capsys, "report", "--results", fgsm, "--table", "table_5")
    assert code == 2 and "table 'table_5' (paper Table 5) has no complete results" in err and "--task cifar100_cls" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fgsm", "file.txt"]


def _store_as_schema_1(r, folder):
    """A store holding `r` as bench wrote records in schema 1: no data fingerprint, no metric specs."""
    import sqlite3

    old = {k: v for k, v in r.items() if k not in ("data", "schema_version")}
    old["schema_version"] = 1
    old["metric_meta"] = {m: {"higher_is_better": True, "unit": "%"} for m in r["metrics"]}
    store = write_store(folder, [r])
    db = sqlite3.connect(store / "bench.sqlite")
    db.execute("UPDATE results SET record = ?", (json.dumps(old),))
    db.commit()
    db.close()
    return store


def test_records_of_an_older_schema_fill_todays_tables(synthetic, capsys, tmp_path):
    """A schema-1 record (no data fingerprint, no metric specs) read through bench.record.read_record:
    its tables come from today's declarations, its direction from what it stored."""
    folder, records = synthetic
    r = next(r for r in records if r["task"]["name"] == "imagenet_fgsm" and r["backbone"]["name"] == "r50_cutmix")
    store = _store_as_schema_1(r, tmp_path / "old")
    _, js, _ = _run(capsys, "report", "--results", store, "--table", "table_11", "--format", "json")
    (cell,) = json.loads(js)["cells"]
    assert cell["value"] == r["metrics"]["fgsm_top1_acc"] and cell["published"] == 31.0


def test_list_tables_names_the_tasks_and_what_has_data(synthetic, capsys, tmp_path):
    folder, records = synthetic
    store = write_store(tmp_path / "two", [r for r in records if r["task"]["name"] in ("imagenet_fgsm", "cub_loc")])
    code, out, _ = _run(capsys, "report", "--results", store, "--list-tables")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("| table_9 "))
    assert "cub_loc, imagenet_loc" in line and line.rstrip(" |").endswith("cub_loc")
    assert "no data" in next(x for x in out.splitlines() if x.startswith("| table_5 "))


def test_a_markdown_table_imports_no_torch(synthetic):
    folder, _ = synthetic
    code = ("import sys; from bench.cli import main; rc = main(['report', '--results', sys.argv[1], '--table', 'transfer']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| r50_cutmix " in run.stdout


@needs_chromium
def test_the_html_page_in_a_real_browser(synthetic, capsys, tmp_path):
    """Loads from disk with no console error, renders (a screenshot that is not blank), every
    number in the DOM is the store's, and clicking a header sorts its rows by that column."""
    folder, records = synthetic
    code, out, _ = _run(capsys, "report", "--results", folder, "--format", "html", "--output", tmp_path / "report.html")
    assert code == 0 and "wrote" in out
    page = (tmp_path / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script src" not in page and "<link" not in page  # self-contained
    _, js, _ = _run(capsys, "report", "--results", folder, "--table", "all", "--format", "json")
    cells = {(c["table"], c["backbone"], c["column"]): c for c in json.loads(js)["cells"]}
    driver = open_page(tmp_path / "report.html")
    try:
        assert console_errors(driver) == []
        assert screenshot_colours(driver, tmp_path / "shot.png") > 10
        shown = shown_cells(driver)
        assert len(shown) == len(cells)
        values = _expected(records)
        for s in shown:
            c = cells[s["table"], s["backbone"], s["column"]]
            assert float(s["value"]) == pytest.approx(float(np.mean(values[c["backbone"], c["task"], c["metric"]])), abs=1e-9)
            assert s["text"] == f"{c['value']:.2f}" and (s["published"] == "") == (c["published"] is None)
        transfer = [c for c in cells.values() if c["table"] == "transfer" and c["column"] == "ImageNet Cls (Top-1 Err)"]
        rows = column_order(driver, "transfer", 1)
        assert rows[:len(transfer)] == [c["backbone"] for c in sorted(transfer, key=lambda c: c["value"])]
        rows = column_order(driver, "transfer", 1)  # again: descending
        assert rows[:len(transfer)] == [c["backbone"] for c in sorted(transfer, key=lambda c: -c["value"])]
        assert driver.find_elements("css selector", "#provenance-table tbody tr")
    finally:
        driver.quit()


def test_the_generic_table_keeps_each_tasks_columns_together_whatever_the_rows(synthetic):
    """Without --table: a task's samples column follows its metrics, in their declared order, even
    when rows interleave tasks (a checkpoint file with one task beside cards with two)."""
    from bench.tables import build_table

    _, records = synthetic
    pick = [r for r in records if r["task"]["name"] in ("imagenet_cls", "imagenet_fgsm") and r["backbone"]["name"] in ("r50_cutmix", "r50_mixup")]
    pick.sort(key=lambda r: (r["backbone"]["name"] != "r50_mixup", r["task"]["name"] != "imagenet_fgsm"))  # fgsm's first record before cls's
    header = build_table(pick).splitlines()[0]
    columns = [c.strip().rsplit(" ", 1)[0] for c in header.strip("|").split("|")[1:]]
    fgsm, cls = [c for c in columns if c.startswith("imagenet_fgsm/")], [c for c in columns if c.startswith("imagenet_cls/")]
    assert fgsm[-1] == "imagenet_fgsm/n" and cls[-1] == "imagenet_cls/n"
    assert columns == fgsm + cls
    assert cls[:4] == ["imagenet_cls/top1_err", "imagenet_cls/top5_err", "imagenet_cls/ece", "imagenet_cls/nll"]


def test_loss_curves_are_the_histories_the_records_keep():
    from bench.figures import loss_curves

    records = [{"task": {"name": "cub_loc"}, "backbone": {"name": "a"}, "details": {"finetune": {"train_loss": [2.0, 1.5, 1.25]}}},
               {"task": {"name": "voc_det_ssd"}, "backbone": {"name": "a"}, "details": {"ssd": {"train": {"loss_history": [[40, 10.5], [80, 7.25]]}}}},
               {"task": {"name": "imagenet_cls"}, "backbone": {"name": "a"}, "details": {"classes": 10}}]
    assert loss_curves(records) == {("cub_loc", "finetune/train_loss"): {"a": ([1, 2, 3], [2.0, 1.5, 1.25])},
                                    ("voc_det_ssd", "ssd/train/loss_history"): {"a": ([40.0, 80.0], [10.5, 7.25])}}


def test_runs_of_another_task_version_are_not_averaged(synthetic, capsys, tmp_path):
    folder, records = synthetic
    r = next(x for x in records if x["task"]["name"] == "imagenet_fgsm" and x["backbone"]["name"] == "r50_cutmix")
    older = dict(r, run_id=r["run_id"] + "v0", cell_key=r["cell_key"] + "v0", task={**r["task"], "version": "0"},
                 metrics={k: 1.0 for k in r["metrics"]}, created_at="2026-12-01T00:00:00+00:00")
    store = write_store(tmp_path / "versions", [older, r])
    _, js, _ = _run(capsys, "report", "--results", store, "--table", "table_11", "--format", "json")
    (cell,) = json.loads(js)["cells"]
    assert cell["n_seeds"] == 1 and cell["value"] == r["metrics"]["fgsm_top1_acc"] and cell["run_ids"] == r["run_id"]


def test_an_old_records_family_members_find_their_columns(synthetic, capsys, tmp_path):
    """A schema-1 record names no metric family: today's declarations place msp_auroc@svhn in the per-set table."""
    folder, records = synthetic
    r = next(r for r in records if r["task"]["name"] == "imagenet_ood" and r["backbone"]["name"] == "r50_cutmix")
    store = _store_as_schema_1(r, tmp_path / "old")
    _, js, _ = _run(capsys, "report", "--results", store, "--table", "imagenet_ood_per_set", "--format", "json")
    cells = {c["column"]: c for c in json.loads(js)["cells"]}
    assert cells["svhn AUROC"]["value"] == r["metrics"]["msp_auroc@svhn"] and len(cells) == 9  # 3 sets x 3 metrics


def test_a_figure_reads_whole_records_whatever_the_table_options(synthetic, capsys, tmp_path):
    folder, _ = synthetic
    code, out, err = _run(capsys, "report", "--results", folder, "--table", "all", "--figure", "ood", "--tasks", "imagenet_ood",
                          "--backbones", "r50_*", "--output", tmp_path / "ood.png")
    assert code == 2 and "has 'msp' scores" not in out and len(err.strip().splitlines()) == 1  # synthetic records keep no scores: one clear line
