"""Evaluators (reset / process / evaluate) and the inference loop they are fed by.

Evaluators accumulate per batch, gather across ranks once at the end and return a flat dict.
Under torchrun each rank scores a strided shard of the dataset (no padding, so no duplicates);
the same code runs in one process.
"""

from __future__ import annotations

import os
import time
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
    def reset(self) -> None:
        raise NotImplementedError

    def process(self, outputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError


def run_inference(
    model: torch.nn.Module,
    loader: Any,
    device: str,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    evaluator: Evaluator,
    progress: bool = True,
    desc: str = "eval",
) -> tuple[dict[str, float], dict[str, float]]:
    """Eval mode, no grad, batches to the device, `prepare` (e.g. normalise), forward, evaluator.

    Returns the evaluator's metrics and this rank's timing.
    """
    from tqdm import tqdm

    model.eval()
    evaluator.reset()
    start = time.perf_counter()
    images = 0
    with torch.inference_mode():
        for batch, targets, indices in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            batch = prepare(batch.to(device, non_blocking=True))
            evaluator.process(model(batch), targets, indices)
            images += len(targets)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    timing = {"seconds": seconds, "images": images, "images_per_s": images / seconds if seconds else 0.0}
    return evaluator.evaluate(), timing
