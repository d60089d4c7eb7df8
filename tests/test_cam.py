"""CAMs against wsolevaluation's formula computed separately, and the hook leaves logits unchanged."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision.models.feature_extraction import create_feature_extractor

from bench.cam import CamExtractor, scoremaps
from bench.mini.model import mini_resnet


def test_cam_is_the_class_weighted_channel_mean_of_layer4():
    torch.manual_seed(0)
    model = mini_resnet(10).eval()
    x = torch.randn(4, 3, 64, 64)
    labels = torch.tensor([3, 1, 4, 1])
    ext = CamExtractor(model)
    with torch.no_grad():
        logits = ext(x)
        cams = ext.cams(labels)
        feats = create_feature_extractor(model, {"layer4": "f"})(x)["f"]
    # wsolevaluation's ResNetCam: (fc.weight[labels].view(B, C, 1, 1) * feature_map).mean(1)
    expected = (model.fc.weight[labels].view(4, -1, 1, 1) * feats).mean(1)
    torch.testing.assert_close(cams, expected, rtol=1e-5, atol=1e-6)
    assert cams.shape == (4, 8, 8)
    ext.remove()
    with torch.no_grad():
        torch.testing.assert_close(model(x), logits, rtol=0, atol=0)


def test_scoremaps_are_cv2_bicubic_then_min_max():
    cams = torch.randn(2, 7, 7)
    maps = scoremaps(cams, (224, 224))
    ref = cv2.resize(cams[0].numpy().astype(np.float64), (224, 224), interpolation=cv2.INTER_CUBIC)  # wsolevaluation's t2n: float64
    ref = ref - ref.min()
    ref = ref / ref.max()
    assert maps[0].dtype == np.float64 and np.array_equal(maps[0], ref)  # bit for bit
    assert maps[1].min() == 0 and maps[1].max() == 1
    assert not scoremaps(torch.zeros(1, 7, 7), (32, 32))[0].any()  # constant: zeros
