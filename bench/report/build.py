"""`bench report --table`: the tables asked for, from the store's records, in one format; the
HTML page adds the figures and per-image drill-downs the stored data allows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.errors import BenchError
from bench.registry import unknown_name
from bench.report import model

FORMATS = ("md", "latex", "csv", "json", "html")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise unknown_name("format", fmt, FORMATS, f"one of {', '.join(FORMATS)}")
    return fmt


def list_tables(records: Sequence[dict[str, Any]]) -> str:
    """Every table a task declares, which tasks fill it, and whether the store has data for it."""
    from bench.tables import markdown

    have = model.available(records)
    rows = []
    for name, t in model.declared().items():
        filled = have.get(name, {}).get("tasks", [])
        rows.append([name, t["title"], ", ".join(t["tasks"]), ", ".join(filled) if filled else "no data"])
    for name, t in have.items():  # tables only stored records declare (a task outside the catalog)
        if name not in model.declared():
            rows.append([name, t["title"], ", ".join(t["tasks"]), ", ".join(t["tasks"])])
    return markdown(["--table", "title", "filled by", "with data in this store"], rows) + "\n\n`--table all`: every table with data."


def select(records: Sequence[dict[str, Any]], names: str, baseline: str | None) -> list[model.Table]:
    """The tables named (a comma list, or 'all': every table with data), built; a clear error for
    an unknown table, a table without data and a baseline outside the selection."""
    records = [r for r in records if not r["limited"]]
    asked = None if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    prepared = model.prepare(records, names=asked)
    have = model.available(records, prepared)
    known = {**model.declared(), **have}
    wanted = list(have) if asked is None else asked
    if not wanted:
        raise BenchError("no table has data in this store", "run a task first (bench list tables shows which tasks fill which table)")
    tables = []
    for name in wanted:
        if name not in known:
            raise unknown_name("table", name, list(known) + ["all"], "see bench report --list-tables")
        if name not in have:
            tasks = known[name]["tasks"]
            raise BenchError(f"table '{name}' ({known[name]['title']}) has no complete results in this selection; it is filled by {', '.join(tasks)}",
                             f"run them first: bench run --backbone BACKBONES --task {','.join(tasks)}")
        tables.append(model.build(records, name, baseline, prepared))
    if baseline is not None and not any(baseline == row.label for t in tables for row in t.rows):
        shown = sorted({row.label for t in tables for row in t.rows})
        raise unknown_name("baseline", baseline, shown, f"the baseline must be a row of the table: {', '.join(shown)}")
    return tables


FIGURE_BACKBONES = 12  # a figure with more backbones than this is unreadable: narrow the selection


def figures(records: Sequence[dict[str, Any]], data: Any = None) -> list[dict[str, str]]:
    """The figures the records allow (whole records), as inline PNGs: with
    `data` (a DataLocator), the CAM grid of each WSOL task (CAM, predicted box green, ground truth
    red: the forward passes need the images); the robustness and OOD figures from the records alone."""
    from bench.report.html import png_data_uri

    out: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        wsol = sorted({r["task"]["name"] for r in records if "top1_loc" in r["metrics"] and "maxboxacc_v2" in r["metrics"]})
        for task in wsol if data is not None else []:
            from bench.figures import cam_figure

            mine = [r for r in records if r["task"]["name"] == task]
            try:
                path = cam_figure(mine, data, Path(tmp) / f"cam_{task}.png", 6)
            except BenchError:
                continue
            cfg = mine[-1]["task"]["config"]
            out.append({"src": png_data_uri(path), "caption": f"CAMs of each backbone's {task} classifier (fine-tuned as the paper's protocol) "
                        f"on 6 images evenly spaced over the {cfg.get('split', '')} split: predicted box (CAM at {cfg.get('cam_threshold', 0.15)} "
                        "x max, largest component) in green, ground truth in red."})
        from bench.figures import loss_figure, ood_figure, robustness_figure

        try:
            path = robustness_figure(list(records), Path(tmp) / "robustness.png")
            out.append({"src": png_data_uri(path), "caption": "Robustness: occlusion and in-between curves (paper Figure 5), "
                        "top-1 error per ImageNet-C corruption, reliability diagrams (15 equal-width bins), from the stored records."})
        except BenchError:
            pass  # no panel the records allow
        try:
            path = loss_figure(list(records), Path(tmp) / "loss.png")
            out.append({"src": png_data_uri(path), "caption": "Training loss of the tasks' training stages (WSOL fine-tuning, detectors, "
                        "caption decoders) as their records keep it: per epoch, or per logged iteration; a cached stage shows the loss of the run that trained it."})
        except BenchError:
            pass  # nothing trained
        for task in sorted({r["task"]["name"] for r in records if any(m.startswith("msp_auroc@") for m in r["metrics"])}):
            try:
                path = ood_figure([r for r in records if r["task"]["name"] == task], Path(tmp) / f"ood_{task}.png", "msp")
                out.append({"src": png_data_uri(path), "caption": f"{task}, OOD detection with the maximum softmax probability: histograms of in- vs "
                            "out-of-distribution scores per backbone and set, and ROC curves (AUROC in the legend), from the stored scores."})
            except BenchError:
                pass
    return out


def drilldowns(tables: list[model.Table], results: Path, full: Callable[[list[str]], list[dict[str, Any]]], limit: int = 20,
               pairs: int = 12) -> list[dict[str, Any]]:
    """For up to `pairs` (row, baseline, task) of the tables whose records have samples files, on
    the first per-image 0/1 column: the images one gets right and the other wrong (bench compare),
    the first `limit` of each."""
    out: list[dict[str, Any]] = []
    done: set[tuple[str, str, str]] = set()
    for t in tables:
        light = {r["run_id"]: r for r in t.records}
        for row in t.rows:
            base = next((o for o in t.rows if o.label == row.baseline), None)
            if base is None or base is row:
                continue
            for c in t.columns:
                cell, other = row.cells.get(c.label), base.cells.get(c.label)
                if cell is None or other is None or (row.label, base.label, cell.task) in done or len(done) >= pairs:
                    continue
                mine = [light[x] for x in cell.run_ids[:1] + other.run_ids[:1]]
                meta = mine[0]["metric_meta"].get(cell.metric) or {}
                if (meta.get("stat") or {}).get("kind") != "proportion" or not all((r.get("artifacts") or {}).get("samples") for r in mine):
                    continue
                from bench.checks.compare import drill  # scipy: only when there is something to drill into
                from bench.stats.proportion import exact_mcnemar

                try:
                    d = drill(full([r["run_id"] for r in mine]), results, row.backbone, base.backbone, cell.task, cell.metric, None)
                except BenchError:
                    continue
                done.add((row.label, base.label, cell.task))
                items = [("right only for " + d.a, i) for i in d.only_a[:limit]] + [("right only for " + d.b, i) for i in d.only_b[:limit]]
                keys = list(dict.fromkeys(k for _, i in items for k in i))
                out.append({"title": f"{d.a} vs {d.b}: {d.task} {d.metric}",
                            "summary": f"{d.n} paired images; {len(d.only_a)} right only for {d.a}, {len(d.only_b)} right only for {d.b} "
                                       f"(exact McNemar p = {exact_mcnemar(len(d.only_a), len(d.only_b)):.3g}); the first {limit} of each",
                            "headers": ["which"] + keys, "rows": [[w] + [i.get(k, "") for k in keys] for w, i in items],
                            "numeric": [False] + [all(isinstance(i.get(k), (int, float)) and not isinstance(i.get(k), bool) for _, i in items) for k in keys]})
    return out


def render(tables: list[model.Table], fmt: str, ci: bool, results: Path, full: Callable[[list[str]], list[dict[str, Any]]],
           data: Any = None) -> tuple[str, list[str]]:
    """The report text and the lines to print below it (intervals or figures left out). `full`
    reads whole records by run id (intervals, figures and drill-downs need them); `data`: where the
    images are, for the HTML page's CAM grids."""
    problems: list[str] = []
    if fmt in ("html", "csv", "json") or ci:
        from bench.report.intervals import add_intervals

        problems = add_intervals(tables, results, full)
    if fmt == "md":
        from bench.report.markdown import render as md

        return md(tables, ci), problems
    if fmt == "latex":
        from bench.report.latex import render as tex

        return tex(tables, ci), problems
    if fmt == "csv":
        from bench.report.tidy import to_csv

        return to_csv(tables), problems
    if fmt == "json":
        from bench.report.tidy import to_json

        return to_json(tables), problems
    from bench.report.html import render as page

    shown = sorted({r["run_id"] for t in tables for r in t.records})
    backbones = {r["backbone"]["name"] for t in tables for r in t.records}
    if len(backbones) > FIGURE_BACKBONES:  # checked before reading the records whole
        pictures, left_out = [], [f"no figures: {len(backbones)} backbones are more than a figure shows ({FIGURE_BACKBONES}); narrow --backbones"]
    else:
        pictures, left_out = figures(full(shown), data), []
    problems += left_out
    notes = [f"Intervals: {INTERVALS}"] + problems
    return page(tables, pictures, drilldowns(tables, results, full), notes, "bench report"), problems


INTERVALS = ("95% over images, by each metric's declared procedure (bench check's): Wilson for per-image proportions, DeLong for one "
             "set's AUROC, otherwise a percentile bootstrap (10,000 resamples, 2,000 for mAP, MaxBoxAcc, mCE and the OOD metrics; seed 0); "
             "one-seed cells only.")


def write(text: str, output: Path) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename; one clear error when the path cannot be written."""
    tmp = None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; a report is not
        os.replace(tmp, output)
    except OSError as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise BenchError(f"cannot write the report to {output}: {e.strerror or e}", "pass an --output path in a folder you can write") from None
    return output

