"""Training the mini backbone on in-memory scene tensors, saved in CutMix-PyTorch's checkpoint format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.cards import IMAGENET_MEAN, IMAGENET_STD
from bench.mini.model import mini_resnet


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), as the card's eval pipeline does."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def random_shift(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Pad-and-crop augmentation, one random offset per batch (cheap on 2 cores)."""
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    return padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def train_baseline(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int, batch_size: int = 128, progress: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """AdamW with a one-cycle schedule: a small ResNet learns these scenes in a few epochs on a CPU."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = mini_resnet(num_classes=int(labels.max()) + 1)
    x, y = to_tensor(images), torch.from_numpy(labels)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    model.train()
    bar = tqdm(total=steps, desc="train mini_baseline", unit="step", disable=not progress, leave=False)
    correct = seen = 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        correct = seen = 0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            out = model(random_shift(x[idx], gen))
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            correct += int((out.argmax(1) == y[idx]).sum())
            seen += len(idx)
            bar.update(1)
    bar.close()
    return model.eval(), {"epochs": epochs, "train_acc": 100.0 * correct / max(seen, 1)}


def save_official(model: torch.nn.Module, path: Path, epoch: int, arch: str = "resnet") -> None:
    """{'epoch','arch','state_dict' (module.-prefixed),'best_err1','best_err5','optimizer'}, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": epoch, "arch": arch, "state_dict": state, "best_err1": None, "best_err5": None, "optimizer": {}}, tmp)
    os.replace(tmp, path)
