"""Figures drawn from stored results: `bench report --figure cam`.

The CAM figure shows the same images for several backbones, one row per backbone, like the
CutMix paper's St. Bernard / Poodle figure: the CAM of the predicted class over the image, the
box around its largest component at the task's threshold (green: right class, orange: wrong
class) and the GT boxes (red), all in the paper protocol's frame. Each backbone's fine-tuned
classifier comes from the cached stage its stored result names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError


def save_png(fig: Any, output: Path, dpi: int) -> Path:
    """Write a figure as PNG atomically (a temporary name in the same folder, then rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part-{os.getpid()}")
    fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    os.replace(tmp, output)
    return output


def _newest_per_backbone(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for r in records:  # the store lists records oldest first
        newest[r["backbone"]["name"]] = r
    return newest


def _localizer(record: dict[str, Any], task: Any, num_classes: int) -> Any:
    """The fine-tuned CAM model a stored WSOL result was scored with."""
    import torch

    from bench.backbones.build import load_backbone_from
    from bench.cards import parse_card

    from dataclasses import replace

    stored = {k: v for k, v in record["backbone"]["card"].items() if k not in ("card_file", "bare_file")}
    card = replace(parse_card(stored, record["backbone"]["name"]), bare_file=bool(record["backbone"]["card"].get("bare_file")))
    stage = Path(record["details"]["finetune"]["stage_dir"]) / "finetuned.pt"
    if not stage.is_file():
        raise BenchError(f"the fine-tuned classifier of {card.name} ({stage}) is no longer in the cache",
                         f"re-run 'bench run --backbone {record['backbone']['spec']} --task {record['task']['name']}' to rebuild it")
    path = record["backbone"]["path"]
    if path is None:  # preloaded weights (torchvision / timm names): resolve them again
        from bench.backbones.build import load_backbone

        backbone = load_backbone(card, replace_head=True)
    else:
        backbone = load_backbone_from(card, path, record["backbone"]["sha256"], None, replace_head=True)
    model, _ = task.build(backbone, record["task"]["config"], record["seed"], num_classes)
    model.load_state_dict(torch.load(stage, map_location="cpu", weights_only=True)["model"])
    return model.eval(), card


def cam_figure(records: list[dict[str, Any]], data: Any, output: Path, images: int = 6, device: str = "cpu") -> Path:
    """Render the CAM grid for the newest result of each backbone on one WSOL task; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.data.images import Normalizer, load_rgb
    from bench.metrics.wsol import crop_box, largest_component_box
    from tasks import TASKS
    from bench.cam import CamComputer
    from tasks.localization import Localization, eval_transform

    tasks = {r["task"]["name"] for r in records}
    if len(tasks) != 1:
        raise BenchError(f"the CAM figure shows one task, but the selection holds {', '.join(sorted(tasks))}", "pass --tasks cub_loc or --tasks imagenet_loc")
    task = TASKS.get(tasks.pop()).load()()
    if not isinstance(task, Localization):
        raise BenchError(f"the CAM figure needs a WSOL task (cub_loc, imagenet_loc), not {task.name}", "pass --tasks cub_loc or --tasks imagenet_loc")
    if images < 1:
        raise BenchError(f"--images must be at least 1, got {images}", "e.g. --images 6")
    chosen = _newest_per_backbone(records)
    first = next(iter(chosen.values()))
    split = task.read(data, first["task"]["config"]["split"])
    picks = np.linspace(0, len(split.images) - 1, min(images, len(split.images))).round().astype(int).tolist()
    fig, axes = plt.subplots(len(chosen), len(picks), figsize=(2.2 * len(picks), 2.4 * len(chosen)), squeeze=False)
    for row, (name, record) in enumerate(chosen.items()):
        cfg = record["task"]["config"]
        model, card = _localizer(record, task, len(split.classes))
        model = model.to(device)
        cams = CamComputer(model, card.cam_layer, card.head[0], "cam" if cfg["cam_method"] == "cam" else cfg["cam_method"])
        prepare, transform = Normalizer(card.preprocessing, device), eval_transform(cfg["resize"], cfg["crop"])
        try:
            for col, i in enumerate(picks):
                image = load_rgb(split.images[i])
                x = transform(image)
                logits, (maps,) = cams(prepare(x[None].to(device)), [None], (cfg["crop"], cfg["crop"]))
                pred = int(logits.argmax(1))
                box = largest_component_box(maps[0], cfg["cam_threshold"])
                ax = axes[row][col]
                ax.imshow(x.permute(1, 2, 0).numpy())
                ax.imshow(maps[0], cmap="jet", alpha=0.45, vmin=0, vmax=1)
                for gt in split.boxes[i]:
                    x0, y0, x1, y1 = crop_box(tuple(gt), (image.width, image.height), cfg["resize"], cfg["crop"])
                    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, color="red", lw=1.5))
                right = pred == split.targets[i]
                if box is not None:
                    x0, y0, x1, y1 = box
                    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, color="lime" if right else "orange", lw=1.5))
                ax.set_title(f"{split.classes[pred][:18]}" + ("" if right else " (wrong)"), fontsize=7, color="black" if right else "darkorange")
                ax.set_xticks([])
                ax.set_yticks([])
                if col == 0:
                    ax.set_ylabel(name, fontsize=8)
        finally:
            cams.close()
    fig.suptitle(f"{task.name}: CAM of the predicted class; red GT, green predicted box (threshold {first['task']['config']['cam_threshold']} x max)", fontsize=9)
    return save_png(fig, output, dpi=120)


ROBUSTNESS_TASKS = ("imagenet_occlusion", "imagenet_inbetween", "imagenet_c", "imagenet_cls")


def _newest_complete(records: list[dict[str, Any]], task: str) -> dict[str, dict[str, Any]]:
    """Row label -> the record a report table would show for the task: bench.tables' choice of
    runs (a complete run before a limited one, one config and data per checkpoint), the newest of
    its seeds; two checkpoints with one name are two rows, labelled as in the tables."""
    from bench.tables import backbone_labels, chosen_runs, row_key

    mine = [r for r in records if r["task"]["name"] == task]
    labels = backbone_labels(mine)
    kept, _ = chosen_runs(mine, labels)
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(kept, key=lambda x: x["created_at"]):
        out[labels[row_key(r)]] = r
    return out


def robustness_figure(records: list[dict[str, Any]], output: Path) -> Path:
    """`bench report --figure robustness`: from stored records only (no data, no model), one PNG
    with whichever panels the records allow: occlusion error vs side (centre, boundary; paper
    Figure 5a), in-between samples predicted as neither class (Mixup, CutMix; Figure 5b), error
    per corruption with one bar per backbone (imagenet_c; the title says released or generated,
    and says so loudly when backbones mix the two), and reliability diagrams (imagenet_cls,
    imagenet_c)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.metrics.corruption import CORRUPTIONS, EXTRA_CORRUPTIONS

    panels: list[Any] = []
    occlusion = _newest_complete(records, "imagenet_occlusion")
    for mode in ("center", "boundary"):
        curves = {b: r["details"].get("curves", {}).get(mode) for b, r in occlusion.items()}
        if any(curves.values()):
            panels.append(("line", f"{mode} occlusion (Figure 5a)", "side of the square (px)", "top-1 error (%)",
                           {b: {int(k): v for k, v in c.items()} for b, c in curves.items() if c}))
    between = _newest_complete(records, "imagenet_inbetween")
    for kind, axis in (("mixup", "lambda (weight of image A)"), ("cutmix", "side of the square from B (px)")):
        curves = {b: r["details"].get("curves", {}).get(kind) for b, r in between.items()}
        if any(curves.values()):
            panels.append(("line", f"{kind} in-between: neither class (Figure 5b)", axis, "predicted as neither (%)",
                           {b: {float(k): v["neither"] for k, v in c.items()} for b, c in curves.items() if c}))
    corrupted = _newest_complete(records, "imagenet_c")
    if corrupted:
        sources = sorted({r["details"].get("source", "released") for r in corrupted.values()})
        title = "ImageNet-C error per corruption (" + (" + ".join(sources) if len(sources) == 1 else "MIXED SOURCES: " + ", ".join(
            f"{b} {r['details'].get('source')}" for b, r in corrupted.items())) + ")"
        bars = {}
        for b, r in corrupted.items():
            errors = r["details"].get("errors", {})
            bars[b] = {c: sum(by.values()) / len(by) for c, by in errors.items() if by}
        panels.append(("bars", title, "", "top-1 error, mean over severities (%)", bars, [c for c in CORRUPTIONS + EXTRA_CORRUPTIONS if any(c in v for v in bars.values())]))
    for task in ("imagenet_cls", "imagenet_c"):
        chosen = _newest_complete(records, task)
        diagrams = {b: r["details"].get("reliability") for b, r in chosen.items() if r["details"].get("reliability")}
        if diagrams:
            panels.append(("reliability", f"reliability, {task}", "confidence", "accuracy", diagrams))
    if not panels:
        raise BenchError("the robustness figure needs stored imagenet_occlusion, imagenet_inbetween, imagenet_c or imagenet_cls (v2) records",
                         "run them first, e.g. bench run --backbone ... --task imagenet_occlusion")
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        kind, title, xlabel, ylabel, data = panel[:5]
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if kind == "line":
            for backbone, curve in data.items():
                xs = sorted(curve)
                ax.plot(xs, [curve[x] for x in xs], marker="o", markersize=3, label=backbone)
        elif kind == "bars":
            names = panel[5]
            width = 0.8 / max(1, len(data))
            for k, (backbone, values) in enumerate(data.items()):
                ax.bar(np.arange(len(names)) + k * width, [values.get(c, np.nan) for c in names], width, label=backbone)
            ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
            ax.set_xticklabels(names, rotation=75, fontsize=6)
        else:
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
            for backbone, bins in data.items():
                full = [b for b in bins if b["count"]]
                ax.plot([b["confidence"] for b in full], [b["accuracy"] for b in full], marker="o", markersize=3, label=backbone)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
    return save_png(fig, output, dpi=110)


OOD_TASKS = ("cifar100_ood", "imagenet_ood")


def ood_figure(records: list[dict[str, Any]], output: Path, score: str = "msp") -> Path:
    """`bench report --figure ood`: from stored records only, one row per OOD set: a histogram of
    in- vs out-of-distribution scores for each backbone (bins shared by the two), then the ROC
    curves of every backbone (TPR = in-distribution accepted, FPR = OOD accepted), AUROC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.ood_scores import SCORES
    from bench.registry import unknown_name

    if score not in SCORES:
        raise unknown_name("OOD score", score, SCORES, f"--score takes one of {', '.join(SCORES)}")
    tasks = sorted({r["task"]["name"] for r in records if r["task"]["name"] in OOD_TASKS})
    if not tasks:
        raise BenchError("the OOD figure needs stored cifar100_ood or imagenet_ood records", "run one first, e.g. bench run --backbone ... --task cifar100_ood")
    if len(tasks) > 1:
        raise BenchError(f"the records hold {' and '.join(tasks)}: the OOD figure draws one task", f"pick one with --tasks {tasks[0]}")
    mine = [r for r in records if r["task"]["name"] == tasks[0]]
    scored = [r for r in mine if score in (r["task"]["config"].get("scores") or [])]
    lacking = sorted({r["backbone"]["name"] for r in mine} - {r["backbone"]["name"] for r in scored})
    if lacking:
        raise BenchError(f"no {tasks[0]} record of {', '.join(lacking)} has '{score}' scores", "pick a stored score with --score, or re-run with --set scores=[...]")
    chosen = _newest_complete(scored, tasks[0])  # per backbone, the run a table would show among those with this score
    sets = [s for s in (next(iter(chosen.values()))["details"].get("sets") or {})]
    backbones = list(chosen)
    rows, cols = len(sets), len(backbones) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), squeeze=False)
    for i, name in enumerate(sets):
        roc_ax = axes[i, -1]
        for j, backbone in enumerate(backbones):
            found = (chosen[backbone]["details"].get(name) or {}).get(score)
            ax = axes[i, j]
            if not found:
                ax.axis("off")
                continue
            edges = np.asarray(found["edges"])
            centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
            for key, colour, label in (("in", "tab:blue", "in-distribution"), ("out", "tab:red", name)):
                counts = np.asarray(found[key], float)
                ax.bar(centres, counts / max(counts.sum(), 1), width, color=colour, alpha=0.5, label=label)
            ax.set_title(f"{backbone}: {name}", fontsize=8)
            ax.set_xlabel(score, fontsize=7)
            ax.set_ylabel("share of the set's images", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.tick_params(axis="x", labelrotation=30)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
            auroc = chosen[backbone]["metrics"].get(f"{score}_auroc@{name}")
            roc_ax.plot(found["roc"]["fpr"], found["roc"]["tpr"], label=f"{backbone}" + (f" ({auroc:.1f})" if auroc is not None else ""))
        roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        roc_ax.set_title(f"ROC, {name} ({score}; AUROC)", fontsize=8)
        roc_ax.set_xlabel("FPR (OOD accepted)", fontsize=7)
        roc_ax.set_ylabel("TPR (in-dist. accepted)", fontsize=7)
        roc_ax.tick_params(labelsize=6)
        roc_ax.legend(fontsize=6)
    fig.suptitle(f"{tasks[0]}: {score} scores, in-distribution vs each OOD set", fontsize=10)
    return save_png(fig, output, dpi=100)
