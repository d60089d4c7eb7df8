"""ImageNet classification: top-1 / top-5 error on the ILSVRC2012 val set (paper Tables 3 and 4)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.data.images import ImageList, Normalizer, eval_transform
from bench.data.imagenet import read_imagenet_val
from bench.evaluation import Evaluator, gather, run_inference, shard
from bench.metrics.classification import topk_error
from bench.task import DataCheck, DataLocator, MetricSpec, RunContext, Task, TaskResult, limited_indices


class TopKEvaluator(Evaluator):
    """Keeps each sample's top-5 classes; scores once, after gathering all ranks."""

    def __init__(self, k: int = 5):
        self.k = k

    def reset(self) -> None:
        self.indices: list[np.ndarray] = []
        self.top: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        # after evaluate(): every rank's samples, in dataset order
        self.index = self.top_all = self.targets_all = None

    def process(self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> None:
        k = min(self.k, outputs.shape[1])
        self.top.append(outputs.topk(k, dim=1).indices.cpu().numpy())
        self.targets.append(targets.numpy())
        self.indices.append(indices.numpy())

    def evaluate(self) -> dict[str, float]:
        parts = gather((np.concatenate(self.indices), np.concatenate(self.top), np.concatenate(self.targets)))
        index = np.concatenate([p[0] for p in parts])
        order = np.argsort(index, kind="stable")
        self.index = index[order]
        self.top_all = np.concatenate([p[1] for p in parts])[order]
        self.targets_all = np.concatenate([p[2] for p in parts])[order]
        ks = tuple(k for k in (1, 5) if k <= self.top_all.shape[1])
        return topk_error(self.top_all, self.targets_all, ks)


class ImageNetClassification(Task):
    name = "imagenet_cls"
    version = "1"
    description = "ImageNet-1k val top-1/top-5 error"
    datasets = ("imagenet",)
    metrics = (
        MetricSpec("top1_err", higher_is_better=False, description="top-1 error"),
        MetricSpec("top5_err", higher_is_better=False, description="top-5 error"),
    )
    reported_key = "imagenet_cls"
    seeded = False  # no training, no randomness: every seed scores the same

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        root = data.dir("imagenet")
        split = read_imagenet_val(root, card.num_classes)
        fp = Fingerprint().files("val", root, split.images).values("labels", [split.targets, split.classes])
        return DataCheck({"imagenet": f"{len(split.images)} val images, {len(split.classes)} classes ({split.layout})"}, fp.hexdigest(), len(split.images))

    def run(self, ctx: RunContext) -> TaskResult:
        card = ctx.backbone.card
        split = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
        n_total = len(split.images)
        chosen = limited_indices(n_total, ctx.limit)  # --limit: N evenly spaced samples
        dataset = ImageList(split.images, split.targets, eval_transform(card.preprocessing))
        subset = torch.utils.data.Subset(dataset, shard(chosen, ctx.rank, ctx.world_size))
        loader = torch.utils.data.DataLoader(
            subset, batch_size=ctx.batch_size, num_workers=ctx.workers, shuffle=False,
            pin_memory=ctx.device.startswith("cuda"), persistent_workers=False,
        )
        model = ctx.backbone.model.to(ctx.device)
        evaluator = TopKEvaluator()
        metrics, timing = run_inference(
            model, loader, ctx.device, Normalizer(card.preprocessing, ctx.device), evaluator, ctx.progress, desc=f"{card.name} {self.name}"
        )
        samples = [
            {"index": int(i), "image": split.images[i].name, "target": int(t), "top5": [int(c) for c in top]}
            for i, t, top in zip(evaluator.index, evaluator.targets_all, evaluator.top_all)
        ]
        return TaskResult(metrics, n_total, len(chosen), samples, {"layout": split.layout, "timing": timing})
