"""`bench demo` end to end at a reduced size: the four mini backbones through every task with a
mini variant, the comparison table, and a warm second run that re-runs nothing."""

from __future__ import annotations

import bench.demo as demo
from bench.mini.build import MiniSpec
from bench.store import ResultsStore
from browser import CHROMIUM, DRIVER, console_errors, image_widths, open_page, screenshot_colours, shown_cells
from conftest import assert_informative, assert_stats_reproduce

SMALL = MiniSpec(seed=0, train=150, val=40, epochs=1)
SHORT = {"voc_det_ssd": {"iterations": 4, "checkpoint_every": 2, "batch_size": 4, "warmup_iters": 2}}


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "reports"
    assert demo.run_demo(tmp_path / "work", out, progress=False, spec=SMALL, settings=SHORT) == 0
    captured = capsys.readouterr()
    first, log = captured.out, captured.err
    for recipe in ("baseline", "mixup", "cutout", "cutmix"):
        assert f"| mini_{recipe} " in first
    # stdout: the comparison table, the folders and the next commands; the per-metric table is in the report
    report = (out / "README.md").read_text()
    assert "| new" not in first and "| Metric " not in first and "| new" in report and "| cached" not in report
    work = tmp_path / "work"
    assert f"results: {work / 'results'}" in first and f"data:    {work / 'data' / 'current'}" in first
    assert f"bench report --results {work / 'results'} --backbones 'mini_*'" in first
    assert (work / "data" / "current" / ".complete").is_file() and (work / "data" / "current").resolve() == (work / "data" / SMALL.data_key())
    # stderr: a line as each stage starts and one as it ends, in order, with what is left
    stages = ["data", "training", "imagenet_cls", "cub_loc", "imagenet_loc", "voc_det_ssd", "coco_cap", "imagenet_fgsm", "imagenet_c", "imagenet_ood", "report"]
    lines = [line for line in log.splitlines() if line.startswith("bench demo: [")]
    assert len(lines) == 2 * len(stages)
    for k, name in enumerate(stages):
        start, end = lines[2 * k], lines[2 * k + 1]
        assert start.startswith(f"bench demo: [{k + 1}/{len(stages)}] {name}: ") and start.endswith(" s) ...")
        assert end.startswith(f"bench demo: [{k + 1}/{len(stages)}] {name}: done in ")
        assert ("left" in end) == (k < len(stages) - 1)
    assert "(4 cells, new)" in lines[5] and "(built)" in lines[1]
    table = report.split("\n## Every metric")[0]
    assert "What it is not: a reproduction of the paper's numbers" in table
    rows = [line for line in table.splitlines() if line.startswith("| mini_")]
    assert [r.split("|")[1].strip() for r in rows] == ["mini_baseline", "mini_mixup", "mini_cutout", "mini_cutmix"]
    assert "(" not in rows[0]
    header = next(line for line in table.splitlines() if line.startswith("| Backbone"))
    for column in ("imagenet_cls/top1_err", "cub_loc/top1_loc", "cub_loc/maxboxacc_v2", "imagenet_loc/top1_loc", "imagenet_loc/maxboxacc_v2", "voc_det_ssd/map_voc07",
                   "coco_cap/bleu_4", "coco_cap/cider", "imagenet_fgsm/fgsm_top1_acc", "imagenet_c/mce", "imagenet_cls/ece",
                   "imagenet_ood/msp_auroc", "imagenet_ood/msp_tnr_at_tpr95"):
        assert column in header
    assert "maxboxacc@30" not in header and "gt_known_loc" not in header  # the WSOL tasks' headline metrics only
    records = list(ResultsStore.open(tmp_path / "work" / "results", write=False).records())
    assert sum(assert_stats_reproduce(r) for r in records) >= 4 * 16  # every declared statistic gives back its stored metric
    assert len(records) == 32 and all(r["backbone"]["load_report"]["format"] == "cutmix" for r in records)
    assert all(r["details"]["origin"] == "mini" for r in records if r["task"]["name"] == "imagenet_c")  # the figure's label comes from it
    assert "(difference to mini_baseline in parentheses)" in table and "brackets" not in table
    assert f"report:  {out / 'index.html'}" in first and (out / "index.html").is_file()
    if CHROMIUM and DRIVER:  # .ci/run installs them; test_report.py's browser test says when they are missing
        _check_html(out, tmp_path, records)
    _check_formats(tmp_path / "work" / "results", records, capsys)
    # every cell is the stored value, and every bracket that value minus the baseline's, to the printed digit
    stored = {(r["backbone"]["name"], f"{r['task']['name']}/{m}"): v for r in records for m, v in r["metrics"].items()}
    columns = [c.strip().rsplit(" ", 1)[0] for c in header.strip("|").split("|")[1:]]
    deltas = 0
    for row in rows:
        name, *cells = [c.strip() for c in row.strip("|").split("|")]
        for column, cell in zip(columns, cells):
            cell = cell.replace("**", "")  # the column's best in bold
            value = stored[name, column]
            assert cell.split(" ")[0] == f"{value:.2f}", (name, column, cell)
            if name != "mini_baseline":
                assert cell.split(" ")[1] == f"({value - stored['mini_baseline', column]:+.2f})", (name, column, cell)
                deltas += 1
    assert deltas == 3 * len(columns)
    for r in records:  # SSD's 4 iterations here score nothing: the demo's own column checks only that the cell ran
        if r["task"]["name"] != "voc_det_ssd":
            assert_informative(r["metrics"])
    # warm: nothing regenerated, retrained or re-run, and the same table
    assert demo.run_demo(tmp_path / "work", out, progress=False, spec=SMALL, settings=SHORT) == 0
    second = capsys.readouterr()
    warm_report = (out / "README.md").read_text()
    assert "| new" not in warm_report and warm_report.count("| cached") == report.count("| new")
    assert "(4 cells, cached)" in second.err and "data: done in" in second.err and "(cached)" in second.err
    assert "index.html (cached: the same runs)" in second.err  # the page is not rebuilt for the same runs
    assert warm_report.split("\n## Every metric")[0] == table
    assert second.out.split("\n\n")[0] == first.split("\n\n")[0]  # the same comparison table



