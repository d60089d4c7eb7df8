"""The WSOL backbones of wsolevaluation (Choe et al., CVPR 2020) other than ResNet-50, built from
its definitions so that torchvision's ImageNet weights load into them (by name):

- `vgg16_gap` (VGG-GAP, the paper's Table 9 VGG rows): VGG-16's thirteen convolutions with the
  first four max-pools and without the last pool and the FC layers (a 14x14 map at 224 px), a new
  3x3 convolution to 1,024 channels with a ReLU, global average pooling and a linear classifier.
  torchvision's `vgg16` file loads into `features` (same indices); its `classifier.*` keys are
  not used (the card says so with weights.unused).
- `inception_v3_cam`: Inception-V3 up to Mixed_6e with wsolevaluation's changes (Conv2d_1a and
  Conv2d_2b padded, both stem max-pools padded with ceil mode, Mixed_6a at stride 1 with padding
  1 after a plain 3x3 max-pool: a 14x14 map at 224 px), then two new 3x3 convolutions to 1,024
  channels with ReLUs (SPG_A3_1b, SPG_A3_2b; dropout 0.5 before each when training), global
  average pooling and a linear classifier. wsolevaluation ends in a 1x1 convolution to the
  classes before the pooling; pooling then a linear layer is the same function, and the CAM
  formula gives its class map up to the bias (which min-max normalisation removes).
  torchvision's `inception_v3` file loads by name; Mixed_7*, AuxLogits and fc are not used.

The new layers (conv6 / SPG_A3_*, fc) are the card's head: tasks that replace the classifier
initialise them, and the WSOL fine-tuning trains them at lr_head, as wsolevaluation does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG16_CAM = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


def _vgg_features(config: list) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    return nn.Sequential(*layers)


class VggGap(nn.Module):
    # the new layers are the head; the stages end strides 4, 8 and 16 (conv3_3, conv4_3: SSD's source, conv5_3)
    bench_parts = {"head": ("fc", "conv6"), "feature_layers": ("features.15", "features.22", "features.29")}

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = _vgg_features(VGG16_CAM)
        self.conv6 = nn.Conv2d(512, 1024, 3, padding=1)
        self.relu = nn.ReLU(inplace=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():  # wsolevaluation's 'he' initialisation of the new layers
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv6(self.features(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def vgg16_gap(num_classes: int = 1000) -> VggGap:
    return VggGap(num_classes)


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: torchvision's Inception block names."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], **kwargs: object):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Mixed_6a, at stride 1 with padding 1 (wsolevaluation) instead of torchvision's stride 2."""

    def __init__(self, cin: int, stride: int = 1, padding: int = 1):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=stride, padding=padding)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=stride, padding=padding)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3d, F.max_pool2d(x, 3, stride=self.stride, padding=1)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionCam(nn.Module):
    bench_parts = {"head": ("fc", "SPG_A3_1b", "SPG_A3_2b"), "feature_layers": ("Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e")}

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2, padding=1)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.SPG_A3_1b = nn.Sequential(nn.Conv2d(768, 1024, 3, padding=1), nn.ReLU(True))
        self.SPG_A3_2b = nn.Sequential(nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1024, num_classes)
        for m in (*self.SPG_A3_1b, *self.SPG_A3_2b):  # wsolevaluation's xavier initialisation of the new layers
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        x = self.maxpool3(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))
        x = self.SPG_A3_1b(F.dropout(x, 0.5, self.training))
        x = self.SPG_A3_2b(F.dropout(x, 0.5, self.training))
        x = F.dropout(x, 0.5, self.training)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def inception_v3_cam(num_classes: int = 1000) -> InceptionCam:
    return InceptionCam(num_classes)
