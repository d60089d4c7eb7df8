"""Weakly supervised object localization with CAM on CUB-200-2011 and ImageNet (paper Table 9).

One run fine-tunes the backbone as the paper does (layer4 stride 1 for a 14x14 CAM at 224, a
new classifier, SGD with a 10x higher learning rate for the head), caches that classifier, and
scores it under both protocols:

- `paper`: resize to 256x256, center crop 224; the CAM of the predicted class (top-1 Loc) and of
  the true class (GT-known Loc), min-max normalised, thresholded at 0.15 x max; the box around
  the largest 8-connected component; correct when IoU > 0.5 with a GT box (and, for top-1 Loc,
  the predicted class is right).
- `wsoleval`: wsolevaluation's pipeline: anisotropic resize to 224, the true class's CAM, cv2
  bicubic upsampling, min-max, uint8, the threshold sweep; MaxBoxAcc (largest contour, IoU 0.5)
  and MaxBoxAccV2 (all contours, mean over IoU 0.3/0.5/0.7, each with its own best threshold).

Any change to either protocol bumps `version`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.cam import CAM_METHODS, CamComputer
from bench.errors import BenchError
from bench.settings import Setting
from bench.evaluation import Evaluator, RowsEvaluator
from bench.task import DataCheck, DataLocator, MetricSpec, Plan, RunContext, Stat, Task

PROTOCOLS = ("paper", "wsoleval")


def wsol_settings(splits: tuple[str, ...]) -> dict[str, Setting]:
    from bench.finetune import RECIPES

    return {
        "protocols": Setting("strs", "which protocols to score: paper (top-1 / GT-known Loc) and wsoleval (MaxBoxAcc, MaxBoxAccV2)", choices=PROTOCOLS, nonempty=True),
        "split": Setting("str", "the split that is scored", choices=splits),
        "epochs": Setting("int", "fine-tuning epochs of the new classifier (and the backbone)", lo=1),
        "batch_size": Setting("int", "fine-tuning batch size (the global batch under torchrun)", lo=1),
        "lr_head": Setting("float", "learning rate of the new classifier", lo=0, lo_open=True),
        "lr_body": Setting("float", "learning rate of the backbone", lo=0),
        "step": Setting("int", "epochs between learning-rate decays", lo=1),
        "gamma": Setting("float", "learning-rate decay factor", lo=0, hi=1, lo_open=True),
        "momentum": Setting("float", "SGD momentum", lo=0, hi=1, hi_open=True),
        "weight_decay": Setting("float", "SGD weight decay", lo=0),
        "resize": Setting("int", "square resize before the crop (training and paper evaluation)", lo=1),
        "crop": Setting("int", "crop size: random when training, center for the paper protocol (at most resize)", lo=1),
        "layer4_stride": Setting("int", "stride of the last stage (layer4 on a ResNet): 1 doubles the CAM's resolution (the paper's), 2 keeps the trained network; "
                                        "recorded as not applicable where the family cannot (ConvNeXt, ViT, VGG-GAP)", choices=(1, 2)),
        "cam_method": Setting("str", "how score maps are made: cam (the paper's) or a grad-cam method", choices=CAM_METHODS),
        "finetune_recipe": Setting("str", "paper: the head at lr_head; wsolevaluation: layer4 and the head at lr_head, Nesterov", choices=RECIPES),
        "cam_threshold": Setting("float", "paper protocol: CAM threshold as a fraction of its maximum", lo=0, hi=1, hi_open=True),
        "loc_iou": Setting("float", "paper protocol: IoU a box needs to count as localised", lo=0, hi=1, lo_open=True, hi_open=True),
        "wsoleval_size": Setting("int", "wsoleval protocol: square input size (no crop)", lo=1),
        "interval": Setting("float", "wsoleval protocol: CAM threshold step of the sweep", lo=0, hi=1, lo_open=True, hi_open=True),
        "ious": Setting("ints", "wsoleval protocol: IoU thresholds in percent for MaxBoxAccV2", lo=0, hi=100, lo_open=True, hi_open=True, nonempty=True),
    }


@dataclass
class LocSplit:
    ids: list[str]
    images: list[Path]
    targets: list[int]
    boxes: list[np.ndarray]  # (k, 4) x0 y0 x1 y1 in the original image's pixels
    classes: list[str]


class SizedImages(torch.utils.data.Dataset):
    """(uint8 image, target, index, width, height): the original size maps GT boxes to the input frame."""

    def __init__(self, paths: list[Path], targets: list[int], transform: Any):
        self.paths, self.targets, self.transform = paths, targets, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int, int]:
        from bench.data.images import load_rgb

        image = load_rgb(self.paths[index])
        return self.transform(image), self.targets[index], index, image.width, image.height


def check_boxes_inside(split: LocSplit) -> None:
    """Every GT box must overlap its image (read from the file's header); found before any
    training, not in the middle of a long run. Boxes that stick out past the border are kept as
    given (wsolevaluation's convention; the paper protocol clips them to the crop)."""
    from PIL import Image, UnidentifiedImageError

    for image_id, path, boxes in zip(split.ids, split.images, split.boxes):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError) as exc:
            raise BenchError(f"cannot decode image {path} ({exc})", "replace the file with a valid image, or remove it and its label") from None
        for x0, y0, x1, y1 in boxes:
            if x0 >= width or y0 >= height or x1 < 0 or y1 < 0:
                raise BenchError(f"image {image_id} ({path}) has a box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) outside its {width}x{height} pixels", "fix or remove that box")


def train_transform(resize: int, crop: int) -> Any:
    """Square resize, random crop, horizontal flip, on the PIL image (as torchvision's classic
    transforms do in the CutMix and wsolevaluation code), then uint8 CHW."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize((resize, resize)), v2.RandomCrop(crop), v2.RandomHorizontalFlip(), v2.PILToTensor()])


def eval_transform(resize: int, crop: int | None) -> Any:
    """Square resize, then a center crop (paper) or none (wsoleval), on the PIL image; uint8 CHW."""
    from torchvision.transforms import v2

    steps: list[Any] = [v2.Resize((resize, resize))]
    if crop is not None:
        steps.append(v2.CenterCrop(crop))
    return v2.Compose(steps + [v2.PILToTensor()])


def localization_specs(dataset: str) -> tuple[MetricSpec, ...]:
    """The metrics of a WSOL task; `dataset` names its columns in the report tables."""
    return tuple(replace(spec, tables=tuple(t.replace("{dataset}", dataset) for t in spec.tables)) for spec in (
        MetricSpec("top1_loc", True, description="paper: class right and IoU > 0.5, CAM of the predicted class, threshold 0.15 x max, largest component",
                   tables=("paper Table 9: {dataset} Top-1 Loc", "transfer: {dataset} Loc (Top-1 Loc)"), headline=True, stat=Stat("proportion", "top1_loc", (("split", "paper"),))),
        MetricSpec("gt_known_loc", True, description="paper protocol: IoU > 0.5, CAM of the true class (not in the paper's tables: Table 9 gives Top-1 Loc only)",
                   tables=("paper Table 9: {dataset} GT-known Loc (not in the paper)",), stat=Stat("proportion", "gt_known_loc", (("split", "paper"),))),
        MetricSpec("top1_err", False, description="classification error of the fine-tuned classifier (paper protocol's crop)", stat=Stat("proportion", "top1_wrong", (("split", "paper"),))),
        MetricSpec("maxboxacc", True, description="wsolevaluation MaxBoxAcc: largest contour, IoU >= 0.5, best threshold", stat=Stat("maxboxacc", "hits_v1", (("split", "wsoleval"),))),
        MetricSpec("maxboxacc_v2", True, description="wsolevaluation MaxBoxAccV2: mean of maxboxacc@{iou} (all contours, each IoU with its best threshold)",
                   tables=("paper Table 9: {dataset} MaxBoxAccV2 (not in the paper)",), headline=True, aggregate=("mean", "maxboxacc@{iou}"), stat=Stat("maxboxacc", "hits@{iou}", (("split", "wsoleval"),))),
        MetricSpec("maxboxacc@{iou}", True, description="wsolevaluation: all contours, IoU >= iou %, best threshold", stat=Stat("maxboxacc", "hits@{iou}", (("split", "wsoleval"),))),
    ))


class Localization(Task):
    """Shared by cub_loc and imagenet_loc; subclasses name the dataset and the paper's schedule."""

    # 2: score maps resized and normalised in float64 (wsolevaluation's), batch_size the global
    #    batch under torchrun
    version = "2"
    datasets: tuple[str, ...] = ()
    replaces_head = True
    metrics = localization_specs("WSOL")
    schedule: dict[str, Any] = {}
    split_name = "test"
    splits: tuple[str, ...] = ("test",)

    def default_config(self) -> dict[str, Any]:
        return {
            "protocols": list(PROTOCOLS),
            "split": self.split_name,
            **self.schedule,
            "resize": 256, "crop": 224,  # train: random crop, paper eval: center crop
            "layer4_stride": 1,
            "cam_method": "cam",
            "finetune_recipe": "paper",  # or "wsolevaluation": layer4 and the head at lr_head, Nesterov (its main.py)
            "cam_threshold": 0.15, "loc_iou": 0.5,  # paper
            "wsoleval_size": 224, "interval": 0.001, "ious": [30, 50, 70],  # wsoleval
        }

    def settings(self) -> dict[str, Setting]:
        return wsol_settings(self.splits)

    # --- data ---

    def read(self, data: DataLocator, split: str) -> LocSplit:
        raise NotImplementedError

    def read_train(self, data: DataLocator) -> LocSplit:
        raise NotImplementedError

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        root = data.dir(self.datasets[0])
        name = config["split"]
        split = self.read(data, name)
        check_boxes_inside(split)
        train = self.read_train(data)
        if len(train.classes) != len(split.classes):
            raise BenchError(f"the train split has {len(train.classes)} classes, the {name} split {len(split.classes)}", "use splits of the same dataset")
        fp = (Fingerprint().files(name, root, split.images).values("labels", [split.ids, split.targets, split.classes, split.boxes])
              .files("train", root, train.images, sizes=False).values("train_labels", train.targets))
        summary = f"{len(split.images)} {name} images, {sum(len(b) for b in split.boxes)} boxes, {len(split.classes)} classes; {len(train.images)} train images"
        return DataCheck({self.datasets[0]: summary}, fp.hexdigest(), len(split.images))

    # --- the run ---

    def validate(self, config: dict[str, Any]) -> None:
        """What the setting types cannot say alone (each value is already checked)."""
        if config["crop"] > config["resize"]:
            raise BenchError(f"task {self.name}: crop {config['crop']} is larger than resize {config['resize']}", "--set crop=N with N <= resize")
        self._settings(config)[2].check()

    def _settings(self, config: dict[str, Any]) -> Any:
        from bench.finetune import FinetuneConfig

        ft = FinetuneConfig(config["epochs"], config["batch_size"], config["lr_head"], config["lr_body"],
                            config["step"], config["gamma"], config["momentum"], config["weight_decay"])
        return list(config["protocols"]), list(config["ious"]), ft

    @staticmethod
    def build(backbone: Any, config: dict[str, Any], seed: int, num_classes: int) -> tuple[Any, dict[str, Any]]:
        """The backbone adapter over the model with the last stage's stride set (where the family
        allows it) and a new classifier for the dataset's classes; the adapter refuses a head CAM
        cannot be read from. Returns (adapter, what was done: strided modules changed, how)."""
        from bench.backbones.view import BackboneView

        view = BackboneView(backbone.model, backbone.card)
        view.head()
        view.check_cam()
        changed, how = view.set_final_stride(1) if config["layer4_stride"] == 1 else ([], "kept (layer4_stride=2)")
        view.replace_head(num_classes, seed)
        return view, {"strided_convs_changed": changed, "final_stride": how}

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import ImageList, Normalizer
        from bench.evaluation import Split
        from bench.finetune import finetune

        protocols, ious, ft = self._settings(ctx.config)
        cfg, card = ctx.config, ctx.backbone.card
        split = self.read(ctx.data, cfg["split"])
        view, built = self.build(ctx.backbone, cfg, ctx.seed, len(split.classes))
        model = view.model
        prepare = Normalizer(card.preprocessing, ctx.device)
        # the number of processes changes training (BatchNorm statistics are per process, and up to
        # world_size - 1 samples sit out each epoch): it keys the stage, except for one process
        train_settings = {"dataset": self.datasets[0], "classes": len(split.classes), "finetune": ft.__dict__,
                          "resize": cfg["resize"], "crop": cfg["crop"], "layer4_stride": cfg["layer4_stride"],
                          **({"world_size": ctx.world_size} if ctx.world_size > 1 else {}),
                          **({"recipe": cfg["finetune_recipe"]} if cfg["finetune_recipe"] != "paper" else {})}
        stage = ctx.stage_dir("finetune", train_settings)
        train = self.read_train(ctx.data)
        recipe = cfg["finetune_recipe"]
        fast = view.fast_modules(recipe)
        info = finetune(model, view.head_name, ImageList(train.images, train.targets, train_transform(cfg["resize"], cfg["crop"])), ft, stage,
                        ctx.device, prepare, ctx.seed, ctx.workers, ctx.progress, ctx.rank, ctx.world_size, recipe, fast, log=ctx.log)
        model = model.to(ctx.device).eval()
        cams = CamComputer.for_view(view, cfg["cam_method"])  # the parts the adapter checked in build()
        grad = cfg["cam_method"] != "cam"  # the Grad-CAM family needs autograd
        splits = []
        if "paper" in protocols:
            size = (cfg["crop"], cfg["crop"])
            splits.append(Split("paper", SizedImages(split.images, split.targets, eval_transform(cfg["resize"], cfg["crop"])), PaperLocEvaluator(split, cfg),
                                forward=lambda b, size=size: cams(prepare(b[0]), [None, b[1]], size), model=model, grad=grad))
        if "wsoleval" in protocols:
            size = (cfg["wsoleval_size"], cfg["wsoleval_size"])
            splits.append(Split("wsoleval", SizedImages(split.images, split.targets, eval_transform(cfg["wsoleval_size"], None)),
                                WsolEvalEvaluator(split, size, float(cfg["interval"]), ious),
                                forward=lambda b, size=size: cams(prepare(b[0]), [b[1]], size), model=model, grad=grad))
        details = {"finetune": info, **built, "classes": len(split.classes), "protocols": protocols, "backbone_parts": view.describe()}
        return Plan(splits, details, cleanup=[cams.close])


def _base_row(split: LocSplit, i: int) -> dict[str, Any]:
    return {"index": i, "id": split.ids[i], "target": split.targets[i]}


class PaperLocEvaluator(RowsEvaluator):
    """The paper protocol: batches (images, targets, indices, widths, heights), outputs (logits,
    (CAMs of the predicted class, CAMs of the true class)); per image the box of the largest
    component at cam_threshold x max, a hit at IoU > loc_iou."""

    def __init__(self, split: LocSplit, cfg: dict[str, Any]):
        self.split, self.cfg = split, cfg

    def process(self, batch: Any, outputs: Any) -> None:
        from bench.metrics.wsol import box_hits, crop_box, largest_component_box

        _, _, indices, widths, heights = batch
        logits, (pred_maps, gt_maps) = outputs
        cfg, split = self.cfg, self.split
        preds = logits.argmax(1).tolist()
        for j, (i, size) in enumerate(zip(indices.tolist(), zip(widths.tolist(), heights.tolist()))):
            gt = np.array([crop_box(b, size, cfg["resize"], cfg["crop"]) for b in split.boxes[i]])
            pred_box = largest_component_box(pred_maps[j], cfg["cam_threshold"])
            hit_pred, iou_pred = box_hits(pred_box, gt, cfg["loc_iou"])
            hit_gt, iou_gt = box_hits(largest_component_box(gt_maps[j], cfg["cam_threshold"]), gt, cfg["loc_iou"])
            correct = preds[j] == split.targets[i]
            self.rows[i] = {"pred": preds[j], "box": list(pred_box) if pred_box else None, "iou": round(iou_pred, 4),
                            "top1_loc": bool(correct and hit_pred), "gt_known_loc": bool(hit_gt), "gt_known_iou": round(iou_gt, 4),
                            "top1_wrong": int(not correct)}

    def metrics(self) -> dict[str, float]:
        rows, n = self.rows, len(self.rows)
        return {
            "top1_loc": 100.0 * sum(r["top1_loc"] for r in rows.values()) / n,
            "gt_known_loc": 100.0 * sum(r["gt_known_loc"] for r in rows.values()) / n,
            "top1_err": 100.0 * sum(r["pred"] != self.split.targets[i] for i, r in rows.items()) / n,
        }

    def samples(self) -> list[dict[str, Any]]:
        return [{**_base_row(self.split, i), **self.rows[i]} for i in sorted(self.rows)]


class WsolEvalEvaluator(Evaluator):
    """wsolevaluation's protocol: the true class's score maps at `size`, the threshold sweep;
    MaxBoxAcc (largest contour, IoU 50) and maxboxacc@{iou} over all contours (MaxBoxAccV2 is
    their mean, a declared aggregation)."""

    def __init__(self, split: LocSplit, size: tuple[int, int], interval: float, ious: list[int]):
        self.split, self.size, self.interval, self.ious = split, size, interval, ious

    def reset(self) -> None:
        from bench.metrics.wsol import BoxAccuracy, cam_thresholds

        thresholds = cam_thresholds(self.interval)
        self.v2 = BoxAccuracy(thresholds, tuple(self.ious), multi_contour=True)
        self.v1 = BoxAccuracy(thresholds, (50,), multi_contour=False)
        self.seen: list[int] = []
        self.hits: dict[int, dict[str, Any]] = {}

    def process(self, batch: Any, outputs: Any) -> None:
        from bench.metrics.wsol import resize_box

        _, _, indices, widths, heights = batch
        _, (maps,) = outputs
        sizes = list(zip(widths.tolist(), heights.tolist()))
        indices = indices.tolist()
        gts = [np.array([resize_box(b, sizes[j], self.size) for b in self.split.boxes[i]]) for j, i in enumerate(indices)]
        from bench.stats.replicates import runs_of

        bests2, bests1 = self.v2.add_many(maps, gts), self.v1.add_many(maps, gts)
        for i, b2, b1 in zip(indices, bests2, bests1):  # per image, the CAM thresholds where its box hits (bench check's bootstrap)
            self.hits[i] = {"hits_v1": runs_of(b1 >= 0.5), **{f"hits@{t}": runs_of(b2 >= t / 100) for t in self.ious}}
        self.seen += indices

    def state(self) -> Any:
        return (self.v1.count, self.v1.correct, self.v2.count, self.v2.correct, self.seen, self.hits)

    def merge(self, states: list[Any]) -> None:
        for k, acc in ((0, self.v1), (2, self.v2)):
            acc.count = sum(p[k] for p in states)
            acc.correct = {t: sum(p[k + 1][t] for p in states) for t in acc.correct}
        self.seen = sorted(i for p in states for i in p[4])
        self.hits = {i: h for p in states for i, h in p[5].items()}

    def metrics(self) -> dict[str, float]:
        r1, r2 = self.v1.result(), self.v2.result()
        self.thresholds = {"maxboxacc": r1["best_cam_threshold@50"], **{f"maxboxacc@{t}": r2[f"best_cam_threshold@{t}"] for t in self.ious}}
        return {"maxboxacc": r1["maxboxacc@50"], **{f"maxboxacc@{t}": r2[f"maxboxacc@{t}"] for t in self.ious}}

    def details(self) -> dict[str, Any]:
        return {"best_cam_threshold": self.thresholds}

    def samples(self) -> list[dict[str, Any]]:
        return [{**_base_row(self.split, i), **self.hits[i]} for i in self.seen]


class CubLocalization(Localization):
    name = "cub_loc"
    description = "CUB-200-2011 WSOL: top-1 / GT-known Loc (paper) and MaxBoxAcc / MaxBoxAccV2 (wsolevaluation)"
    datasets = ("cub",)
    metrics = localization_specs("CUB200")
    reported_key = "cub_loc"
    splits = ("test", "train")
    # paper App. B: 600 epochs, batch 32, lr 0.01 head / 0.001 rest, x0.1 every 150 epochs
    schedule = {"epochs": 600, "batch_size": 32, "lr_head": 0.01, "lr_body": 0.001, "step": 150, "gamma": 0.1, "momentum": 0.9, "weight_decay": 1e-4}

    def read(self, data: DataLocator, split: str) -> LocSplit:
        from bench.data.cub import read_cub

        cub = read_cub(data.dir("cub"), split)
        return LocSplit([str(i) for i in cub.image_ids], cub.images, cub.targets, [np.array([b]) for b in cub.boxes], cub.classes)

    def read_train(self, data: DataLocator) -> LocSplit:
        return self.read(data, "train")


class ImageNetLocalization(Localization):
    name = "imagenet_loc"
    description = "ImageNet WSOL: top-1 / GT-known Loc (paper) and MaxBoxAcc / MaxBoxAccV2 (wsolevaluation) on ILSVRC val boxes"
    datasets = ("imagenet",)
    metrics = localization_specs("ImageNet")
    reported_key = "imagenet_loc"
    split_name = "val"
    splits = ("val",)
    # paper App. B: 20 epochs, batch 256, lr 0.1 head / 0.01 rest, x0.1 every 6 epochs
    schedule = {"epochs": 20, "batch_size": 256, "lr_head": 0.1, "lr_body": 0.01, "step": 6, "gamma": 0.1, "momentum": 0.9, "weight_decay": 1e-4}

    def read(self, data: DataLocator, split: str) -> LocSplit:
        from bench.data.imagenet import read_imagenet_val, read_val_box_table

        if split != "val":
            raise BenchError(f"imagenet_loc scores the val split, not '{split}'", "--set split=val")
        root = data.dir("imagenet")
        val = read_imagenet_val(root)
        table = read_val_box_table(root)
        ids = [p.stem for p in val.images]
        lacking = [i for i in ids if not table.get(i)]
        if lacking:
            raise BenchError(f"{len(lacking)} ImageNet val image(s) have no box (e.g. {lacking[0]})", "use the complete ILSVRC2012 val boxes (ILSVRC2012_bbox_val_v3.tgz or LOC_val_solution.csv)")
        return LocSplit(ids, val.images, val.targets, [np.array(table[i], dtype=np.float64) for i in ids], val.classes)

    def read_train(self, data: DataLocator) -> LocSplit:
        from bench.data.imagenet import read_imagenet_train

        train = read_imagenet_train(data.dir("imagenet"))
        return LocSplit([p.stem for p in train.images], train.images, train.targets, [], train.classes)
