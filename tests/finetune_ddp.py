"""Fine-tune a small BatchNorm-free classifier with bench.finetune, in one process or under
torchrun, and save the result: the two must take the same optimizer steps and reach the same
weights (the global batch is split over the ranks; BN-free, so per-process statistics do not enter).

    python tests/finetune_ddp.py OUT.pt          (or under torchrun --nproc_per_node 2)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn


class Plain(nn.Module):
    """conv -> relu -> conv (layer4) -> global average pool -> fc, no BatchNorm."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.layer4 = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(self.layer4(self.conv1(x)).mean((2, 3)))


class Fixed(torch.utils.data.Dataset):
    """24 deterministic uint8 images (no augmentation, so every process sees the same pixels)."""

    def __init__(self, n: int = 24):
        gen = torch.Generator().manual_seed(1)
        self.images = torch.randint(0, 256, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
        self.targets = torch.randint(0, 4, (n,), generator=gen)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i]), i


def main(out: Path) -> None:
    from bench.evaluation import init_distributed, world
    from bench.finetune import FinetuneConfig, finetune

    init_distributed("cpu")
    rank, size = world()
    model = Plain()
    cfg = FinetuneConfig(epochs=2, batch_size=8, lr_head=0.1, lr_body=0.05, step=1)
    info = finetune(model, "fc", Fixed(), cfg, out.parent / f"stage-{size}", "cpu", lambda x: x.float() / 255, seed=0, progress=False, rank=rank, world_size=size)
    if rank == 0:
        torch.save(model.state_dict(), out)
        out.with_suffix(".json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