def _check_html(out, tmp_path, records):
    """reports/demo/index.html in headless Chromium: no console error, every image decodes (the CAM
    grids of cub_loc and imagenet_loc, robustness, training loss, OOD), a screenshot that is not blank, and the
    numbers in the DOM are the store's."""
    stored = {(r["backbone"]["name"], r["task"]["name"], m): v for r in records for m, v in r["metrics"].items()}
    driver = open_page(out / "index.html")
    try:
        assert console_errors(driver) == []
        widths = image_widths(driver)
        assert len(widths) == 5 and all(w > 0 for w in widths), widths  # + the training-loss curves
        assert screenshot_colours(driver, tmp_path / "shot.png") > 10
        shown = shown_cells(driver)
        assert len(shown) > 100
        values = list(stored.values())
        for s in shown:
            assert any(abs(float(s["value"]) - v) < 1e-9 for v in values), s
        transfer = [s for s in shown if s["table"] == "transfer" and s["column"] == "ImageNet Cls (Top-1 Err)"]
        assert sorted(s["backbone"] for s in transfer) == sorted(f"mini_{r}" for r in ("baseline", "mixup", "cutout", "cutmix"))
        for s in transfer:
            assert float(s["value"]) == stored[s["backbone"], "imagenet_cls", "top1_err"] and s["text"] == f"{float(s['value']):.2f}"
    finally:
        driver.quit()


def _check_formats(results, records, capsys):
    """Every table in every format from the demo's store; the CSV's numbers are the store's."""
    import csv
    import io

    from bench.cli import main

    for fmt in ("md", "latex", "csv", "json"):
        assert main(["report", "--results", str(results), "--table", "all", "--format", fmt]) == 0
        out = capsys.readouterr().out
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(out)))
            stored = {(r["backbone"]["name"], r["task"]["name"], m): v for r in records for m, v in r["metrics"].items()}
            assert len(rows) > 100 and {r["table"] for r in rows} >= {"transfer", "table_9", "table_10", "table_11", "imagenet_c", "calibration", "imagenet_ood"}
            for r in rows:
                assert float(r["value"]) == stored[r["backbone"], r["task"], r["metric"]]
