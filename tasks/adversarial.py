"""White-box FGSM on ImageNet val (paper Table 11: top-1 accuracy at eps = 8/255).

x_adv = clip(x + eps * sign(grad_x CE(f(normalise(x)), y)), 0, 1), with x the image in [0, 1]
pixel space (the card's resize and crop, before its normalisation) and y the true label. The
model stays in eval mode (BatchNorm statistics, no dropout); one gradient per image serves every
eps of a sweep (`--set eps=[...]`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bench.evaluation import RowsEvaluator
from bench.settings import Setting
from bench.task import DataCheck, DataLocator, MetricSpec, Plan, RunContext, Stat, Task


def eps_name(eps: float) -> str:
    """8/255 -> 'eps8' (eps in 1/255 steps when it is one), else 'eps0.05'."""
    steps = eps * 255
    return f"eps{round(steps)}" if abs(steps - round(steps)) < 1e-6 else f"eps{eps:g}"


def fgsm(model: torch.nn.Module, normalize: Any, x: torch.Tensor, y: torch.Tensor, eps: list[float]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Clean logits and, per eps, the logits of the FGSM images; x in [0, 1], the model in eval mode."""
    x = x.detach().clone().requires_grad_(True)
    logits = model(normalize(x))
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), x)
    step = grad.sign()
    with torch.no_grad():
        attacked = [model(normalize((x + e * step).clamp_(0, 1))) for e in eps]
    return logits.detach(), attacked


class FgsmEvaluator(RowsEvaluator):
    """Batches (images in [0, 1], targets, indices); outputs (clean logits, [logits per eps]);
    rows: index -> (target, clean prediction, prediction per eps)."""

    def __init__(self, eps: list[float]):
        self.eps = eps

    def process(self, batch: Any, outputs: Any) -> None:
        _, targets, indices = batch
        clean, attacked = outputs
        preds = [clean.argmax(1).tolist()] + [a.argmax(1).tolist() for a in attacked]
        for j, (i, t) in enumerate(zip(indices.tolist(), targets.tolist())):
            self.rows[i] = (t, preds[0][j], [p[j] for p in preds[1:]])

    def metrics(self) -> dict[str, float]:
        n = len(self.rows)
        out = {"clean_top1_acc": 100.0 * sum(r[1] == r[0] for r in self.rows.values()) / n}
        for k, e in enumerate(self.eps):
            acc = 100.0 * sum(r[2][k] == r[0] for r in self.rows.values()) / n
            if k == 0:
                out["fgsm_top1_acc"] = acc
            out[f"top1_acc@{eps_name(e)}"] = acc
        return out

    def samples(self) -> list[dict[str, Any]]:
        return [{"index": i, "target": t, "pred": p, "pred_adv": adv, "clean_correct": int(p == t), "fgsm_correct": int(adv[0] == t),
                 **{f"correct@{eps_name(e)}": int(a == t) for e, a in zip(self.eps, adv)}} for i, (t, p, adv) in sorted(self.rows.items())]


class ImageNetFgsm(Task):
    name = "imagenet_fgsm"
    # 1: FGSM in [0, 1] pixel space before normalisation, eval mode, one gradient per image for every eps
    version = "1"
    description = "ImageNet val top-1 accuracy under white-box FGSM (paper Table 11)"
    datasets = ("imagenet",)
    reported_key = "imagenet_fgsm"
    metrics = (
        MetricSpec("fgsm_top1_acc", True, description="top-1 accuracy on FGSM images at the first eps (default 8/255), pixel space [0, 1], eval mode",
                   tables=("paper Table 11: FGSM Top-1 Acc",), headline=True, stat=Stat("proportion", "fgsm_correct")),
        MetricSpec("clean_top1_acc", True, description="top-1 accuracy on the same images, unattacked", stat=Stat("proportion", "clean_correct")),
        MetricSpec("top1_acc@{eps}", True, description="top-1 accuracy at each eps of the sweep (eps8 = 8/255)", stat=Stat("proportion", "correct@{eps}")),
    )

    def default_config(self) -> dict[str, Any]:
        return {"eps": [8 / 255]}

    def settings(self) -> dict[str, Setting]:
        return {"eps": Setting("floats", "attack strengths in [0, 1] pixel units (8/255 = 0.0314: the paper's); the first is the headline", lo=0, hi=1, nonempty=True)}

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from tasks.classification import ImageNetClassification

        return ImageNetClassification().check(data, card, config)

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import ImageList, eval_transform
        from bench.data.imagenet import read_imagenet_val
        from bench.evaluation import Split

        card = ctx.backbone.card
        split = read_imagenet_val(ctx.data.dir("imagenet"), card.num_classes)
        model = ctx.backbone.model.to(ctx.device).eval()
        mean = torch.tensor(card.preprocessing.mean, dtype=torch.float32, device=ctx.device).view(1, -1, 1, 1)
        std = torch.tensor(card.preprocessing.std, dtype=torch.float32, device=ctx.device).view(1, -1, 1, 1)
        eps = list(ctx.config["eps"])

        def pixels(x: torch.Tensor) -> torch.Tensor:  # the card's normalisation of an image in [0, 1], differentiable
            return (x - mean) / std
        val = Split("val", ImageList(split.images, split.targets, eval_transform(card.preprocessing)), FgsmEvaluator(eps),
                    forward=lambda batch: fgsm(model, pixels, batch[0].float() / 255.0, batch[1], eps), model=model, grad=True)
        return Plan([val], {"layout": split.layout, "eps": {eps_name(e): e for e in eps}, "space": "pixels in [0, 1], before the card's normalisation"})
