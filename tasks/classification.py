"""ImageNet classification: top-1 / top-5 error on the ILSVRC2012 val set (paper Tables 3 and 4)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.data.images import ImageList, Normalizer, eval_transform
from bench.data.imagenet import read_imagenet_val
from bench.evaluation import Evaluator, Split
from bench.metrics.classification import topk_error
from bench.task import DataCheck, DataLocator, MetricSpec, Plan, RunContext, Stat, Task


class TopKEvaluator(Evaluator):
    """Keeps each sample's top-5 classes; scores once, after gathering all ranks. Batches are
    (images, targets, indices); outputs are logits."""

    def __init__(self, image_names: list[str] | None = None, k: int = 5):
        self.k, self.image_names = k, image_names

    def reset(self) -> None:
        self.indices: list[np.ndarray] = []
        self.top: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self.confidence: list[np.ndarray] = []
        self.true_logp: list[np.ndarray] = []
        # after evaluate(): every rank's samples, in dataset order
        self.index = self.top_all = self.targets_all = None

    def process(self, batch: Any, outputs: torch.Tensor) -> None:
        _, targets, indices = batch
        k = min(self.k, outputs.shape[1])
        self.top.append(outputs.topk(k, dim=1).indices.cpu().numpy())
        self.targets.append(targets.cpu().numpy())
        self.indices.append(indices.cpu().numpy())
        # calibration: the top-1 confidence and the true class's log-probability, in float64
        log_probs = torch.log_softmax(outputs.double(), dim=1)
        self.confidence.append(log_probs.max(1).values.exp().cpu().numpy())
        self.true_logp.append(log_probs.gather(1, targets.view(-1, 1).to(log_probs.device)).view(-1).cpu().numpy())

    def state(self) -> Any:
        return (np.concatenate(self.indices), np.concatenate(self.top), np.concatenate(self.targets), np.concatenate(self.confidence), np.concatenate(self.true_logp))

    def merge(self, states: list[Any]) -> None:
        index = np.concatenate([p[0] for p in states])
        order = np.argsort(index, kind="stable")
        self.index = index[order]
        self.top_all = np.concatenate([p[1] for p in states])[order]
        self.targets_all = np.concatenate([p[2] for p in states])[order]
        self.confidence_all = np.concatenate([p[3] for p in states])[order]
        self.true_logp_all = np.concatenate([p[4] for p in states])[order]

    def metrics(self) -> dict[str, float]:
        from bench.metrics.calibration import expected_calibration_error, reliability

        ks = tuple(k for k in (1, 5) if k <= self.top_all.shape[1])
        correct = self.top_all[:, 0] == self.targets_all
        self.bins = reliability(self.confidence_all, correct)
        return {**topk_error(self.top_all, self.targets_all, ks), "ece": expected_calibration_error(self.confidence_all, correct),
                "nll": float(-self.true_logp_all.mean())}

    def details(self) -> dict[str, Any]:
        return {"reliability": self.bins}  # the reliability diagram's 15 bins: count, mean confidence, accuracy

    def samples(self) -> list[dict[str, Any]]:
        return [{"index": int(i), "image": self.image_names[i], "target": int(t), "top5": [int(c) for c in top],
                 "top1_wrong": int(top[0] != t), "top5_wrong": int(t not in top), "nll": float(-lp), "confidence": float(c)}
                for i, t, top, lp, c in zip(self.index, self.targets_all, self.top_all, self.true_logp_all, self.confidence_all)]


class ImageNetClassification(Task):
    name = "imagenet_cls"
    # 2: calibration (ECE, NLL, reliability bins) added to the record
    version = "2"
    description = "ImageNet-1k val top-1/top-5 error"
    datasets = ("imagenet",)
    metrics = (
        MetricSpec("top1_err", higher_is_better=False, description="top-1 error on the val split, the card's resize + center crop, one crop",
                   tables=("paper Tables 3-4: ImageNet Top-1 Err", "transfer: ImageNet Cls (Top-1 Err)"), headline=True, stat=Stat("proportion", "top1_wrong")),
        MetricSpec("top5_err", higher_is_better=False, description="top-5 error, as top1_err", tables=("paper Tables 3-4: ImageNet Top-5 Err",), stat=Stat("proportion", "top5_wrong")),
        MetricSpec("ece", higher_is_better=False, description="expected calibration error of the top-1 softmax confidence, 15 equal-width bins (Guo et al. 2017)",
                   tables=("calibration: ImageNet ECE",), headline=True, stat=Stat("ece", "confidence,top1_wrong")),
        MetricSpec("nll", higher_is_better=False, unit="nats", description="mean negative log-likelihood of the true class", tables=("calibration: ImageNet NLL",), stat=Stat("mean", "nll", scale=1.0)),
    )
    reported_key = "imagenet_cls"
    seeded = False  # no training, no randomness: every seed scores the same

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        root = data.dir("imagenet")
        split = read_imagenet_val(root, card.num_classes)
        fp = Fingerprint().files("val", root, split.images).values("labels", [split.targets, split.classes])
        return DataCheck({"imagenet": f"{len(split.images)} val images, {len(split.classes)} classes ({split.layout})"}, fp.hexdigest(), len(split.images))

    def plan(self, ctx: RunContext) -> Plan:
        card = ctx.backbone.card
        split = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
        model = ctx.backbone.model.to(ctx.device)
        normalize = Normalizer(card.preprocessing, ctx.device)
        val = Split("val", ImageList(split.images, split.targets, eval_transform(card.preprocessing)), TopKEvaluator([p.name for p in split.images]),
                    forward=lambda batch: model(normalize(batch[0])), model=model)
        return Plan([val], {"layout": split.layout})


def clean_reference(ctx: RunContext, model: Any, normalize: Any) -> tuple[list[Split], Any, dict[str, Any]]:
    """The clean top-1 error that robustness tasks compare with (relative mCE, the change under
    distribution shift), by the task's `clean` setting. auto: the stored complete imagenet_cls
    record that this checkpoint's imagenet_cls cell would be now (same preprocessing, settings and
    val fingerprint: bench.runner.matching_record), else ImageNet val scored in this run when readable, else none;
    run: always score ImageNet val here; none: no clean error. Returns the splits to run first
    (the clean pass, prefix clean_), a callable giving the error (percent or None) once they ran,
    and what the record says about where it came from."""
    from bench.errors import BenchError

    mode = ctx.config["clean"]
    source: dict[str, Any] = {"mode": mode, "source": None}
    stored, unused = ctx.stored("imagenet_cls") if mode == "auto" and ctx.stored else (None, None)
    if unused:
        source["unused"] = unused  # a record of this checkpoint exists, but for other preprocessing, settings or data
    evaluator: TopKEvaluator | None = None
    splits: list[Split] = []
    if stored is not None:
        source.update(source="stored imagenet_cls record", run_id=stored["run_id"], top1_err=stored["metrics"]["top1_err"],
                      cell_key=stored["cell_key"], data_fingerprint=stored["data"]["fingerprint"])
    elif mode in ("auto", "run"):
        card = ctx.backbone.card
        try:
            val = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
        except BenchError as exc:
            if mode == "run":
                raise
            source["note"] = f"no clean error: no stored imagenet_cls record of this checkpoint, and ImageNet val is not readable ({exc.message})"
        else:
            evaluator = TopKEvaluator([p.name for p in val.images])
            source["source"] = "ImageNet val scored in this run"
            splits.append(Split("clean", ImageList(val.images, val.targets, eval_transform(card.preprocessing)), evaluator,
                                forward=lambda batch: model(normalize(batch[0])), model=model, prefix="clean_", details_key="clean", counted=False))

    def clean_error() -> float | None:
        if stored is not None:
            return float(stored["metrics"]["top1_err"])
        if evaluator is not None:
            return float(100.0 * (evaluator.top_all[:, 0] != evaluator.targets_all).mean())
        return None
    return splits, clean_error, source


CLEAN_SETTING_HELP = ("the clean error to compare with. auto: the stored imagenet_cls record of this checkpoint with this run's preprocessing, "
                      "its default settings and the ImageNet val on disk now (same fingerprint), else ImageNet val scored here "
                      "if on disk, else none; run: always score ImageNet val here; none: no clean comparison")
