"""CIFAR-100 classification: top-1 / top-5 error on the test set (paper Table 5), with the card's
preprocessing (a CIFAR card's: the 32x32 pixels as they are, CIFAR normalisation)."""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError
from bench.task import DataCheck, DataLocator, MetricSpec, Plan, RunContext, Stat, Task
from tasks.classification import TopKEvaluator


def require_cifar100(card: Any, task: str) -> None:
    if card.num_classes != 100:
        raise BenchError(f"{task} needs a 100-way CIFAR-100 classifier, but {card.name} predicts {card.num_classes} classes",
                         "use a CIFAR-100 backbone (bench list backbones: pyramidnet200_*), or --num-classes 100 for a file with a 100-way head")


class Cifar100Classification(Task):
    name = "cifar100_cls"
    version = "1"
    description = "CIFAR-100 test top-1/top-5 error"
    datasets = ("cifar100",)
    metrics = (
        MetricSpec("top1_err", False, description="top-1 error on the 10,000 CIFAR-100 test images, the card's preprocessing (CIFAR cards: none but normalisation)",
                   tables=("paper Table 5: CIFAR-100 Top-1 Err",), headline=True, stat=Stat("proportion", "top1_wrong")),
        MetricSpec("top5_err", False, description="top-5 error, as top1_err", tables=("paper Table 5: CIFAR-100 Top-5 Err",), stat=Stat("proportion", "top5_wrong")),
        MetricSpec("ece", False, description="expected calibration error of the top-1 softmax confidence, 15 equal-width bins", tables=("calibration: CIFAR-100 ECE",), stat=Stat("ece", "confidence,top1_wrong")),
        MetricSpec("nll", False, unit="nats", description="mean negative log-likelihood of the true class", tables=("calibration: CIFAR-100 NLL",), stat=Stat("mean", "nll", scale=1.0)),
    )
    reported_key = "cifar100_cls"
    seeded = False

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.cifar import read_cifar100
        from bench.data.fingerprint import Fingerprint

        require_cifar100(card, self.name)
        root = data.dir("cifar100")
        test = read_cifar100(root, "test")
        fp = Fingerprint().files("cifar100", root, test.files).values("labels", test.targets)
        return DataCheck({"cifar100": f"{len(test.images)} test images, 100 classes"}, fp.hexdigest(), len(test.images))

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.cifar import ArrayImages, array_transform, read_cifar100
        from bench.data.images import Normalizer
        from bench.evaluation import Split

        card = ctx.backbone.card
        require_cifar100(card, self.name)
        test = read_cifar100(ctx.data.dir("cifar100"), "test")
        model = ctx.backbone.model.to(ctx.device)
        normalize = Normalizer(card.preprocessing, ctx.device)
        split = Split("test", ArrayImages(test.images, test.targets, array_transform(card.preprocessing, (32, 32))), TopKEvaluator(test.names),
                      forward=lambda batch: model(normalize(batch[0])), model=model)
        return Plan([split])
