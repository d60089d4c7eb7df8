"""Fine-tuning a backbone's classifier on a downstream dataset, as a cached, resumable stage.

The WSOL tasks (and later others) fine-tune the whole network with a new head: SGD with
momentum, one learning rate for the head and another for the rest, decayed by `gamma` every
`step` epochs. The state (model, optimiser, schedule, RNG) is written atomically after every
epoch into the stage folder, so Ctrl-C or a crash resumes from the last whole epoch, and the
finished weights are reused by every later run with the same settings. Under torchrun the
model is wrapped in DistributedDataParallel; `batch_size` is the global batch, split evenly over
the ranks (each global batch is the one a single process would take, so the learning rate means
the same at any world size); rank 0 writes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from bench.errors import BenchError


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int
    batch_size: int
    lr_head: float
    lr_body: float
    step: int  # epochs between decays
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def check(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.step < 1:
            raise BenchError(f"fine-tuning settings make no sense: epochs {self.epochs}, batch {self.batch_size}, step {self.step}", "epochs >= 0, batch >= 1, step >= 1")
        if self.lr_head <= 0 or self.lr_body < 0:
            raise BenchError(f"fine-tuning learning rates must be positive (head {self.lr_head}, body {self.lr_body})", "e.g. --set lr_head=0.01 --set lr_body=0.001")


RECIPES = ("paper", "wsolevaluation")


def optimizer_for(model: torch.nn.Module, fast: tuple[str, ...], cfg: FinetuneConfig, recipe: str = "paper") -> tuple[torch.optim.Optimizer, Any]:
    """SGD and its schedule. `fast` names the modules trained at lr_head (the rest at lr_body).

    - paper (CutMix App. B): the new head fast, momentum SGD, x gamma after every `step` epochs;
    - wsolevaluation (its main.py for ResNet): pass layer4 and the head as `fast`, Nesterov
      momentum, x gamma before every epoch whose 1-based number is a multiple of `step` (one epoch
      earlier than the paper's)."""
    if recipe not in RECIPES:
        raise BenchError(f"unknown fine-tuning recipe '{recipe}'", f"use {' or '.join(RECIPES)}")
    is_fast = lambda name: any(name.startswith(prefix + ".") for prefix in fast)
    opt = torch.optim.SGD(
        [{"params": [p for n, p in model.named_parameters() if is_fast(n)], "lr": cfg.lr_head},
         {"params": [p for n, p in model.named_parameters() if not is_fast(n)], "lr": cfg.lr_body}],
        momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=recipe == "wsolevaluation",
    )
    if recipe == "paper":
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step, gamma=cfg.gamma)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: cfg.gamma ** ((epoch + 1) // cfg.step))


def save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".part-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def lock_stage(stage_dir: Path, what: str) -> Any:
    """An exclusive, non-blocking lock on a training stage's folder (close it when done); one line
    naming the holder when another process trains the same stage."""
    import fcntl

    stage_dir.mkdir(parents=True, exist_ok=True)
    handle = open(stage_dir / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise BenchError(f"another bench process (pid {holder}) is training {what} in {stage_dir}", "wait for it to finish; running again then reuses what it trained") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def finetune(
    model: torch.nn.Module,
    head: str,
    dataset: torch.utils.data.Dataset,
    cfg: FinetuneConfig,
    stage_dir: Path,
    device: str,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    recipe: str = "paper",
    fast: tuple[str, ...] | None = None,
    log: bool = False,
) -> dict[str, Any]:
    """Train `model` in place (or load the finished stage); returns what the record keeps.

    `dataset` yields (uint8 image, target, index); `prepare` normalises a batch on the device.
    `fast`: the modules trained at lr_head (default: the head alone); `recipe`: see optimizer_for.
    `progress`: a bar; `log`: the stage's size, a time estimate and steady lines (bench.progress).
    """
    from bench.progress import StageProgress

    if cfg.batch_size % world_size:
        raise BenchError(f"batch_size {cfg.batch_size} does not split over {world_size} processes", f"use a multiple of {world_size} (batch_size is the global batch)")
    per_rank = cfg.batch_size // world_size
    final = stage_dir / "finetuned.pt"
    if final.is_file():
        done = torch.load(final, map_location="cpu", weights_only=True)
        model.load_state_dict(done["model"])
        return {**json.loads((stage_dir / "finetuned.json").read_text()), "cached": True, "stage_dir": str(stage_dir)}
    model.to(device)
    opt, sched = optimizer_for(model, fast or (head,), cfg, recipe)
    state_path = stage_dir / "state.pt"
    start, history = 0, []
    if state_path.is_file():  # an interrupted run of the same stage: resume after its last whole epoch
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]), list(state["history"])
    from bench.evaluation import data_parallel

    net = data_parallel(model, device, world_size)
    started = time.perf_counter()
    usable = len(dataset) - len(dataset) % world_size
    per_epoch = -(-usable // cfg.batch_size)
    size = (f"{cfg.epochs} epochs x {per_epoch} steps = {cfg.epochs * per_epoch} steps of batch {cfg.batch_size} "
            f"on {len(dataset)} training images ({cfg.epochs * usable} images)")
    bar = StageProgress("fine-tune", cfg.epochs * per_epoch, start * per_epoch, "step", size, progress, log)
    steps = 0
    for epoch in range(start, cfg.epochs):
        # the order depends only on (seed, epoch), so a resumed run sees the same batches
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(dataset), generator=gen).tolist()[:usable]
        # every rank takes as many samples (DDP needs the same number of steps on each rank): up to
        # world_size - 1 samples sit out each epoch, different ones each time. Each global batch of
        # batch_size is split evenly, so DDP's mean of the ranks' gradients is the global batch's.
        mine = [i for k in range(0, usable, cfg.batch_size) for i in order[k:k + cfg.batch_size][rank::world_size]]
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(dataset, mine), batch_size=per_rank, shuffle=False, num_workers=workers,
            generator=gen, pin_memory=device.startswith("cuda"),
        )
        torch.manual_seed(seed * 100_003 + epoch)  # augmentation draws in the main process
        net.train()
        total, seen = 0.0, 0
        for images, targets, _ in loader:
            images, targets = prepare(images.to(device, non_blocking=True)), targets.to(device)
            loss = F.cross_entropy(net(images), targets)
            if not torch.isfinite(loss):
                raise BenchError(f"fine-tuning diverged at epoch {epoch + 1} (loss {float(loss)})", "lower --set lr_head / lr_body")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            total += float(loss.detach()) * len(targets)
            seen += len(targets)
            bar.update(epoch=epoch + 1, loss=f"{total / seen:.3f}")
        sched.step()
        history.append(round(total / max(seen, 1), 5))
        if rank == 0:
            save_atomic({"epoch": epoch + 1, "history": history, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, state_path)
        _barrier()
    bar.close()
    model.eval()
    info = {"epochs": cfg.epochs, "config": asdict(cfg), "train_loss": history, "resumed_from_epoch": start,
            "seconds": round(time.perf_counter() - started, 1), "train_images": len(dataset), "world_size": world_size,
            "per_process_batch": per_rank, "steps_per_epoch": per_epoch, "steps_this_run": steps}
    if rank == 0:
        (stage_dir / "finetuned.json").write_text(json.dumps(info))
        save_atomic({"model": model.state_dict()}, final)  # last: its presence marks the stage done
        state_path.unlink(missing_ok=True)
    _barrier()
    return {**info, "cached": False, "stage_dir": str(stage_dir)}
