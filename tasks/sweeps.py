"""The paper's Figure 5 sweeps on ImageNet val: occlusion (5a) and in-between-class samples (5b).

Each image (or pair) is decoded once, with the card's resize and crop, and every sweep point is
applied to the decoded batch in [0, 1] pixel space before the card's normalisation.

- imagenet_occlusion: a centred square of side s set to the fill colour (center occlusion), or
  everything outside it (boundary occlusion); top-1 error per s.
- imagenet_inbetween: fixed, seeded pairs of val images of different classes (A, B); Mixup
  samples lam * A + (1 - lam) * B and CutMix samples (A with a centred square of side s from B);
  per point the share of predictions that are neither class, class A, or class B.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.errors import BenchError
from bench.evaluation import RowsEvaluator
from bench.settings import Setting
from bench.task import DataCheck, DataLocator, MetricSpec, Stat, Plan, RunContext, Task

FILLS = ("mean", "black")


def point_name(value: float) -> str:
    """0.3 -> '0.3', 16 -> '16' (sweep points in metric names)."""
    return f"{value:g}"


def _fill(fill: str, mean: torch.Tensor) -> torch.Tensor:
    """The occluder's colour in pixel space: the normalisation mean (0 after normalising) or black."""
    return mean.clone() if fill == "mean" else torch.zeros_like(mean)


def _check_sizes(sizes: list[int], card: Any, setting: str) -> None:
    too_big = [s for s in sizes if s > card.preprocessing.crop]
    if too_big:
        raise BenchError(f"{setting} {too_big[0]} is larger than the crop ({card.preprocessing.crop}x{card.preprocessing.crop})",
                         f"use sizes from 0 to {card.preprocessing.crop}, e.g. --set {setting}=[0,16,...]")


