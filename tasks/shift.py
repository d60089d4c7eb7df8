"""Natural distribution shift: top-1 error on ImageNetV2 (matched-frequency), ImageNet-Sketch,
ImageNet-R and ImageNet-A, and its change from the clean ImageNet val error.

Each set is read in its released layout and scored with the card's eval preprocessing (resize
and center crop, as ImageNet val). ImageNet-R and ImageNet-A cover 200 classes each: their
logits are restricted to those classes (the argmax over the 200), as their authors score them.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.data.shift import SETS
from bench.errors import BenchError
from bench.settings import Setting
from bench.task import DataCheck, DataLocator, MetricSpec, Stat, Plan, RunContext, Task
from tasks.classification import CLEAN_SETTING_HELP, TopKEvaluator


class ShiftEvaluator(TopKEvaluator):
    """Top-1/top-5 error, ECE and NLL of one set (in its class space), plus the change from clean:
    `delta` against the clean error in the same class space (ImageNet-R/A: ImageNet-200, the val
    images of their 200 classes scored with the same mask, as hendrycks/imagenet-r's eval.py;
    the others: the 1000-class val error), and for ImageNet-R/A `delta_1k` against the 1000-class one."""

    def __init__(self, image_names: list[str], clean_error: Any, clean_200: Any = None):
        super().__init__(image_names)
        self.clean_error, self.clean_200 = clean_error, clean_200

    def metrics(self) -> dict[str, float]:
        out = super().metrics()
        clean = self.clean_error()
        if self.clean_200 is None:
            if clean is not None:
                out["delta"] = out["top1_err"] - clean
            return out
        clean_200 = self.clean_200()
        if clean_200 is not None:
            out["delta"] = out["top1_err"] - clean_200
        if clean is not None:
            out["delta_1k"] = out["top1_err"] - clean
        return out


def _clean_200(val: Any, subset: list[int]) -> tuple[list[Any], list[int]]:
    """ImageNet val's images of a 200-class set's classes, with targets indexing the subset."""
    position = {c: k for k, c in enumerate(subset)}
    keep = [(p, position[t]) for p, t in zip(val.images, val.targets) if t in position]
    return [p for p, _ in keep], [t for _, t in keep]


class ImageNetShift(Task):
    name = "imagenet_shift"
    # 1: released layouts, card's eval preprocessing, ImageNet-R/A logits restricted to their 200 classes
    # 2: ImageNet-R/A's delta against ImageNet-200 (their classes' val images, same mask); delta_1k against the 1000-class error
    version = "2"
    description = "Top-1 error on ImageNetV2, ImageNet-Sketch, ImageNet-R and ImageNet-A, and the change from clean"
    datasets = SETS
    seeded = False
    metrics = (
        MetricSpec("clean_top1_err", False, description="top-1 error on ImageNet val, when scored in this run (else from the stored imagenet_cls record)", stat=Stat("proportion", "top1_wrong", (("split", "clean"),))),
        MetricSpec("clean_top5_err", False, description="top-5 error on ImageNet val, when scored in this run", stat=Stat("proportion", "top5_wrong", (("split", "clean"),))),
        MetricSpec("clean_ece", False, description="ECE on ImageNet val, when scored in this run", stat=Stat("ece", "confidence,top1_wrong", (("split", "clean"),))),
        MetricSpec("clean_nll", False, unit="nats", description="NLL on ImageNet val, when scored in this run", stat=Stat("mean", "nll", (("split", "clean"),), scale=1.0)),
        MetricSpec("{set}_clean200_top1_err", False, description="ImageNet-200 top-1 error: ImageNet val's images of the set's 200 classes, "
                   "logits restricted to them (hendrycks/imagenet-r eval.py); ImageNet-R and ImageNet-A only, scored in this run", stat=Stat("proportion", "top1_wrong", (("split", "{set}_clean200"),))),
        MetricSpec("{set}_clean200_top5_err", False, description="ImageNet-200 top-5 error, as {set}_clean200_top1_err", detail=True, stat=Stat("proportion", "top5_wrong", (("split", "{set}_clean200"),))),
        MetricSpec("{set}_clean200_ece", False, description="ImageNet-200 ECE, 15 equal-width bins", detail=True, stat=Stat("ece", "confidence,top1_wrong", (("split", "{set}_clean200"),))),
        MetricSpec("{set}_clean200_nll", False, unit="nats", description="ImageNet-200 NLL", detail=True, stat=Stat("mean", "nll", (("split", "{set}_clean200"),), scale=1.0)),
        MetricSpec("{set}_top1_err", False, description="top-1 error on the set (ImageNet-R/A: argmax over their 200 classes)", tables=("distribution shift: {set} top-1 error",), headline=True, stat=Stat("proportion", "top1_wrong", (("split", "{set}"),))),
        MetricSpec("{set}_delta", False, description="the set's top-1 error minus the clean top-1 error in the same classes, points: "
                   "ImageNet-R/A against ImageNet-200 ({set}_clean200_top1_err), ImageNetV2 and Sketch against the 1000-class val error"),
        MetricSpec("{set}_delta_1k", False, description="ImageNet-R/A: the set's top-1 error minus the 1000-class val top-1 error, points"),
        MetricSpec("{set}_top5_err", False, description="top-5 error on the set", detail=True, stat=Stat("proportion", "top5_wrong", (("split", "{set}"),))),
        MetricSpec("{set}_ece", False, description="ECE on the set, 15 equal-width bins", detail=True, stat=Stat("ece", "confidence,top1_wrong", (("split", "{set}"),))),
        MetricSpec("{set}_nll", False, unit="nats", description="NLL on the set", detail=True, stat=Stat("mean", "nll", (("split", "{set}"),), scale=1.0)),
    )

    def default_config(self) -> dict[str, Any]:
        return {"sets": list(SETS), "clean": "auto"}

    def settings(self) -> dict[str, Setting]:
        return {"sets": Setting("strs", "which test sets to score, each under the data root by its folder name", choices=SETS, nonempty=True),
                "clean": Setting("str", CLEAN_SETTING_HELP, choices=("auto", "run", "none"))}

    def _read(self, data: DataLocator, card: Any, config: dict[str, Any]) -> list[Any]:
        from bench.data.shift import read_shift_set

        if card.num_classes != 1000:
            raise BenchError(f"imagenet_shift scores 1000-way ImageNet classifiers, but {card.name} predicts {card.num_classes} classes",
                             "use an ImageNet-1k backbone")
        out = []
        for name in config["sets"]:
            try:
                root = data.dir(name)
            except BenchError as exc:
                raise BenchError(exc.message, f"{exc.hint}; or score only the sets you have with --set sets=[...]") from None
            out.append((root, read_shift_set(name, root)))
        return out

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        fp = Fingerprint()
        summary = {}
        sets = self._read(data, card, config)
        for root, found in sets:
            fp.files(found.name, root, found.images).values(f"{found.name} labels", found.targets)
            summary[found.name] = f"{len(found.images)} images, {found.classes} classes"
        return DataCheck(summary, fp.hexdigest(), sum(len(f.images) for _, f in sets))

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import ImageList, Normalizer, eval_transform
        from bench.evaluation import Split
        from tasks.classification import clean_reference

        card = ctx.backbone.card
        sets = self._read(ctx.data, card, ctx.config)
        model = ctx.backbone.model.to(ctx.device)
        normalize = Normalizer(card.preprocessing, ctx.device)
        splits, clean_error, clean_source = clean_reference(ctx, model, normalize)
        val = None
        if ctx.config["clean"] != "none" and any(found.subset for _, found in sets):
            from bench.data.imagenet import read_imagenet_val

            try:
                val = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
            except BenchError as exc:
                clean_source["imagenet_200"] = f"no ImageNet-200 error: ImageNet val is not readable ({exc.message}); ImageNet-R/A have delta_1k only"
        for _, found in sets:
            subset = torch.tensor(found.subset, device=ctx.device) if found.subset is not None else None

            def forward(batch: Any, subset: Any = subset) -> torch.Tensor:
                logits = model(normalize(batch[0]))
                return logits if subset is None else logits.index_select(1, subset)  # ImageNet-R/A: their 200 classes only
            clean_200 = None
            if subset is not None and val is not None:
                images, targets = _clean_200(val, found.subset)
                reference = TopKEvaluator([p.name for p in images])
                splits.append(Split(f"{found.name}_clean200", ImageList(images, targets, eval_transform(card.preprocessing)), reference, forward=forward,
                                    model=model, prefix=f"{found.name}_clean200_", details_key=f"{found.name}_clean200", counted=False))

                def clean_200(reference: Any = reference) -> float:
                    return float(100.0 * (reference.top_all[:, 0] != reference.targets_all).mean())
            splits.append(Split(found.name, ImageList(found.images, found.targets, eval_transform(card.preprocessing)),
                                ShiftEvaluator([p.name for p in found.images], clean_error, clean_200 if subset is not None else None),
                                forward=forward, model=model, prefix=f"{found.name}_", details_key=found.name))
        restricted = {s.name: "logits restricted to its 200 classes; delta against ImageNet-200 (val images of those classes, same mask)" for _, s in sets if s.subset}
        return Plan(splits, counts="sum", details={"clean": clean_source, "restricted": restricted})
