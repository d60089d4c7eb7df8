"""PyramidNet for CIFAR (Han et al., 2017) with the module names of the CutMix-PyTorch release, so
its released CIFAR-100 PyramidNet-200 checkpoints (alpha 240, bottleneck) load strictly.

Pre-activation bottleneck blocks whose widths grow by alpha / (3n) per block, rounded with
Python's round() as the release does; a strided block's shortcut is a 2x2 average pool, and
wider outputs get zero channels appended to the shortcut. Three stages at 32, 16 and 8 pixels,
then BatchNorm, ReLU, an 8x8 average pool and the classifier `fc`: CAM's feature map is the
output of `relu_final`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn4 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn2(self.conv1(self.bn1(x))))
        out = self.relu(self.bn3(self.conv2(out)))
        out = self.bn4(self.conv3(out))
        shortcut = self.downsample(x) if self.downsample is not None else x
        extra = out.shape[1] - shortcut.shape[1]
        if extra:  # the widening: zero channels after the shortcut's
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, extra))
        return out + shortcut


class PyramidNet(nn.Module):
    """CIFAR PyramidNet with bottleneck blocks: depth 9n + 2, widening alpha."""

    def __init__(self, depth: int = 200, alpha: int = 240, num_classes: int = 100):
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"a bottleneck PyramidNet has depth 9n + 2, not {depth}")
        n = (depth - 2) // 9
        self.addrate = alpha / (3 * n)
        self.input_dim = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.featuremap_dim: float = 16
        self.layer1 = self._stage(n, 1)
        self.layer2 = self._stage(n, 2)
        self.layer3 = self._stage(n, 2)
        self.bn_final = nn.BatchNorm2d(self.input_dim)
        self.relu_final = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(self.input_dim, num_classes)
        for m in self.modules():  # the release's initialisation
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _stage(self, blocks: int, stride: int) -> nn.Sequential:
        downsample = nn.AvgPool2d((2, 2), stride=(2, 2), ceil_mode=True) if stride != 1 else None
        self.featuremap_dim += self.addrate
        layers = [Bottleneck(self.input_dim, int(round(self.featuremap_dim)), stride, downsample)]
        for _ in range(1, blocks):
            following = self.featuremap_dim + self.addrate
            layers.append(Bottleneck(int(round(self.featuremap_dim)) * Bottleneck.expansion, int(round(following)), 1))
            self.featuremap_dim = following
        self.input_dim = int(round(self.featuremap_dim)) * Bottleneck.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(self.relu_final(self.bn_final(x)))
        return self.fc(x.flatten(1))


def pyramidnet200(num_classes: int = 100) -> PyramidNet:
    """PyramidNet-200, alpha 240, bottleneck: the CutMix paper's CIFAR model (26.8M parameters)."""
    return PyramidNet(200, 240, num_classes)
