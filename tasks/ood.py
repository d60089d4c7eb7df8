"""Out-of-distribution detection: how well a classifier's scores tell its test set from images of
other distributions (the CutMix paper's Table 12 and A2).

One split scores the in-distribution set (CIFAR-100 test, or ImageNet val), then one split per
OOD set. Every requested score (bench.ood_scores) is kept per sample and stored in the samples
file (set, index, image, scores), so every metric can be recomputed later with `bench score ood
--samples`. Metrics (bench.metrics.ood, conventions in each MetricSpec and the record) per score
and set, `<score>_<metric>@<set>`, and their mean over the sets, `<score>_<metric>`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.evaluation import Evaluator
from bench.metrics.ood import CONVENTIONS, CUTS, METRICS
from bench.ood_scores import DEFINITIONS, SCORES
from bench.settings import Setting
from bench.task import DataCheck, DataLocator, MetricSpec, Plan, RunContext, Stat, Task

HEADLINE = ("auroc", "tnr_at_tpr95")
SHOWN = ("tnr_at_tpr95", "auroc", "detection_acc", "aupr_in", "aupr_out", "fpr_at_tpr95")  # printed for msp; the rest are details
PAPER = {"tnr_at_tpr95": "TNR at TPR 95%", "auroc": "AUROC", "detection_acc": "Detection Acc."}
HIST_BINS = 40


def ood_metric_specs(table: str = "paper Table 12", per_set_table: str = "paper Table A2") -> tuple[MetricSpec, ...]:
    """The OOD metrics; MSP's paper metrics fill the report tables named (over sets, per set)."""
    specs = [MetricSpec("id_top1_err", False, description="top-1 error on the in-distribution set (the classifier the scores come from)",
                        stat=Stat("proportion", "top1_wrong", (("in_distribution", "1"),)))]
    for per_set in (False, True):
        for score in SCORES:
            for metric in METRICS:
                paper = score == "msp" and metric in PAPER
                name = f"{score}_{metric}" + ("@{set}" if per_set else "")
                about = f"{DEFINITIONS[score]}; {CONVENTIONS[metric]}"
                specs.append(MetricSpec(
                    name, not metric.startswith("fpr"),
                    description=about if per_set else f"mean over the OOD sets of {score}_{metric}@<set>; {about}",
                    tables=((f"{per_set_table}: {{set}} {PAPER[metric]}",) if per_set else (f"{table}: {PAPER[metric]}",)) if paper else (),
                    headline=not per_set and score == "msp" and metric in HEADLINE,
                    aggregate=None if per_set else ("mean", f"{score}_{metric}@{{set}}"),
                    detail=per_set or not (metric in SHOWN if score == "msp" else metric in ("auroc", "fpr_at_tpr95")),
                    # AUROC: DeLong per set; their mean, a bootstrap with the in-distribution set resampled once per replicate for all sets
                    # the threshold metrics (TNR/FPR at TPR 95%, detection accuracy, AUPR): the same stratified bootstrap, per set or over sets
                    stat=((Stat("auroc", score, (("set", "{set}"),)) if per_set else Stat("auroc_mean", score)) if metric == "auroc" else
                          Stat(f"ood:{metric}", score, (("set", "{set}"),)) if per_set else Stat(f"ood_mean:{metric}", score)),
                ))
    return tuple(specs)


