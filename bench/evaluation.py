"""Evaluators (reset / process / evaluate) and the inference loop they are fed by.

Evaluators accumulate per batch, gather across ranks once at the end and return a flat dict.
Under torchrun each rank scores a strided shard of the dataset (no padding, so no duplicates);
the same code runs in one process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: str) -> None:
    rank, size = world()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def data_parallel(model: torch.nn.Module, device: str, world_size: int) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel under torchrun, itself in one process."""
    if world_size <= 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)


def shard(indices: Sequence[int], rank: int, size: int) -> list[int]:
    return list(indices)[rank::size]


def gather(obj: Any) -> list[Any]:
    """Every rank's object, in rank order (just [obj] in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank src's object on every rank (obj itself in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class Evaluator:
    """reset / process(batch, outputs) / evaluate, for inputs and outputs of any structure.

    An evaluator keeps this process's results; `evaluate` gathers every rank's `state()` in one
    place, hands them to `merge` (in rank order) and returns `metrics()`. `samples()` are the
    per-sample rows for the samples file and `details()` what else the record keeps."""

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, batch: Any, outputs: Any) -> None:
        raise NotImplementedError

    def state(self) -> Any:
        raise NotImplementedError

    def merge(self, states: list[Any]) -> None:
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        raise NotImplementedError

    def samples(self) -> list[dict[str, Any]]:
        return []

    def details(self) -> dict[str, Any]:
        return {}

    def evaluate(self) -> dict[str, float]:
        self.merge(gather(self.state()))
        return self.metrics()


class RowsEvaluator(Evaluator):
    """An evaluator that keeps one row per sample, keyed by its dataset index (or id): every
    rank's rows are united before `metrics`."""

    def reset(self) -> None:
        self.rows: dict[Any, Any] = {}

    def state(self) -> Any:
        return self.rows

    def merge(self, states: list[Any]) -> None:
        for part in states:
            self.rows.update(part)


@dataclass
class Split:
    """One scored pass over a dataset: item i -> whatever `forward` and the evaluator expect
    (batched by `collate`, torch's default unless given); `forward(batch)` calls the model on a
    batch already on the device. `grad`: run with autograd on (input gradients, Grad-CAM);
    otherwise under inference_mode. `prefix` goes before its metric names (voc_det's frcnn_), and
    its evaluator's details go under `details_key` (None: at the top of the record's details)."""

    name: str
    dataset: Any
    evaluator: Evaluator
    forward: Callable[[Any], Any]
    model: Any = None  # put in eval mode by the runner
    grad: bool = False
    collate: Callable[[list[Any]], Any] | None = None
    prefix: str = ""
    details_key: str | None = None
    counted: bool = True  # its sample counts are the record's n_samples (False: a side split, e.g. imagenet_c's clean pass)


def to_device(obj: Any, device: str) -> Any:
    """Every tensor in a nested batch (tuples, lists, dicts) on the device."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def evaluate_split(split: Split, ctx: Any, desc: str) -> tuple[dict[str, float], dict[str, float], int, int]:
    """The loop every task shares: --limit's evenly spaced samples, this rank's shard, batches on
    the device, eval mode, inference_mode (or autograd on), progress, the evaluator, the gather.
    Returns (metrics, timing of data / compute / metric in seconds, samples in the split, samples scored)."""
    from tqdm import tqdm

    from bench.task import limited_indices

    n_total = len(split.dataset)
    chosen = limited_indices(n_total, ctx.limit)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(split.dataset, shard(chosen, ctx.rank, ctx.world_size)), batch_size=max(1, ctx.batch_size),
        num_workers=ctx.workers, shuffle=False, collate_fn=split.collate, pin_memory=ctx.device.startswith("cuda"),
    )
    if split.model is not None:
        split.model.eval()
    split.evaluator.reset()
    timing = {"data_s": 0.0, "compute_s": 0.0, "metric_s": 0.0}
    mode = torch.enable_grad() if split.grad else torch.inference_mode()
    tick = time.perf_counter()
    with mode:
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not ctx.progress, leave=False):
            batch = to_device(batch, ctx.device)
            loaded = time.perf_counter()
            outputs = split.forward(batch)
            _sync(ctx.device)
            computed = time.perf_counter()
            split.evaluator.process(batch, outputs)
            scored = time.perf_counter()
            timing["data_s"] += loaded - tick
            timing["compute_s"] += computed - loaded
            timing["metric_s"] += scored - computed
            tick = scored
    start = time.perf_counter()
    metrics = split.evaluator.evaluate()
    timing["metric_s"] += time.perf_counter() - start
    return metrics, {k: round(v, 4) for k, v in timing.items()}, n_total, len(chosen)


def run_plan(task: Any, plan: Any, ctx: Any) -> Any:
    """Every split of a task's plan through `evaluate_split`, then one TaskResult: metrics in the
    order the task declares them (each must match one of its MetricSpecs; declared aggregations
    are computed here), the splits' samples one after the other, the plan's details with each
    evaluator's, and the timing per split."""
    import numpy as np

    from bench.errors import BenchError
    from bench.task import TaskResult, name_matches

    emitted: dict[str, float] = {}
    samples: list[dict[str, Any]] = []
    details: dict[str, Any] = dict(plan.details)
    timing: dict[str, Any] = {}
    counts: tuple[int, int] | None = None
    try:
        for split in plan.splits:
            metrics, timing[split.name], n_total, n_scored = evaluate_split(split, ctx, f"{ctx.backbone.card.name} {task.name} {split.name}")
            if split.counted:
                if counts is not None and plan.counts == "sum":
                    counts = (counts[0] + n_total, counts[1] + n_scored)
                else:
                    counts = counts or (n_total, n_scored)
            emitted.update({split.prefix + k: v for k, v in metrics.items()})
            samples += [{"split": split.name, **row} for row in split.evaluator.samples()]  # rows say which split they score
            extra = split.evaluator.details()
            if split.details_key is None:
                details.update(extra)
            elif extra or split.details_key not in details:
                details[split.details_key] = {**details.get(split.details_key, {}), **extra}
    finally:
        for close in plan.cleanup:
            close()
    for spec in (s for s in task.metrics if s.aggregate is not None):  # derived metrics, e.g. maxboxacc_v2 = mean of maxboxacc@{iou}
        how, pattern = spec.aggregate
        members = [v for k, v in emitted.items() if name_matches(pattern, k)]
        if members and how == "mean":
            emitted[spec.name] = float(np.mean(members))
    ordered: dict[str, float] = {}
    for spec in task.metrics:  # the declared order; a family's members in the order emitted
        ordered.update({k: v for k, v in emitted.items() if k not in ordered and (k == spec.name or spec.matches(k))})
    undeclared = [k for k in emitted if k not in ordered]
    if undeclared:
        raise BenchError(f"task {task.name} emitted metric(s) {', '.join(undeclared)} that none of its MetricSpecs declares", "report this as a bench bug")
    details["timing"] = timing
    assert counts is not None, "a plan needs at least one counted split"
    return TaskResult(ordered, counts[0], counts[1], samples or None, details)