def _imagenet_check(data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
    from tasks.classification import ImageNetClassification

    return ImageNetClassification().check(data, card, config)


class OcclusionEvaluator(RowsEvaluator):
    """Batches (images, targets, indices); outputs (predictions per sweep point: points x N);
    rows: index -> (target, [prediction per point])."""

    def __init__(self, points: list[tuple[str, int]]):
        self.points = points  # (mode, side)

    def process(self, batch: Any, outputs: torch.Tensor) -> None:
        _, targets, indices = batch
        preds = outputs.t().tolist()
        for i, t, p in zip(indices.tolist(), targets.tolist(), preds):
            self.rows[i] = (t, p)

    def metrics(self) -> dict[str, float]:
        n = len(self.rows)
        errors = [100.0 * sum(r[1][k] != r[0] for r in self.rows.values()) / n for k in range(len(self.points))]
        self.curves: dict[str, dict[str, float]] = {}
        for (mode, side), err in zip(self.points, errors):
            self.curves.setdefault(mode, {})[str(side)] = err
        out = {f"{mode}_err_mean": sum(curve.values()) / len(curve) for mode, curve in self.curves.items()}
        out.update({f"{mode}_err@{side}": err for (mode, side), err in zip(self.points, errors)})
        return out

    def details(self) -> dict[str, Any]:
        return {"curves": self.curves}

    def samples(self) -> list[dict[str, Any]]:
        out = []
        for i, (t, p) in sorted(self.rows.items()):  # per point a 0/1 error, per mode the share of its points wrong (bench check)
            row: dict[str, Any] = {"index": i, "target": t, "preds": p}
            for mode in dict.fromkeys(m for m, _ in self.points):
                wrong = [int(q != t) for (m, side), q in zip(self.points, p) if m == mode]
                row.update({f"{mode}_wrong@{side}": int(q != t) for (m, side), q in zip(self.points, p) if m == mode})
                row[f"{mode}_wrong_share"] = sum(wrong) / len(wrong)
            out.append(row)
        return out


class ImageNetOcclusion(Task):
    name = "imagenet_occlusion"
    # 1: centred square of side s, center and boundary, fill in pixel space before normalisation, decode once
    version = "1"
    description = "ImageNet val top-1 error under centre and boundary occlusion of side s (paper Figure 5a)"
    datasets = ("imagenet",)
    seeded = False
    metrics = (
        MetricSpec("center_err_mean", False, description="top-1 error averaged over the sweep's sides, centre occlusion", tables=("paper Figure 5a: center occlusion",), headline=True, stat=Stat("mean", "center_wrong_share")),
        MetricSpec("boundary_err_mean", False, description="top-1 error averaged over the sweep's sides, boundary occlusion", tables=("paper Figure 5a: boundary occlusion",), headline=True, stat=Stat("mean", "boundary_wrong_share")),
        MetricSpec("center_err@{size}", False, description="top-1 error with the centred square of this side filled", detail=True, stat=Stat("proportion", "center_wrong@{size}")),
        MetricSpec("boundary_err@{size}", False, description="top-1 error with everything outside the centred square of this side filled", detail=True, stat=Stat("proportion", "boundary_wrong@{size}")),
    )

    def default_config(self) -> dict[str, Any]:
        return {"sizes": list(range(0, 225, 16)), "modes": ["center", "boundary"], "fill": "mean"}

    def settings(self) -> dict[str, Setting]:
        return {
            "sizes": Setting("ints", "sides of the centred square, pixels of the crop (0 to the crop)", lo=0, nonempty=True),
            "modes": Setting("strs", "center: fill inside the square; boundary: fill outside it", choices=("center", "boundary"), nonempty=True),
            "fill": Setting("str", "the occluder: mean = the card's normalisation mean (0 after normalising, as zeroing a normalised tensor gives); "
                            "black = pixel value 0. The paper says 'zeroed-out' and released no occlusion code, so which one it used is unknown", choices=FILLS),
        }

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        _check_sizes(config["sizes"], card, "sizes")
        return _imagenet_check(data, card, config)

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import ImageList, Normalizer, eval_transform
        from bench.data.imagenet import read_imagenet_val
        from bench.evaluation import Split
        from bench.sweeps import occlude

        card = ctx.backbone.card
        split = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
        model = ctx.backbone.model.to(ctx.device)
        norm = Normalizer(card.preprocessing, ctx.device)
        mean, std = norm.mean, norm.std  # the card's normalisation, applied after each sweep point in [0, 1] pixel space
        fill = _fill(ctx.config["fill"], mean)
        points = [(mode, side) for mode in ctx.config["modes"] for side in ctx.config["sizes"]]

        def forward(batch: Any) -> torch.Tensor:  # one decoded batch, every sweep point
            x = batch[0].float() / 255.0
            return torch.stack([model((occlude(x, side, mode, fill) - mean) / std).argmax(1) for mode, side in points])
        val = Split("val", ImageList(split.images, split.targets, eval_transform(card.preprocessing)), OcclusionEvaluator(points), forward=forward, model=model)
        return Plan([val], {"layout": split.layout, "fill": {"mode": ctx.config["fill"], "pixel_value": fill.view(-1).tolist()},
                            "square": "centred, top-left corner at ((crop - s) // 2, (crop - s) // 2)"})


class PairImages(torch.utils.data.Dataset):
    """Pair k -> (image A, image B, class A, class B, k), each image decoded once with the transform."""

    def __init__(self, base: Any, pairs: Any):
        self.base, self.pairs = base, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> tuple[Any, Any, int, int, int]:
        a, ta, _ = self.base[int(self.pairs[k][0])]
        b, tb, _ = self.base[int(self.pairs[k][1])]
        return a, b, ta, tb, k


class InBetweenEvaluator(RowsEvaluator):
    """Outputs: predictions per sweep point (points x N); rows: pair -> (class A, class B, preds)."""

    def __init__(self, points: list[tuple[str, float]]):
        self.points = points  # ("mixup", lam) or ("cutmix", side)

    def process(self, batch: Any, outputs: torch.Tensor) -> None:
        ta, tb, indices = batch[2], batch[3], batch[4]
        for k, a, b, p in zip(indices.tolist(), ta.tolist(), tb.tolist(), outputs.t().tolist()):
            self.rows[k] = (a, b, p)

    def metrics(self) -> dict[str, float]:
        n = len(self.rows)
        self.curves: dict[str, dict[str, dict[str, float]]] = {}
        out: dict[str, float] = {}
        for k, (kind, value) in enumerate(self.points):
            a = sum(r[2][k] == r[0] for r in self.rows.values())
            b = sum(r[2][k] == r[1] for r in self.rows.values())
            shares = {"neither": 100.0 * (n - a - b) / n, "a": 100.0 * a / n, "b": 100.0 * b / n}
            self.curves.setdefault(kind, {})[point_name(value)] = shares
            out.update({f"{kind}_{who}@{point_name(value)}": share for who, share in shares.items()})
        means = {f"{kind}_neither_mean": sum(p["neither"] for p in curve.values()) / len(curve) for kind, curve in self.curves.items()}
        return {**means, **out}

    def details(self) -> dict[str, Any]:
        return {"curves": self.curves}

    def samples(self) -> list[dict[str, Any]]:
        out = []
        for k, (a, b, p) in sorted(self.rows.items()):  # per point 0/1 for neither / A / B, per kind the share of points neither (bench check)
            row: dict[str, Any] = {"pair": k, "class_a": a, "class_b": b, "preds": p}
            for kind in dict.fromkeys(m for m, _ in self.points):
                neither = [int(q not in (a, b)) for (m, _), q in zip(self.points, p) if m == kind]
                row[f"{kind}_neither_share"] = sum(neither) / len(neither)
            for (kind, value), q in zip(self.points, p):
                row.update({f"{kind}_neither@{point_name(value)}": int(q not in (a, b)), f"{kind}_a@{point_name(value)}": int(q == a), f"{kind}_b@{point_name(value)}": int(q == b)})
            out.append(row)
        return out


class ImageNetInBetween(Task):
    name = "imagenet_inbetween"
    # 1: seeded pairs of different classes, Mixup lam * A + (1 - lam) * B and centred CutMix from B, decode once
    version = "1"
    description = "In-between-class samples on ImageNet val: share of predictions that are neither class (paper Figure 5b)"
    datasets = ("imagenet",)
    seeded = False  # the pairs come from the pair_seed setting
    sample_key = ("pair",)
    metrics = (
        MetricSpec("mixup_neither_mean", False, description="share of Mixup samples predicted as neither class, averaged over the lambdas", tables=("paper Figure 5b: Mixup in-between",), headline=True, stat=Stat("mean", "mixup_neither_share")),
        MetricSpec("cutmix_neither_mean", False, description="share of CutMix samples predicted as neither class, averaged over the sides", tables=("paper Figure 5b: CutMix in-between",), headline=True, stat=Stat("mean", "cutmix_neither_share")),
        MetricSpec("mixup_neither@{lam}", False, description="share predicted as neither class A nor B at lam (lam * A + (1 - lam) * B)", detail=True, stat=Stat("proportion", "mixup_neither@{lam}")),
        MetricSpec("mixup_a@{lam}", True, description="share predicted as class A at lam", detail=True, stat=Stat("proportion", "mixup_a@{lam}")),
        MetricSpec("mixup_b@{lam}", True, description="share predicted as class B at lam", detail=True, stat=Stat("proportion", "mixup_b@{lam}")),
        MetricSpec("cutmix_neither@{size}", False, description="share predicted as neither class with a centred square of this side from B", detail=True, stat=Stat("proportion", "cutmix_neither@{size}")),
        MetricSpec("cutmix_a@{size}", True, description="share predicted as class A (the base image)", detail=True, stat=Stat("proportion", "cutmix_a@{size}")),
        MetricSpec("cutmix_b@{size}", True, description="share predicted as class B (the pasted square)", detail=True, stat=Stat("proportion", "cutmix_b@{size}")),
    )

    def default_config(self) -> dict[str, Any]:
        return {"pairs": 50000, "pair_seed": 0, "lambdas": [k / 10 for k in range(11)], "sizes": list(range(0, 225, 16))}

    def settings(self) -> dict[str, Setting]:
        return {
            "pairs": Setting("int", "number of (A, B) pairs of val images of different classes (the paper: 50,000)", lo=1),
            "pair_seed": Setting("int", "seed of the pair draw (numpy PCG64)", lo=0),
            "lambdas": Setting("floats", "Mixup weights of image A (0 = B, 1 = A); empty list: no Mixup sweep", lo=0, hi=1),
            "sizes": Setting("ints", "CutMix: sides of the centred square taken from B (0 to the crop); empty list: no CutMix sweep", lo=0),
        }

    def validate(self, config: dict[str, Any]) -> None:
        if not config["lambdas"] and not config["sizes"]:
            raise BenchError("imagenet_inbetween needs at least one sweep point", "set lambdas or sizes")

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        _check_sizes(config["sizes"], card, "sizes")
        found = _imagenet_check(data, card, config)
        fp = Fingerprint().values("pairs", [found.fingerprint, config["pairs"], config["pair_seed"]]).hexdigest()
        return DataCheck(found.summary, fp, config["pairs"])

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import ImageList, Normalizer, eval_transform
        from bench.data.imagenet import read_imagenet_val
        from bench.evaluation import Split
        from bench.sweeps import class_pairs, cutmix_center, mixup

        card = ctx.backbone.card
        split = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
        try:
            pairs = class_pairs(split.targets, ctx.config["pairs"], ctx.config["pair_seed"])
        except ValueError as exc:
            raise BenchError(f"imagenet_inbetween: {exc}", "use a val set with at least two classes") from None
        model = ctx.backbone.model.to(ctx.device)
        norm = Normalizer(card.preprocessing, ctx.device)
        mean, std = norm.mean, norm.std  # the card's normalisation, applied after each sweep point in [0, 1] pixel space
        points: list[tuple[str, float]] = [("mixup", lam) for lam in ctx.config["lambdas"]] + [("cutmix", side) for side in ctx.config["sizes"]]

        def forward(batch: Any) -> torch.Tensor:  # one decoded pair batch, every sweep point
            a, b = batch[0].float() / 255.0, batch[1].float() / 255.0
            preds = []
            for kind, value in points:
                x = mixup(a, b, float(value)) if kind == "mixup" else cutmix_center(a, b, int(value))
                preds.append(model((x - mean) / std).argmax(1))
            return torch.stack(preds)
        base = ImageList(split.images, split.targets, eval_transform(card.preprocessing))
        val = Split("pairs", PairImages(base, pairs), InBetweenEvaluator(points), forward=forward, model=model)
        return Plan([val], {"layout": split.layout, "pairs": {"count": len(pairs), "seed": ctx.config["pair_seed"], "first": pairs[:5].tolist(),
                                                               "rule": "uniform with replacement, B redrawn until its class differs from A's"}})
