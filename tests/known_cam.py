"""A classifier whose CAMs are known by construction, for end-to-end WSOL tests that must score
both hits and misses (a fine-tuned toy model's CAMs miss everything, and 0 == 0 proves nothing).

`layer4` gives three 8x-pooled channels: ink (how much brighter than the dark canvas a pixel is:
the digit lights up, thin distractor strokes a little), a fixed blob in the top-left corner, and
a constant. `fc` weighs classes 0-4 by ink and classes 5-9 by the corner blob, so the CAM of the
true class hits for an ink class and mostly misses for a corner class; its biases make the
prediction 0 or 5 depending on the image's ink, so the predicted class is often not the true one
and top-1 Loc needs the predicted class's CAM.
"""

from __future__ import annotations

import torch
from torch import nn

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class KnownFeatures(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = (x * STD + MEAN).mean(1, keepdim=True)  # undo the card's (ImageNet) normalisation
        ink = nn.functional.avg_pool2d(torch.relu(gray - 0.5), 8)
        h, w = ink.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        corner = torch.exp(-(ys**2 + xs**2) / 4.0).expand_as(ink)
        return torch.cat([ink, corner, torch.ones_like(ink)], 1)


class KnownCamNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.layer4 = KnownFeatures()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(x).mean((2, 3)))


def known_cam_net(num_classes: int = 10) -> KnownCamNet:
    net = KnownCamNet(num_classes)
    set_known_head(net.fc)
    return net.eval()


@torch.no_grad()
def set_known_head(fc: nn.Linear) -> None:
    fc.weight.zero_()
    fc.bias.fill_(-10.0)
    fc.weight[:5, 0] = 1.0
    fc.weight[5:, 1] = 1.0
    # the bias breaks ties: class 0 among the ink classes, 5 among the corner ones; the corner
    # channel's mean is a constant 0.0807 and a scene's mean ink is about 0.004-0.025, so the
    # image's ink decides between 0 (more than 0.0105) and 5
    fc.bias[:5] = -0.01
    fc.bias[0] = 0.0
    fc.bias[5:] = -0.0805
    fc.bias[5] = -0.0702