class OodEvaluator(Evaluator):
    """Batches (images, targets, indices); outputs {score name: (N,) scores, 'logits': ...}. The
    in-distribution evaluator (reference None) reports its top-1 error; an OOD set's evaluator
    scores itself against the in-distribution one's scores."""

    def __init__(self, set_name: str, image_names: list[str], scores: list[str], reference: "OodEvaluator | None" = None):
        self.set_name, self.image_names, self.scores, self.reference = set_name, image_names, scores, reference

    def reset(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def process(self, batch: Any, outputs: dict[str, torch.Tensor]) -> None:
        _, targets, indices = batch
        part = {"index": indices.cpu().numpy(), "target": targets.cpu().numpy(), "pred": outputs["logits"].argmax(1).cpu().numpy()}
        part.update({s: outputs[s].detach().double().cpu().numpy() for s in self.scores})
        self.parts.append(part)

    def state(self) -> Any:
        keys = ["index", "target", "pred", *self.scores]
        return {k: np.concatenate([p[k] for p in self.parts]) if self.parts else np.zeros(0) for k in keys}

    def merge(self, states: list[Any]) -> None:
        merged = {k: np.concatenate([s[k] for s in states]) for k in states[0]}
        order = np.argsort(merged["index"], kind="stable")
        self.values = {k: v[order] for k, v in merged.items()}

    def metrics(self) -> dict[str, float]:
        from bench.metrics.ood import ood_metrics

        v = self.values
        for s in self.scores:
            bad = ~np.isfinite(v[s])
            if bad.any():
                i = int(v["index"][np.flatnonzero(bad)[0]])
                raise BenchError(f"the {s} score of {self.set_name} image {self.image_names[i]} is not finite: the backbone's logits overflowed or are NaN",
                                 "check the checkpoint (bench validate) and its preprocessing")
        if self.reference is None:
            return {"id_top1_err": 100.0 * float(np.mean(v["pred"] != v["target"]))}
        out = {}
        for s in self.scores:
            for k, value in ood_metrics(self.reference.values[s], v[s]).items():
                out[f"{s}_{k}@{self.set_name}"] = value
        return out

    def details(self) -> dict[str, Any]:
        """For the figure: per score, a histogram of this set's scores on bins shared with the
        in-distribution set, and the ROC curve."""
        from bench.metrics.ood import roc_points

        if self.reference is None:
            return {"count": int(len(self.values["index"]))}
        out: dict[str, Any] = {"count": int(len(self.values["index"]))}
        for s in self.scores:
            ins, outs = self.reference.values[s], self.values[s]
            lo, hi = float(min(ins.min(), outs.min())), float(max(ins.max(), outs.max()))
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
            out[s] = {"edges": edges.tolist(), "in": np.histogram(ins, edges)[0].tolist(), "out": np.histogram(outs, edges)[0].tolist(),
                      "roc": roc_points(ins, outs, 400)}
        return out

    def samples(self) -> list[dict[str, Any]]:
        v = self.values
        rows = []
        for j, i in enumerate(v["index"]):
            row = {"set": self.set_name, "index": int(i), "image": self.image_names[int(i)], "in_distribution": int(self.reference is None)}
            if self.reference is None:
                row.update(target=int(v["target"][j]), pred=int(v["pred"][j]), top1_wrong=int(v["pred"][j] != v["target"][j]))
            row.update({s: float(v[s][j]) for s in self.scores})
            rows.append(row)
        return rows


class OodTask(Task):
    """What both OOD tasks share: scores, ODIN's settings, the splits and their evaluators."""

    metrics = ood_metric_specs()
    seeded = False  # deterministic (the noise sets have their own seed setting)
    sample_key = ("set", "index")
    id_name = "in"

    def _score_settings(self) -> dict[str, Setting]:
        return {
            "scores": Setting("strs", "the OOD scores to compute (msp, max_logit and energy come from one forward pass; odin costs a backward and a second forward)",
                              choices=SCORES, nonempty=True),
            "odin.temperature": Setting("float", "ODIN's softmax temperature T", lo=0, lo_open=True),
            "odin.epsilon": Setting("float", f"ODIN's input step, in [0, 1] pixel units ({self.epsilon_source}; 0 = temperature scaling only)", lo=0, hi=1),
        }

    # ODIN's README tunes epsilon per model and in-distribution set: 0.0014 for DenseNet on CIFAR-10,
    # 0.0028 for DenseNet on CIFAR-100 (0.0028-0.0048 for Wide ResNet); it gives none for ImageNet
    odin_epsilon = 0.0014
    epsilon_source = "ODIN's README value for CIFAR-10; it lists none for ImageNet"

    def _score_defaults(self) -> dict[str, Any]:
        return {"scores": ["msp", "max_logit", "energy"], "odin": {"temperature": 1000.0, "epsilon": self.odin_epsilon}}

    def validate(self, config: dict[str, Any]) -> None:
        for key in ("scores", "ood_sets"):
            if len(set(config[key])) != len(config[key]):
                raise BenchError(f"{self.name} setting {key} names an item twice: {config[key]}", "list each once")

    def _splits(self, ctx: RunContext, in_set: tuple[Any, list[str]], ood_sets: list[tuple[str, Any, list[str]]]) -> list[Any]:
        """The in-distribution split, then one per OOD set; datasets yield (image, target, index)
        with uint8 (or float in [0, 255]) CHW images."""
        from bench.data.images import Normalizer
        from bench.evaluation import Split
        from bench.ood_scores import logit_scores, odin_score

        card = ctx.backbone.card
        model = ctx.backbone.model.to(ctx.device)
        normalize = Normalizer(card.preprocessing, ctx.device)
        scores = list(ctx.config["scores"])
        odin = "odin" in scores
        temperature, epsilon = ctx.config["odin"]["temperature"], ctx.config["odin"]["epsilon"]

        def forward(batch: Any) -> dict[str, torch.Tensor]:
            x = normalize(batch[0])
            if odin:
                logits, odin_scores = odin_score(model, x, normalize.std, temperature, epsilon)
                return {"logits": logits, "odin": odin_scores, **logit_scores(logits, scores)}
            logits = model(x)
            return {"logits": logits, **logit_scores(logits, scores)}

        reference = OodEvaluator(self.id_name, in_set[1], scores)
        splits = [Split(self.id_name, in_set[0], reference, forward=forward, model=model, grad=odin, details_key=self.id_name)]
        for name, dataset, names in ood_sets:
            splits.append(Split(name, dataset, OodEvaluator(name, names, scores, reference), forward=forward, model=model, grad=odin, details_key=name))
        return splits

    def _details(self, ctx: RunContext, sets: dict[str, Any]) -> dict[str, Any]:
        scores = ctx.config["scores"]
        return {"positive": "in-distribution (the paper's, ODIN's) unless a metric says otherwise", "cuts": CUTS,
                "conventions": CONVENTIONS, "scores": {s: DEFINITIONS[s] for s in scores},
                "odin": dict(ctx.config["odin"]) if "odin" in scores else None, "sets": sets}


class Cifar100Ood(OodTask):
    name = "cifar100_ood"
    # 1: CIFAR-100 test vs ODIN's five folders and two noise sets, card preprocessing, float64 scores
    # 2: ODIN's folders read as they are (32x32 or refused), ODIN's CIFAR-100 epsilon 0.0028, skip_first and preset=odin_code
    version = "2"
    odin_epsilon = 0.0028
    epsilon_source = "ODIN's README value for DenseNet on CIFAR-100"
    description = "OOD detection, CIFAR-100 test vs TinyImageNet/LSUN crop and resize, iSUN, uniform and Gaussian noise (paper Table 12)"
    datasets = ("cifar100", "ood")
    reported_key = "cifar100_ood"
    id_name = "cifar100"

    def default_config(self) -> dict[str, Any]:
        from bench.data.ood import CIFAR_OOD_SETS

        return {"ood_sets": list(CIFAR_OOD_SETS), "noise_count": 10000, "noise_seed": 0, "skip_first": 0, "preset": "default", **self._score_defaults()}

    def settings(self) -> dict[str, Setting]:
        from bench.data.ood import CIFAR_OOD_SETS

        return {"ood_sets": Setting("strs", "the OOD sets: ODIN's folders under <data root>/ood (Imagenet, Imagenet_resize, LSUN, LSUN_resize, iSUN) and generated noise",
                                    choices=CIFAR_OOD_SETS, nonempty=True),
                "noise_count": Setting("int", "images per noise set (ODIN: as many as the CIFAR test set, 10,000)", lo=1),
                "noise_seed": Setting("int", "seed of the noise images", lo=0),
                "skip_first": Setting("int", "images left out at the start of every set, in-distribution and OOD (ODIN's code keeps the first 1,000 for tuning "
                                      "and scores the other 9,000: preset=odin_code); 0 scores every image", lo=0),
                "preset": Setting("str", "odin_code: ODIN's released code at once (scores msp and odin, T 1000, epsilon 0.0028, skip_first 1000)",
                                  choices=("default", "odin_code")),
                **self._score_settings()}

    def preset(self, group: str, name: str) -> dict[str, Any]:
        if name == "default":
            return {}
        if name != "odin_code":
            raise BenchError(f"unknown cifar100_ood preset '{name}'", "use default or odin_code")
        return {"scores": ["msp", "odin"], "odin.temperature": 1000.0, "odin.epsilon": 0.0028, "skip_first": 1000}

    def _read(self, data: DataLocator, card: Any, config: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
        from bench.data.cifar import read_cifar100
        from bench.data.ood import ODIN_FOLDERS, ODIN_URL, read_ood_folder

        from tasks.cifar import require_cifar100

        require_cifar100(card, self.name)
        root = data.dir("cifar100")
        test = read_cifar100(root, "test")
        folders = []
        needs_folders = [s for s in config["ood_sets"] if s in ODIN_FOLDERS]
        ood_root = data.dir("ood") if needs_folders else None
        for name in needs_folders:
            folder = ODIN_FOLDERS[name][0]
            folders.append(read_ood_folder(ood_root, name, folder, hint=f"download and extract ODIN's {folder}.tar.gz into {ood_root} ({ODIN_URL})"))
        return root, test, folders

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint
        from bench.data.ood import NOISE, NOISE_DEFINITION, ODIN_FOLDERS

        root, test, folders = self._read(data, card, config)
        fp = Fingerprint().files("cifar100", root, test.files).values("labels", test.targets)
        summary = {"cifar100": f"{len(test.images)} test images, 100 classes"}
        n = len(test.images)
        for f in folders:
            fp.files(f.name, f.root, f.images)
            released = ODIN_FOLDERS[f.name][1]
            summary[f.name] = f"{len(f.images)} images" + ("" if len(f.images) == released else f" (the released set has {released})")
            n += len(f.images)
        noise = [s for s in config["ood_sets"] if s in NOISE]
        for s in noise:
            summary[s] = f"{config['noise_count']} generated, seed {config['noise_seed']}"
            n += config["noise_count"]
        fp.values("noise", [noise, config["noise_count"], config["noise_seed"], [NOISE_DEFINITION[s] for s in noise]])
        return DataCheck(summary, fp.hexdigest(), n)

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.cifar import ArrayImages, array_transform
        from bench.data.images import ImageList, eval_transform
        from bench.data.imagenet_c import SizedImages
        from bench.data.ood import NOISE_DEFINITION, NoiseImages

        card = ctx.backbone.card
        _, test, folders = self._read(ctx.data, card, ctx.config)
        by_name = {f.name: f for f in folders}
        crop = card.preprocessing.crop
        ood = []
        sets: dict[str, Any] = {}
        as_they_are = array_transform(card.preprocessing, (32, 32)) is None
        for name in ctx.config["ood_sets"]:
            if name in by_name:
                f = by_name[name]
                # ODIN reads its folders as they are (ToTensor only): a CIFAR card scores them unresized, and an image
                # that is not 32x32 is refused rather than rescaled; a card that resizes CIFAR resizes these alike
                images = (SizedImages(f.images, [-1] * len(f.images), 32, f"OOD set {name}") if as_they_are
                          else ImageList(f.images, [-1] * len(f.images), eval_transform(card.preprocessing)))
                ood.append((name, images, [str(p.relative_to(f.root)) for p in f.images]))
                sets[name] = {"folder": str(f.root), "images": len(f.images)}
            else:
                n = ctx.config["noise_count"]
                ood.append((name, NoiseImages(name, n, crop, ctx.config["noise_seed"]), [f"{name}_{i:05d}" for i in range(n)]))
                sets[name] = {"generated": NOISE_DEFINITION[name], "images": n, "size": crop, "seed": ctx.config["noise_seed"]}
        in_set = (ArrayImages(test.images, test.targets, array_transform(card.preprocessing, (32, 32))), test.names)
        skip = ctx.config["skip_first"]
        if skip:  # ODIN's code: the first `skip` images of every set are left out (its tuning images)
            for name, dataset in [(self.id_name, in_set[0])] + [(n, d) for n, d, _ in ood]:
                if len(dataset) <= skip:
                    raise BenchError(f"skip_first={skip} leaves no image of {name} ({len(dataset)} images)", "lower --set skip_first")
            in_set = (torch.utils.data.Subset(in_set[0], range(skip, len(in_set[0]))), in_set[1])
            ood = [(n, torch.utils.data.Subset(d, range(skip, len(d))), names) for n, d, names in ood]
        details = self._details(ctx, sets)
        details["skipped_per_set"] = skip
        return Plan(self._splits(ctx, in_set, ood), counts="sum", details=details)


class ImageNetOod(OodTask):
    name = "imagenet_ood"
    metrics = ood_metric_specs("ImageNet OOD", "ImageNet OOD per set")  # not in the paper, whose Table 12 is CIFAR-100's
    # 1: ImageNet val vs image folders under <data root>/ood, card's eval preprocessing, float64 scores
    version = "1"
    description = "OOD detection, ImageNet val vs the image folders you name (e.g. iNaturalist, SUN, Places, Textures)"
    datasets = ("imagenet", "ood")
    id_name = "imagenet"

    def default_config(self) -> dict[str, Any]:
        return {"ood_sets": [], **self._score_defaults()}

    def settings(self) -> dict[str, Setting]:
        return {"ood_sets": Setting("strs", "the OOD sets, each a folder of images under <data root>/ood/ (searched recursively); empty: every folder there except ODIN's CIFAR sets"),
                **self._score_settings()}

    def _read(self, data: DataLocator, card: Any, config: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
        from bench.data.imagenet import read_imagenet_val
        from bench.data.ood import ODIN_FOLDERS, read_ood_folder

        root = data.dir("imagenet")
        val = read_imagenet_val(root, card.num_classes)
        ood_root = data.dir("ood")
        names = list(config["ood_sets"])
        if not names:
            cifar = {folder for folder, _ in ODIN_FOLDERS.values()}
            names = sorted(p.name for p in ood_root.iterdir() if p.is_dir() and p.name not in cifar)
            if not names:
                raise BenchError(f"no OOD sets: {ood_root} has no image folders", f"put each OOD set in its own folder under {ood_root}, or name them with --set ood_sets=[...]")
        return root, val, [read_ood_folder(ood_root, n) for n in names]

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        root, val, folders = self._read(data, card, config)
        fp = Fingerprint().files("val", root, val.images).values("labels", [val.targets, val.classes])
        summary = {"imagenet": f"{len(val.images)} val images, {len(val.classes)} classes ({val.layout})"}
        for f in folders:
            fp.files(f.name, f.root, f.images)
            summary[f.name] = f"{len(f.images)} images"
        return DataCheck(summary, fp.hexdigest(), len(val.images) + sum(len(f.images) for f in folders))

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import ImageList, eval_transform

        card = ctx.backbone.card
        _, val, folders = self._read(ctx.data, card, ctx.config)
        transform = eval_transform(card.preprocessing)
        ood = [(f.name, ImageList(f.images, [-1] * len(f.images), transform), [str(p.relative_to(f.root)) for p in f.images]) for f in folders]
        in_set = (ImageList(val.images, val.targets, transform), [p.name for p in val.images])
        sets = {f.name: {"folder": str(f.root), "images": len(f.images)} for f in folders}
        return Plan(self._splits(ctx, in_set, ood), counts="sum", details=self._details(ctx, sets))
