"""Training a detector by iterations, resumable, data-parallel under torchrun.

- Schedule: SGD with momentum, linear warm-up, x`gamma` at each of `steps`; the learning rate
  is a pure function of the iteration, so a resumed run continues the same curve.
- Data: the order of each epoch depends only on (seed, epoch), and every sample's augmentation
  is seeded by (seed, iteration, index), so a resumed run sees the batches an uninterrupted
  one would (with any number of loader workers).
- Checkpoints: model and optimiser every `checkpoint_every` iterations, written atomically; a
  NaN or infinite loss stops the run with the last good checkpoint kept.
- One process at a time: the stage folder is locked while training; a second run naming the same
  stage stops with a message instead of writing over it.
- Under torchrun: DistributedDataParallel, `batch_size` is the total over ranks, rank 0 writes.
- AMP (bfloat16 autocast) on CUDA only when asked (`amp`): torchvision's box coder decodes in the
  codes' dtype, so under bf16 proposal coordinates round to 4 px at 512-1024 px. The record says
  which precision trained the detector.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from bench.errors import BenchError
from bench.finetune import lock_stage, save_atomic


@dataclass(frozen=True)
class Schedule:
    iterations: int
    batch_size: int  # total over all ranks
    lr: float
    steps: tuple[int, ...]
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    checkpoint_every: int = 1000
    bias_weight_decay: bool = True  # jwyang's faster-rcnn.pytorch: no weight decay on biases (BIAS_DECAY False)

    def check(self, world_size: int) -> None:
        if self.iterations < 1 or self.batch_size < 1 or self.lr <= 0 or self.checkpoint_every < 1:
            raise BenchError(f"detector schedule makes no sense: {self.iterations} iterations, batch {self.batch_size}, lr {self.lr}, checkpoint every {self.checkpoint_every}",
                             "iterations, batch_size, lr and checkpoint_every must be positive")
        if self.batch_size % world_size:
            raise BenchError(f"batch_size {self.batch_size} does not split over {world_size} processes", f"use a multiple of {world_size}")
        if list(self.steps) != sorted(self.steps):
            raise BenchError(f"lr steps {list(self.steps)} are not in increasing order", "e.g. --set steps=[80000,100000]")

    def lr_at(self, iteration: int) -> float:
        lr = self.lr * self.gamma ** sum(iteration >= s for s in self.steps)
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            lr *= self.warmup_factor * (1 - alpha) + alpha
        return lr


def batches(n: int, per_rank: int, seed: int, start: int, rank: int, world_size: int) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """(iteration, [(sample index, augmentation seed)]) from `start` on; every rank gets as many."""
    usable = (n // world_size) // per_rank * per_rank
    if usable == 0:
        raise BenchError(f"{n} training images are too few for {per_rank} per process", "lower --set batch_size")
    per_epoch = usable // per_rank
    iteration = start
    while True:
        epoch, offset = divmod(iteration, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
        mine = order[: usable * world_size][rank::world_size]
        for k in range(offset, per_epoch):
            chunk = mine[k * per_rank:(k + 1) * per_rank]
            yield iteration, [(i, (seed * 7_919 + iteration) * 100_003 + i) for i in chunk]
            iteration += 1


class _Samples(torch.utils.data.Dataset):
    """Indexed by (sample index, augmentation seed); the batch plan decides the order."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        return self.dataset.sample(*item)


def _plan(n: int, per_rank: int, seed: int, start: int, rank: int, world_size: int) -> Iterator[list[tuple[int, int]]]:
    for _, items in batches(n, per_rank, seed, start, rank, world_size):
        yield items


