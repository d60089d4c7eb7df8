"""Detection transfer on Pascal VOC (paper Table 10): Faster R-CNN and SSD on any backbone,
trained on VOC07+12 trainval, scored on VOC07 test.

Metrics: `map_voc07` (11-point AP at IoU 0.5, the paper's), `map_area` (area AP at IoU 0.5) and
COCO-style `coco_ap` / `coco_ap50` / `coco_ap75` (pycocotools; difficult objects as crowd
regions, so matching them is neither a hit nor a miss). Per-class APs are in the details.
Boxes: VOC's 1-based inclusive corners become the detector's 0-based continuous ones by
(x1 - 1, y1 - 1, x2, y2), and detections go back by (x1 + 1, y1 + 1, x2, y2), as detectron2 does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.settings import Setting
from bench.evaluation import Evaluator
from bench.task import DataCheck, DataLocator, MetricSpec, Stat, Plan, RunContext, Task

COMMON = {
    "train_sets": [["2007", "trainval"], ["2012", "trainval"]],
    "test_set": ["2007", "test"],
    "frozen_stages": 2,  # stem + layer1 frozen (detectron2 FREEZE_AT=2)
    "freeze_bn": True,  # FrozenBatchNorm2d with the checkpoint's statistics
    "warmup_iters": 500,
    "checkpoint_every": 1000,
    "momentum": 0.9,
    "amp": False,  # bf16 autocast on CUDA: off until a GPU run shows the metric unchanged (bf16 rounds decoded boxes)
}
FRCNN = {
    **COMMON, "design": "c4", "iterations": 120_000, "batch_size": 8, "lr": 0.01, "steps": [100_000], "weight_decay": 1e-4,
    "min_size": 600, "max_size": 1000, "anchor_sizes": [32, 64, 128, 256, 512], "rois_per_image": 512, "rpn_top_n": [2000, 2000, 1000, 1000],
    "train_difficult": True,  # jwyang's pascal_voc.py keeps difficult objects (its filter is commented out), as detectron2 does
    "box_nms_thresh": 0.5, "box_score_thresh": 0.05,  # test time, torchvision's (jwyang: 0.3, 0.0)
    "roi_max_pool": False,  # jwyang: RoIAlign 14, max-pool to 7, layer4 to 4x4
    "rpn_channels": None,  # the RPN conv's width; None keeps the feature map's (jwyang: 512)
    "rpn_min_size": [0.001, 0.001],  # proposals smaller than this (train, test; input pixels) are dropped (jwyang: 8, 16)
    "bias_weight_decay": True,  # jwyang: none on biases
    "preset": "default",  # "jwyang": all of jwyang's faster-rcnn.pytorch values at once (PRESETS)
}
SSD = {**COMMON, "size": 300, "iterations": 120_000, "batch_size": 32, "lr": 1e-3, "steps": [80_000, 100_000], "weight_decay": 5e-4,
       "train_difficult": False,  # ssd.pytorch's VOCAnnotationTransform drops them (keep_difficult=False)
       "prior_scales": "voc",  # SSD300's VOC prior sizes (30 ... 264 px); "coco" for ssd.pytorch's COCO ones
       "extras": "strided",  # the 5x5 -> 3x3 extra block: a padded 3x3 stride 2 ("ssd_pytorch": a valid 3x3)
       "l2norm_scale": None,  # ssd.pytorch: L2Norm(512, 20) on the first source
       "topk_candidates": 400, "detections_per_img": 200,  # test time, torchvision's (ssd.pytorch: 200 per class, no cap per image)
       "bias_weight_decay": True,
       "preset": "default"}  # "ssd_pytorch": all of ssd.pytorch's values at once (PRESETS)
# the paper codebases' settings, selected at once with --set preset=NAME (or frcnn.preset= / ssd.preset= in voc_det);
# the paper's schedules (batch, lr, iterations) stay, as the paper states them
PRESETS = {
    "frcnn": {"jwyang": {"anchor_sizes": [128, 256, 512], "rois_per_image": 256, "rpn_top_n": [12000, 2000, 6000, 300], "box_nms_thresh": 0.3,
                         "box_score_thresh": 0.0, "roi_max_pool": True, "rpn_channels": 512, "rpn_min_size": [8, 16], "bias_weight_decay": False,
                         "warmup_iters": 0, "train_difficult": True}},
    "ssd": {"ssd_pytorch": {"extras": "ssd_pytorch", "l2norm_scale": 20, "topk_candidates": 200, "detections_per_img": 4000, "prior_scales": "voc",
                            "train_difficult": False}},
}

def _common_settings() -> dict[str, Setting]:
    pos_int = dict(lo=1)
    return {
        "train_sets": Setting("voc_sets", "the VOC image sets the detector trains on (the union)", nonempty=True),
        "test_set": Setting("voc_set", "the VOC image set that is scored"),
        "frozen_stages": Setting("int", "stem and stages not trained: 2 freezes stem + layer1 (detectron2 FREEZE_AT)", lo=0, hi=5),
        "freeze_bn": Setting("bool", "BatchNorm frozen with the checkpoint's statistics (false: trained)"),
        "iterations": Setting("int", "training iterations", **pos_int),
        "batch_size": Setting("int", "images per iteration, over all processes", **pos_int),
        "lr": Setting("float", "base learning rate (SGD)", lo=0, lo_open=True),
        "steps": Setting("ints", "iterations at which the learning rate is multiplied by 0.1 (increasing)", lo=0),
        "warmup_iters": Setting("int", "linear warm-up iterations", lo=0),
        "checkpoint_every": Setting("int", "iterations between resumable checkpoints", **pos_int),
        "momentum": Setting("float", "SGD momentum", lo=0, hi=1, hi_open=True),
        "weight_decay": Setting("float", "SGD weight decay", lo=0),
        "bias_weight_decay": Setting("bool", "weight decay on biases too (jwyang, ssd.pytorch: false for Faster R-CNN)"),
        "amp": Setting("bool", "bf16 autocast on CUDA"),
        "train_difficult": Setting("bool", "train on objects marked difficult"),
    }


def _frcnn_settings() -> dict[str, Setting]:
    return {
        **_common_settings(),
        "design": Setting("str", "c4 (the paper's, ResNets only: conv1..layer3 features, layer4 as the box head) or fpn (any backbone; a plain ViT: the simple feature pyramid)", choices=("c4", "fpn")),
        "min_size": Setting("int", "shorter image side at input", lo=1),
        "max_size": Setting("int", "longer image side at most", lo=1),
        "anchor_sizes": Setting("ints", "RPN anchor sizes in input pixels", lo=1, nonempty=True),
        "rois_per_image": Setting("int", "RoIs sampled per image for the box head in training", lo=1),
        "rpn_top_n": Setting("ints", "RPN proposals: pre-NMS train, post-NMS train, pre-NMS test, post-NMS test", lo=1, length=4),
        "box_nms_thresh": Setting("float", "test: NMS IoU per class", lo=0, hi=1),
        "box_score_thresh": Setting("float", "test: detections below this score are dropped", lo=0, hi=1, hi_open=True),
        "roi_max_pool": Setting("bool", "C4: RoIAlign 14 then max-pool to 7 (jwyang's)"),
        "rpn_channels": Setting("int", "C4: width of the RPN conv (null: the feature map's)", lo=1, optional=True),
        "rpn_min_size": Setting("floats", "proposals smaller than this are dropped: [train, test] in input pixels", lo=0, length=2),
        "preset": Setting("str", "a paper codebase's values at once (default keeps the others as set)", choices=("default", *PRESETS["frcnn"])),
    }


def _ssd_settings() -> dict[str, Setting]:
    from bench.detection.models import EXTRAS, PRIOR_SCALES

    return {
        **_common_settings(),
        "size": Setting("int", "square input size (300: SSD300)", lo=32),
        "prior_scales": Setting("str", "prior box sizes: SSD300's VOC ones or ssd.pytorch's COCO ones", choices=tuple(PRIOR_SCALES)),
        "extras": Setting("str", "the 5x5 -> 3x3 extra block: strided (padded 3x3, stride 2) or ssd_pytorch (valid 3x3)", choices=EXTRAS),
        "l2norm_scale": Setting("float", "L2Norm on the first source with this initial scale (null: none; ssd.pytorch: 20)", lo=0, lo_open=True, optional=True),
        "topk_candidates": Setting("int", "test: candidates per class before NMS", lo=1),
        "detections_per_img": Setting("int", "test: detections kept per image", lo=1),
        "preset": Setting("str", "a paper codebase's values at once (default keeps the others as set)", choices=("default", *PRESETS["ssd"])),
    }


SCHEDULE_KEYS = ("iterations", "batch_size", "lr", "steps", "momentum", "weight_decay", "warmup_iters", "checkpoint_every")


class VocTrainSet:
    """Training samples: `sample(index, seed)` -> (float image in [0, 1], target), augmented with
    a generator seeded by `seed` (so a resumed run repeats the same augmentation)."""

    def __init__(self, images: list[Any], kind: str, train_difficult: bool):
        self.images, self.kind, self.train_difficult = images, kind, train_difficult

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, index: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        from bench.data.images import load_rgb

        item = self.images[index]
        keep = np.ones(len(item.labels), bool) if self.train_difficult else ~item.difficult
        boxes = item.boxes[keep].copy()
        boxes[:, :2] -= 1  # 1-based inclusive -> 0-based continuous corners
        image = tv_tensors.Image(v2.functional.pil_to_tensor(load_rgb(item.path)))
        target = {"boxes": tv_tensors.BoundingBoxes(torch.as_tensor(boxes, dtype=torch.float32), format="XYXY", canvas_size=(item.height, item.width)),
                  "labels": torch.as_tensor(item.labels[keep] + 1, dtype=torch.int64)}  # 0 is the background
        steps: list[Any] = []
        if self.kind == "ssd":  # SSD's augmentation (photometric distortion, zoom out, IoU crop, flip)
            steps += [v2.RandomPhotometricDistort(), v2.RandomZoomOut(fill={tv_tensors.Image: (123, 117, 104), "others": 0})]
            if len(boxes):
                steps.append(v2.RandomIoUCrop())
        steps += [v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image, target = v2.Compose(steps)(image, target)
        return image.as_subclass(torch.Tensor), {"boxes": target["boxes"].as_subclass(torch.Tensor).reshape(-1, 4), "labels": target["labels"]}


class VocEvalSet(torch.utils.data.Dataset):
    def __init__(self, images: list[Any]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from torchvision.transforms import v2

        from bench.data.images import load_rgb

        return v2.functional.to_dtype(v2.functional.pil_to_tensor(load_rgb(self.images[index].path)), torch.float32, scale=True), index


def check_settings(kind: str, cfg: dict[str, Any]) -> None:
    """What the setting types cannot say alone, refused in one line before any data is read."""
    if kind == "frcnn" and cfg["design"] != "c4" and (cfg["roi_max_pool"] or cfg["rpn_channels"]):
        raise BenchError("roi_max_pool and rpn_channels apply to the C4 design only", "drop them, or --set design=c4")
    if kind == "frcnn" and cfg["min_size"] > cfg["max_size"]:
        raise BenchError(f"min_size {cfg['min_size']} is larger than max_size {cfg['max_size']}", "--set min_size=N with N <= max_size")
    if list(cfg["steps"]) != sorted(cfg["steps"]):
        raise BenchError(f"lr steps {list(cfg['steps'])} are not in increasing order", "e.g. --set steps=[80000,100000]")


def detection_scores(gt: list[Any], dets: Any, class_names: tuple[str, ...]) -> tuple[dict[str, float], dict[str, Any]]:
    """bench.metrics.voc.detection_metrics, with its one error as a BenchError."""
    from bench.metrics.voc import detection_metrics

    try:
        return detection_metrics(gt, dets, class_names)
    except ValueError as exc:
        raise BenchError(str(exc), "check the split's annotations") from None


class VocDetection(Task):
    """One detector (`kind`), or several (voc_det), each trained as a cached stage."""

    # 2: SSD300's VOC prior boxes (were COCO's), difficult objects kept in Faster R-CNN training,
    #    stages keyed by the number of processes
    version = "2"
    datasets = ("voc",)
    replaces_head = True
    sample_key = ("id",)  # within one detector's rows
    kinds: tuple[str, ...] = ()

    def default_config(self) -> dict[str, Any]:
        if len(self.kinds) == 1:
            return dict(FRCNN if self.kinds[0] == "frcnn" else SSD)
        return {"frcnn": dict(FRCNN), "ssd": dict(SSD)}

    def settings(self) -> dict[str, Setting]:
        specs = {"frcnn": _frcnn_settings, "ssd": _ssd_settings}
        if len(self.kinds) == 1:
            return specs[self.kinds[0]]()
        return {f"{k}.{key}": spec for k in self.kinds for key, spec in specs[k]().items()}

    def validate(self, config: dict[str, Any]) -> None:
        for kind, cfg in self._configs(config).items():
            check_settings(kind, cfg)

    def preset(self, group: str, name: str) -> dict[str, Any]:
        kind = group or self.kinds[0]
        if name == "default":
            return {}
        if name not in PRESETS.get(kind, {}):
            raise BenchError(f"unknown {kind} preset '{name}'", f"use default or {' or '.join(PRESETS.get(kind, {}))}")
        return PRESETS[kind][name]

    def _configs(self, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {self.kinds[0]: config} if len(self.kinds) == 1 else {k: config[k] for k in self.kinds}

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint
        from bench.data.voc import read_voc

        root = data.dir("voc")
        fp, parts, n, read = Fingerprint(), [], 0, {}
        for kind, cfg in self._configs(config).items():
            for role, sets in (("test", [tuple(cfg["test_set"])]), ("train", [tuple(s) for s in cfg["train_sets"]])):
                split = read.get(tuple(sets)) or read.setdefault(tuple(sets), read_voc(root, sets))
                fp.files(f"{kind}/{role}", root, [i.path for i in split.images], sizes=role == "test")
                fp.values(f"{kind}/{role}/boxes", [[i.image_id, i.boxes, i.labels, i.difficult] for i in split.images])
                parts.append(f"{role} {split.name}: {len(split.images)} images, {split.num_objects} objects")
                n = len(split.images) if role == "test" else n
        return DataCheck({"voc": "; ".join(dict.fromkeys(parts))}, fp.hexdigest(), n)

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.voc import read_voc
        from bench.evaluation import Split

        read: dict[tuple, Any] = {}

        def splits(sets: tuple) -> Any:  # voc_det's two detectors usually read the same sets: parse them once
            if sets not in read:
                read[sets] = read_voc(ctx.data.dir("voc"), list(sets))
            return read[sets]
        plan = Plan([])
        for kind, cfg in self._configs(ctx.config).items():
            train = splits(tuple(tuple(s) for s in cfg["train_sets"]))
            test = splits((tuple(cfg["test_set"]),))
            model, info, built = self._trained(ctx, kind, cfg, train)
            plan.details[kind] = {"train": info, "train_set": train.name, "test_set": test.name}
            plan.details.setdefault("backbone", {})[kind] = built  # the adapter's parts, maps, frozen modules and norm layers
            plan.splits.append(Split(kind, VocEvalSet(test.images), VocEvaluator(kind, test), forward=lambda batch, model=model: model([img for img, _ in batch]),
                                     model=model, collate=_as_list, prefix="" if len(self.kinds) == 1 else f"{kind}_", details_key=kind))
        return plan

    def _trained(self, ctx: RunContext, kind: str, cfg: dict[str, Any], train: Any) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
        from bench.data.voc import CLASSES
        from bench.detection.models import build_detector, build_on_adapter
        from bench.detection.train import Schedule, train_detector

        import copy

        from bench.backbones.view import BackboneView

        card = ctx.backbone.card
        # a copy (voc_det builds two detectors on the same loaded backbone), seen through the backbone adapter
        view = BackboneView(copy.deepcopy(ctx.backbone.model), card)
        if view.parts.family == "resnet":  # the paper's paths: C4 (or FPN) and SSD on the stem and layer1..layer4
            net = view.staged()
            try:
                model = build_detector(kind, net, len(CLASSES), card.preprocessing.mean, card.preprocessing.std, cfg)
            except (ValueError, AttributeError) as exc:
                raise BenchError(f"cannot build the {kind} detector on {card.name}: {exc}", "check the card's feature_layers (four ResNet stages)") from None
            built = {"family": "resnet"}
        else:
            model, built = build_on_adapter(kind, view, len(CLASSES), card.preprocessing.mean, card.preprocessing.std, cfg)
        sched = Schedule(int(cfg["iterations"]), int(cfg["batch_size"]), float(cfg["lr"]), tuple(int(s) for s in cfg["steps"]), 0.1, float(cfg["momentum"]),
                         float(cfg["weight_decay"]), int(cfg["warmup_iters"]), 0.001, int(cfg["checkpoint_every"]), bool(cfg["bias_weight_decay"]))
        # what the detector's training depends on; the same for voc_det's and voc_det_<kind>'s configs
        settings = {k: v for k, v in cfg.items() if k not in ("test_set", "preprocessing", "num_classes", "limit")}
        settings["input_mean_std"] = [list(card.preprocessing.mean), list(card.preprocessing.std)]
        if ctx.world_size > 1:  # per-process batches change the epochs' composition (and BN statistics when BN trains)
            settings["world_size"] = ctx.world_size
        stage = ctx.stage_dir(kind, {"task_family": "voc_det", "version": self.version, "train": train.name, **settings}, family="voc_det")
        info = train_detector(model, VocTrainSet(train.images, kind, bool(cfg["train_difficult"])), sched, stage, ctx.device, ctx.seed, ctx.workers,
                              ctx.progress, ctx.rank, ctx.world_size, amp=bool(cfg["amp"]), log=ctx.log)
        return model.to(ctx.device).eval(), info, {**built, "parts": view.describe()}


def _as_list(batch: list[Any]) -> list[Any]:
    return batch


class VocEvaluator(Evaluator):
    """Batches are lists of (image, index); outputs torchvision's detections (0-based continuous
    corners, labels from 1). Scored with the VOC07 and COCO-style metrics once all ranks' rows
    are in; per image, [class, score, x1, y1, x2, y2] in VOC's 1-based corners, as `bench score
    voc` reads them back."""

    def __init__(self, kind: str, test: Any):
        self.kind, self.test = kind, test

    def reset(self) -> None:
        self.rows: list[tuple[int, int, float, list[float]]] = []
        self.seen: list[int] = []

    def process(self, batch: Any, outputs: Any) -> None:
        for (_, index), out in zip(batch, outputs):
            boxes = out["boxes"].float().cpu().numpy().astype(np.float64)
            boxes[:, :2] += 1  # back to VOC's 1-based inclusive corners
            for b, c, s in zip(boxes, out["labels"].cpu().tolist(), out["scores"].float().cpu().tolist()):
                self.rows.append((index, c - 1, s, b.tolist()))
            self.seen.append(index)

    def state(self) -> Any:
        return self.rows, self.seen

    def merge(self, states: list[Any]) -> None:
        self.rows = [r for part in states for r in part[0]]
        self.chosen = sorted(i for part in states for i in part[1])

    def metrics(self) -> dict[str, float]:
        from bench.data.voc import CLASSES
        from bench.metrics.voc import Detections, GroundTruth

        position = {index: k for k, index in enumerate(self.chosen)}
        images = self.test.images
        gt = [GroundTruth(images[i].boxes, images[i].labels, images[i].difficult) for i in self.chosen]
        self.dets = Detections(np.array([position[r[0]] for r in self.rows], np.int64), np.array([r[1] for r in self.rows], np.int64),
                               np.array([r[2] for r in self.rows], np.float64), np.array([r[3] for r in self.rows], np.float64).reshape(-1, 4))
        metrics, self._details = detection_scores(gt, self.dets, CLASSES)
        return metrics

    def details(self) -> dict[str, Any]:
        return self._details

    def samples(self) -> list[dict[str, Any]]:
        from bench.data.voc import CLASSES

        from bench.metrics.voc import class_flags

        dets, images = self.dets, self.test.images
        # per detection its VOC07 match (TP, FP, or neither: a difficult object), which depends on its own image only,
        # and per image its non-difficult objects per class: what bench check's image bootstrap of mAP reweights
        gt_image = np.concatenate([np.full(len(images[i].labels), k) for k, i in enumerate(self.chosen)] or [np.zeros(0, np.int64)])
        gt_boxes = np.concatenate([np.asarray(images[i].boxes, np.float64).reshape(-1, 4) for i in self.chosen] or [np.zeros((0, 4))])
        gt_labels = np.concatenate([np.asarray(images[i].labels, np.int64) for i in self.chosen] or [np.zeros(0, np.int64)])
        gt_difficult = np.concatenate([np.asarray(images[i].difficult, bool) for i in self.chosen] or [np.zeros(0, bool)])
        tp, fp = np.zeros(len(dets.scores), bool), np.zeros(len(dets.scores), bool)
        for c in range(len(CLASSES)):
            g, members = gt_labels == c, np.flatnonzero(dets.labels == c)
            order, tp_c, fp_c, _ = class_flags(gt_image[g], gt_boxes[g], gt_difficult[g], dets.image[members], dets.scores[members], dets.boxes[members])
            tp[members[order]], fp[members[order]] = tp_c, fp_c
        per_image: dict[int, list[list[Any]]] = {k: [] for k in range(len(self.chosen))}
        flags: dict[int, list[list[Any]]] = {k: [] for k in range(len(self.chosen))}
        for j, (k, c, sc, b) in enumerate(zip(dets.image.tolist(), dets.labels.tolist(), dets.scores.tolist(), dets.boxes.tolist())):
            per_image[k].append([CLASSES[c], round(sc, 5)] + [round(v, 2) for v in b])
            flags[k].append([c, sc, int(tp[j]), int(fp[j])])
        counts = np.zeros((len(self.chosen), len(CLASSES)), np.int64)
        np.add.at(counts, (gt_image[~gt_difficult], gt_labels[~gt_difficult]), 1)
        return [{"detector": self.kind, "id": images[i].image_id, "detections": per_image[k], "flags": flags[k], "gt": counts[k].tolist()}
                for k, i in enumerate(self.chosen)]


def detection_specs(prefix: str, detector: str, kind: str) -> tuple[MetricSpec, ...]:
    rows = (("detector", kind),)
    return (
        MetricSpec(prefix + "map_voc07", True, description="VOC2007 11-point mAP at IoU 0.5, difficult objects ignored (the devkit's)",
                   tables=(f"paper Table 10: {detector} mAP", f"transfer: Detection {detector} (mAP)"), headline=True, stat=Stat("voc_map", "flags,gt", rows)),
        MetricSpec(prefix + "map_area", True, description="mAP as the area under the interpolated PR curve at IoU 0.5 (VOC2010+)", stat=Stat("voc_map_area", "flags,gt", rows)),
        MetricSpec(prefix + "coco_ap", True, description="pycocotools AP@[.5:.95], difficult objects as crowd regions"),
        MetricSpec(prefix + "coco_ap50", True, description="pycocotools AP at IoU 0.5"),
        MetricSpec(prefix + "coco_ap75", True, description="pycocotools AP at IoU 0.75"),
    )


class VocFasterRCNN(VocDetection):
    name = "voc_det_frcnn"
    description = "Pascal VOC07 test mAP of Faster R-CNN (ResNet C4) fine-tuned on VOC07+12 trainval"
    kinds = ("frcnn",)
    reported_key = "voc_det_frcnn"
    metrics = detection_specs("", "Faster R-CNN", "frcnn")


class VocSSD(VocFasterRCNN):
    name = "voc_det_ssd"
    description = "Pascal VOC07 test mAP of SSD300 (ResNet layer2/layer3 sources) fine-tuned on VOC07+12 trainval"
    kinds = ("ssd",)
    reported_key = "voc_det_ssd"
    metrics = detection_specs("", "SSD", "ssd")


class VocBoth(VocDetection):
    name = "voc_det"
    description = "Pascal VOC07 test mAP of Faster R-CNN and SSD (the paper's two columns)"
    kinds = ("frcnn", "ssd")
    reported_key = "voc_det"
    metrics = detection_specs("frcnn_", "Faster R-CNN", "frcnn") + detection_specs("ssd_", "SSD", "ssd")
