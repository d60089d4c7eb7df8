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
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + f".part-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, output)
    return output