def param_groups(model: torch.nn.Module, sched: Schedule) -> list[dict[str, Any]]:
    """The trainable parameters; without bias_weight_decay the biases form a group without weight decay."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if sched.bias_weight_decay:
        return [{"params": [p for _, p in params]}]
    return [{"params": [p for n, p in params if not n.endswith(".bias")]}, {"params": [p for n, p in params if n.endswith(".bias")], "weight_decay": 0.0}]


def train_detector(
    model: torch.nn.Module,
    dataset: Any,  # .sample(index, seed) -> (image tensor, target dict); len()
    sched: Schedule,
    stage_dir: Path,
    device: str,
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    on_checkpoint: Callable[[int], None] | None = None,
    amp: bool = False,
    log: bool = False,  # the stage's size, a time estimate and steady lines on stderr (bench.progress)
) -> dict[str, Any]:
    """Train in place, or load the finished stage; returns what the record keeps."""
    from bench.evaluation import broadcast

    final = stage_dir / "detector.pt"
    if final.is_file():
        model.load_state_dict(torch.load(final, map_location="cpu", weights_only=True)["model"])
        return {**json.loads((stage_dir / "detector.json").read_text()), "cached": True, "stage_dir": str(stage_dir)}
    sched.check(world_size)
    lock, error = None, None
    if rank == 0:
        try:
            lock = lock_stage(stage_dir, "this detector")
        except BenchError as exc:
            error = (exc.message, exc.hint)
    error = broadcast(error)
    if error is not None:
        raise BenchError(*error)
    try:
        return _train(model, dataset, sched, stage_dir, device, seed, workers, progress, rank, world_size, on_checkpoint, amp, log)
    finally:
        if lock is not None:
            lock.close()


def _train(model: torch.nn.Module, dataset: Any, sched: Schedule, stage_dir: Path, device: str, seed: int, workers: int, progress: bool,
           rank: int, world_size: int, on_checkpoint: Callable[[int], None] | None, amp: bool, log: bool = False) -> dict[str, Any]:
    from bench.progress import StageProgress

    model.to(device)
    opt = torch.optim.SGD(param_groups(model, sched), lr=sched.lr, momentum=sched.momentum, weight_decay=sched.weight_decay)
    state_path = stage_dir / "state.pt"
    start, history = 0, []
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["iteration"]), list(state["history"])
    from bench.evaluation import data_parallel

    net = data_parallel(model, device, world_size)
    per_rank = sched.batch_size // world_size
    # loader workers prepare whole batches in parallel; the DataLoader hands them back in plan order
    loader = torch.utils.data.DataLoader(_Samples(dataset), batch_sampler=_plan(len(dataset), per_rank, seed, start, rank, world_size),
                                         num_workers=workers, collate_fn=lambda batch: batch, prefetch_factor=2 if workers else None)
    amp = amp and device.startswith("cuda")
    net.train()
    started = time.perf_counter()
    size = f"{sched.iterations} iterations of batch {sched.batch_size} ({sched.iterations * sched.batch_size} images) on {len(dataset)} training images"
    bar = StageProgress("train detector", sched.iterations, start, "iteration", size, progress, log)
    running, images_seen = 0.0, 0
    for iteration, items in enumerate(loader, start=start):
        if iteration >= sched.iterations:
            break
        for group in opt.param_groups:
            group["lr"] = sched.lr_at(iteration)
        images = [img.to(device, non_blocking=True) for img, _ in items]
        targets = [{k: v.to(device) for k, v in t.items()} for _, t in items]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            losses = net(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            kept = f"the last good checkpoint (iteration {start if not history else history[-1][0]}) is kept in {stage_dir}" if state_path.is_file() else "no checkpoint was written yet"
            raise BenchError(f"detector training diverged at iteration {iteration + 1}: loss {float(loss.detach())} ({', '.join(f'{k} {float(v.detach()):.3g}' for k, v in losses.items())}); {kept}",
                             "lower --set lr (or lengthen warmup_iters), then run again to resume from that checkpoint")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        running = 0.9 * running + 0.1 * value if iteration > start else value
        images_seen += len(images)
        bar.update(loss=f"{running:.3f}", lr=f"{sched.lr_at(iteration):.2g}")
        done = iteration + 1
        if done % sched.checkpoint_every == 0 or done == sched.iterations:
            history.append((done, round(running, 5)))
            if rank == 0:
                save_atomic({"iteration": done, "history": history, "model": model.state_dict(), "optimizer": opt.state_dict()}, state_path)
            if on_checkpoint is not None:
                on_checkpoint(done)
    bar.close()
    seconds = time.perf_counter() - started
    info = {"schedule": asdict(sched), "loss_history": history, "resumed_from_iteration": start, "seconds": round(seconds, 1),
            "train_images": len(dataset), "images_per_s": round(images_seen * world_size / seconds, 2) if seconds else None, "world_size": world_size,
            "precision": "bf16 autocast" if amp else "fp32"}
    if rank == 0:
        (stage_dir / "detector.json").write_text(json.dumps(info))
        save_atomic({"model": model.state_dict()}, stage_dir / "detector.pt")  # last: its presence marks the stage done
        state_path.unlink(missing_ok=True)
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
    model.eval()
    return {**info, "cached": False, "stage_dir": str(stage_dir)}
