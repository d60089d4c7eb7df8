"""ImageNet-C: top-1 error per corruption x severity, CE and mCE normalised by AlexNet, relative
mCE, the extra corruptions apart, and calibration under corruption.

Every requested (corruption, severity) folder is one part of a single dataset read by one loader.
Images are scored as they are (already the crop size), with the card's normalisation only. The
source is the released ImageNet-C (default) or ImageNet val corrupted by bench
(`--set source=generated`, bench.data.corruption_cache); the record says which. Relative mCE
needs the clean error of the same checkpoint: by default (`clean=auto`) the stored complete
`imagenet_cls` record's top-1 error, else ImageNet val scored in the same run when it is on disk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.data.imagenet_c import ALL_CORRUPTIONS
from bench.errors import BenchError
from bench.evaluation import Evaluator
from bench.metrics.corruption import CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES
from bench.settings import Setting
from bench.task import DataCheck, DataLocator, MetricSpec, Stat, Plan, RunContext, Task
from tasks.classification import CLEAN_SETTING_HELP


class CorruptionEvaluator(Evaluator):
    """Batches (images, targets, indices); outputs logits. Keeps per image its top-1 class, its
    confidence and the true class's log-probability; metrics per cell and the summaries."""

    def __init__(self, cells: list[tuple[str, int]], cell_of: list[int], clean_error: Any = None, sources: list[str] | None = None):
        self.cells, self.cell_of = cells, np.asarray(cell_of)
        self.sources = sources  # per item, its source image (class/file within its cell): bench check resamples source images
        self.clean_error = clean_error  # () -> clean top-1 error in percent, or None

    def reset(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def process(self, batch: Any, outputs: torch.Tensor) -> None:
        _, targets, indices = batch
        log_probs = torch.log_softmax(outputs.double(), dim=1)
        conf, pred = log_probs.max(1)
        true_logp = log_probs.gather(1, targets.view(-1, 1).to(log_probs.device)).view(-1)
        self.parts.append(tuple(a.cpu().numpy() for a in (indices, targets, pred, conf.exp(), true_logp)))

    def state(self) -> Any:
        return tuple(np.concatenate([p[k] for p in self.parts]) for k in range(5)) if self.parts else tuple(np.zeros(0) for _ in range(5))

    def merge(self, states: list[Any]) -> None:
        index = np.concatenate([s[0] for s in states]).astype(np.int64)
        order = np.argsort(index, kind="stable")
        self.index = index[order]
        self.target, self.pred, self.conf, self.true_logp = (np.concatenate([s[k] for s in states])[order] for k in range(1, 5))

    def metrics(self) -> dict[str, float]:
        from bench.metrics.calibration import expected_calibration_error, reliability
        from bench.metrics.corruption import corruption_metrics

        correct = self.pred == self.target
        cell = self.cell_of[self.index]
        errors: dict[str, dict[int, float]] = {}
        out: dict[str, float] = {}
        for k, (c, s) in enumerate(self.cells):
            here = cell == k
            if here.any():
                errors.setdefault(c, {})[s] = 100.0 * float(1 - correct[here].mean())
        clean = self.clean_error() if self.clean_error else None
        summary = corruption_metrics(errors, clean, partial=True)
        for key, name in (("mce", "mce"), ("relative_mce", "relative_mce"), ("mean_error_15", "mean_err"), ("extra_mean_error", "extra_err")):
            if key in summary:
                out[name] = summary[key]
        if clean is not None:
            out["clean_err"] = clean
        out.update({f"ce@{c}": v for c, v in summary["ce"].items()})
        out.update({f"rel_ce@{c}": v for c, v in summary.get("relative_ce", {}).items()})
        out.update({f"err@{c}": v for c, v in summary["mean_error"].items()})
        out.update({f"err@{c}-{s}": v for c, by in errors.items() for s, v in by.items()})
        out["ece"] = expected_calibration_error(self.conf, correct)
        out["nll"] = float(-self.true_logp.mean())
        self.found = {"errors": errors, "reliability": reliability(self.conf, correct)}
        return out

    def details(self) -> dict[str, Any]:
        return {"errors": self.found["errors"], "reliability": self.found["reliability"]}

    def samples(self) -> list[dict[str, Any]]:
        return [{"index": int(i), "corruption": self.cells[self.cell_of[i]][0], "severity": self.cells[self.cell_of[i]][1], "target": int(t), "pred": int(p),
                 "wrong": int(p != t), **({"source": self.sources[i]} if self.sources else {})}
                for i, t, p in zip(self.index, self.target, self.pred)]


class ImageNetC(Task):
    name = "imagenet_c"
    # 1: released or generated ImageNet-C, no resize or crop, AlexNet-normalised CE (augmix's constants), ECE/NLL over all images
    version = "1"
    description = "ImageNet-C top-1 error per corruption x severity, mCE and relative mCE (AlexNet-normalised), ECE"
    datasets = ("imagenet_c",)
    seeded = False  # released: deterministic; generated: its own corruption_seed setting
    metrics = (
        MetricSpec("mce", False, description="mean over the 15 benchmark corruptions of CE = sum over severities 1-5 of the top-1 error / AlexNet's (augmix's ALEXNET_ERR); extras excluded",
                   tables=("ImageNet-C: mCE",), headline=True, stat=Stat("mce", "wrong,source,corruption,severity", (("split", "corrupted"),), cluster="source")),
        MetricSpec("relative_mce", False, description="mean over the 15 of (error - clean error) / (AlexNet error - AlexNet clean error 43.478, torchvision's AlexNet)",
                   tables=("ImageNet-C: relative mCE",), stat=Stat("relative_mce", "wrong,source,corruption,severity", (("split", "corrupted"),), cluster="source")),
        MetricSpec("mean_err", False, description="top-1 error averaged over the 15 benchmark corruptions x 5 severities, unnormalised", stat=Stat("mean_err_15", "wrong,source,corruption,severity", (("split", "corrupted"),), cluster="source")),
        MetricSpec("extra_err", False, description="mean top-1 error over the extra corruptions (speckle_noise, gaussian_blur, spatter, saturate), never in mCE"),
        MetricSpec("clean_err", False, description="the clean top-1 error used by relative mCE (stored imagenet_cls record or scored in the run)"),
        MetricSpec("ece", False, description="expected calibration error over every corrupted image, 15 equal-width bins", tables=("calibration: ImageNet-C ECE",)),
        MetricSpec("nll", False, unit="nats", description="mean negative log-likelihood of the true class over every corrupted image", tables=("calibration: ImageNet-C NLL",)),
        MetricSpec("ce@{corruption}", False, description="corruption error: mean error over severities 1-5 / AlexNet's, percent", tables=("ImageNet-C: CE {corruption}",), detail=True),
        MetricSpec("rel_ce@{corruption}", False, description="relative corruption error, percent", detail=True),
        MetricSpec("err@{corruption}", False, description="top-1 error averaged over severities 1-5", detail=True),
        MetricSpec("err@{corruption}-{severity}", False, description="top-1 error at one corruption and severity", detail=True),
        MetricSpec("clean_top1_err", False, description="top-1 error on ImageNet val (the card's preprocessing), when scored in this run", stat=Stat("proportion", "top1_wrong", (("split", "clean"),))),
        MetricSpec("clean_top5_err", False, description="top-5 error on ImageNet val, when scored in this run", stat=Stat("proportion", "top5_wrong", (("split", "clean"),))),
        MetricSpec("clean_ece", False, description="ECE on ImageNet val, when scored in this run", stat=Stat("ece", "confidence,top1_wrong", (("split", "clean"),))),
        MetricSpec("clean_nll", False, unit="nats", description="NLL on ImageNet val, when scored in this run", stat=Stat("mean", "nll", (("split", "clean"),), scale=1.0)),
    )

    def default_config(self) -> dict[str, Any]:
        return {"source": "released", "corruptions": list(ALL_CORRUPTIONS), "severities": list(SEVERITIES), "clean": "auto", "corruption_seed": 0}

    def settings(self) -> dict[str, Setting]:
        return {
            "source": Setting("str", "released: ImageNet-C from disk; generated: ImageNet val corrupted by imagecorruptions-imaug, cached under $BENCH_CACHE",
                              choices=("released", "generated")),
            "corruptions": Setting("strs", "which corruptions to score (mCE needs the 15 benchmark ones; the 4 extras are reported apart)", choices=ALL_CORRUPTIONS, nonempty=True),
            "severities": Setting("ints", "which severities (CE and mCE need all five)", choices=SEVERITIES, nonempty=True),
            "clean": Setting("str", CLEAN_SETTING_HELP + " (relative mCE needs it)", choices=("auto", "run", "none")),
            "corruption_seed": Setting("int", "seed of the generated corruptions' random draws (source=generated only)", lo=0),
        }

    def validate(self, config: dict[str, Any]) -> None:
        for key in ("corruptions", "severities"):
            if len(set(config[key])) != len(config[key]):
                raise BenchError(f"imagenet_c setting {key} names an item twice: {config[key]}", "list each once")

    def _pipeline(self, card: Any) -> dict[str, Any]:
        prep = card.preprocessing
        return {"resize": prep.resize, "crop": prep.crop, "interpolation": prep.interpolation}

    def _read(self, data: DataLocator, card: Any, config: dict[str, Any], build: bool = False, ctx: RunContext | None = None) -> tuple[Any, str, dict[str, Any]]:
        """The ImageNet-C listing, its fingerprint and what the record says about its source."""
        from bench.data.fingerprint import Fingerprint
        from bench.data.imagenet_c import MANIFEST, MINI_MARKER, locate, read_imagenet_c, summarize_imagenet_c

        cells = [(c, s) for c in config["corruptions"] for s in config["severities"]]
        if config["source"] == "released":
            root = data.dir("imagenet_c")
            generated = next((m for folder in locate(root)[0].values() for m in folder.glob(f"*/{MANIFEST}")), None)
            if generated is not None:  # before any other check: a generated cache is never scored as the released files
                raise BenchError(f"{root} holds ImageNet-C generated by bench ({generated.parent} has a generator manifest), not the released files",
                                 "score it with --set source=generated, or point --data-path imagenet_c at the released ImageNet-C")
            about = {"source": "released", "root": str(root)}
            if (root / MINI_MARKER).is_file():  # the released layout, but images bench generated for its mini benchmark
                about["origin"] = "mini"
            if not build:  # the data check: folder summaries from the tree index, not 4.75 million stats
                summary = summarize_imagenet_c(root, config["corruptions"], config["severities"], card.num_classes)
                return summary, summary.fingerprint, {**about, "layout": summary.layout}
            listing = read_imagenet_c(root, config["corruptions"], config["severities"], card.num_classes)
            return listing, "", {**about, "layout": listing.layout}
        from bench.data import corruption_cache as cache
        from bench.data.imagenet import read_imagenet_val

        version = cache.library_version()
        val_root = data.dir("imagenet")
        val = read_imagenet_val(val_root, card.num_classes)
        val_fp = Fingerprint().files("val", val_root, val.images).values("labels", [val.targets, val.classes]).hexdigest()
        pipeline = self._pipeline(card)
        cache.check_size(pipeline["crop"])
        root = cache.cache_root(val_fp, pipeline, config["corruption_seed"])
        fp = Fingerprint().values("generated", [val_fp, cache.LIBRARY, version, pipeline, config["corruption_seed"], cells]).hexdigest()
        about = {"source": "generated", "library": f"{cache.LIBRARY} {version}", "cache": str(root), "pipeline": {**pipeline, "jpeg_quality": cache.JPEG_QUALITY},
                 "corruption_seed": config["corruption_seed"]}
        if not build:
            return val, fp, about
        rel = [f"{val.classes[t]}/{p.stem}.JPEG" for p, t in zip(val.images, val.targets)]
        assert ctx is not None
        if ctx.rank == 0:
            about["generation"] = cache.generate(root, val.images, rel, cells, config["corruption_seed"], {**pipeline, "source": val_fp},
                                                 workers=max(ctx.workers, 0), progress=ctx.progress)
        if ctx.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        listing = read_imagenet_c(root, config["corruptions"], config["severities"], card.num_classes)
        for name, found in listing.manifests.items():
            cache.check_manifest(found, root / name)
        if len(listing.manifests) != len(cells):
            raise BenchError(f"generated ImageNet-C at {root} is incomplete", f"delete {root} and run again")
        return listing, fp, about

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        listing, fp, about = self._read(data, card, config)
        if about["source"] == "released":
            n = listing.n_images
            summary = f"{n} images, {len(listing.cells)} corruption x severity folders, {len(listing.classes)} classes ({listing.layout})"
        else:
            n = len(listing.images) * len(config["corruptions"]) * len(config["severities"])
            summary = f"generated from {len(listing.images)} ImageNet val images x {len(config['corruptions']) * len(config['severities'])} cells ({about['library']})"
        return DataCheck({"imagenet_c": summary}, fp, n)

    def plan(self, ctx: RunContext) -> Plan:
        from bench.data.images import Normalizer
        from bench.data.imagenet_c import SizedImages
        from bench.evaluation import Split
        from tasks.classification import clean_reference

        card = ctx.backbone.card
        listing, _, about = self._read(ctx.data, card, ctx.config, build=True, ctx=ctx)
        model = ctx.backbone.model.to(ctx.device)
        normalize = Normalizer(card.preprocessing, ctx.device)
        splits, clean_error, clean_source = clean_reference(ctx, model, normalize)
        evaluator = CorruptionEvaluator(listing.cells, listing.cell_of, clean_error, [f"{p.parent.name}/{p.name}" for p in listing.images])
        splits.append(Split("corrupted", SizedImages(listing.images, listing.targets, card.preprocessing.crop), evaluator,
                            forward=lambda batch: model(normalize(batch[0])), model=model))
        extras = [c for c in ctx.config["corruptions"] if c in EXTRA_CORRUPTIONS]
        missing = [c for c in CORRUPTIONS if c not in ctx.config["corruptions"]]
        notes = []
        if missing:
            notes.append(f"no mCE: {len(missing)} benchmark corruption(s) not scored ({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''})")
        if sorted(ctx.config["severities"]) != list(SEVERITIES):
            notes.append("no CE or mCE: not every severity scored")
        return Plan(splits, {**about, "clean": clean_source, "extra_corruptions": extras, "notes": notes,
                             "alexnet": "ALEXNET_ERR of google-research/augmix imagenet.py; clean 43.478 (torchvision AlexNet)"})
