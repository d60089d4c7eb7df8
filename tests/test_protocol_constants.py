"""Protocol constants and decision boundaries against their sources, written out here rather than
read from the code under test: augmix's AlexNet errors (mCE), torchvision's AlexNet clean
accuracy (relative mCE), ssd.pytorch's SSD300 VOC prior boxes on all six maps, and ECE's
(lower, upper] bins with samples exactly on the edges."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torchvision

# google-research/augmix imagenet.py ALEXNET_ERR ("Raw AlexNet errors taken from hendrycks/robustness"), in its order
AUGMIX_ALEXNET_ERR = [
    ("gaussian_noise", 0.886428), ("shot_noise", 0.894468), ("impulse_noise", 0.922640), ("defocus_blur", 0.819880), ("glass_blur", 0.826268),
    ("motion_blur", 0.785948), ("zoom_blur", 0.798360), ("snow", 0.866816), ("frost", 0.826572), ("fog", 0.819324), ("brightness", 0.564592),
    ("contrast", 0.853204), ("elastic_transform", 0.646056), ("pixelate", 0.717840), ("jpeg_compression", 0.606500),
]


def test_alexnet_errors_are_augmixs_value_for_value():
    from bench.metrics.corruption import ALEXNET_ERR, CORRUPTIONS

    assert list(CORRUPTIONS) == [name for name, _ in AUGMIX_ALEXNET_ERR]
    assert ALEXNET_ERR == dict(AUGMIX_ALEXNET_ERR)


def test_mce_of_a_table_by_hand_with_augmixs_constants():
    """Every corruption at 50% error: CE_c = 50 / AlexNet_c; the expected mCE is summed here from the written-out constants."""
    from bench.metrics.corruption import corruption_metrics

    errors = {name: {s: 40.0 + 2 * s + k for s in range(1, 6)} for k, (name, _) in enumerate(AUGMIX_ALEXNET_ERR)}
    result = corruption_metrics(errors, clean_error=20.0)
    ce = [(46.0 + k) / e for k, (_, e) in enumerate(AUGMIX_ALEXNET_ERR)]
    assert result["mce"] == pytest.approx(sum(ce) / 15, abs=1e-9)
    for k, (name, e) in enumerate(AUGMIX_ALEXNET_ERR):
        assert result["ce"][name] == pytest.approx((46.0 + k) / e, abs=1e-9), name
    clean_alexnet = 100 - torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]  # 43.478
    rel = [(46.0 + k - 20.0) / (100 * e - clean_alexnet) for k, (_, e) in enumerate(AUGMIX_ALEXNET_ERR)]
    assert result["relative_mce"] == pytest.approx(100 * sum(rel) / 15, abs=1e-9)


def test_alexnet_clean_error_is_torchvisions_alexnet():
    from bench.metrics.corruption import ALEXNET_CLEAN_ERR

    acc = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert acc == 56.522 and ALEXNET_CLEAN_ERR == pytest.approx(1 - acc / 100, abs=1e-12)


def _ssd_pytorch_priors() -> torch.Tensor:
    """ssd.pytorch's PriorBox for its VOC config (data/config.py `voc`), written out: feature maps
    38, 19, 10, 5, 3, 1; steps 8, 16, 32, 64, 100, 300; min sizes 30, 60, 111, 162, 213, 264; max
    sizes 60, 111, 162, 213, 264, 315; aspect ratios [2], [2, 3], [2, 3], [2, 3], [2], [2]; clip.
    Per location: min, sqrt(min * max), then each ratio r as (sqrt r, 1/sqrt r) and its transpose.
    Returned as pixel (x1, y1, x2, y2) at 300 px."""
    maps, steps = [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]
    mins, maxs = [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]
    ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    out = []
    for k, f in enumerate(maps):
        fk = 300 / steps[k]
        for i, j in itertools.product(range(f), repeat=2):
            cx, cy = (j + 0.5) / fk, (i + 0.5) / fk
            s, big = mins[k] / 300, math.sqrt(mins[k] / 300 * maxs[k] / 300)
            boxes = [(cx, cy, s, s), (cx, cy, big, big)]
            for r in ratios[k]:
                boxes += [(cx, cy, s * math.sqrt(r), s / math.sqrt(r)), (cx, cy, s / math.sqrt(r), s * math.sqrt(r))]
            out += boxes
    b = torch.tensor(out, dtype=torch.float64).clamp(0, 1) * 300
    return torch.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)


def test_ssd300_voc_priors_on_all_six_maps_are_ssd_pytorchs():
    from torchvision.models.detection.image_list import ImageList

    from bench.detection.models import build_detector
    from tasks.detection import SSD

    model = build_detector("ssd", torchvision.models.resnet50(weights=None), 20, [0.5] * 3, [0.25] * 3, {**SSD, "prior_scales": "voc"}).eval()
    with torch.no_grad():
        maps = list(model.backbone(torch.zeros(1, 3, 300, 300)).values())
    assert [m.shape[-1] for m in maps] == [38, 19, 10, 5, 3, 1]
    anchors = model.anchor_generator(ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), maps)[0]
    expected = _ssd_pytorch_priors()
    assert anchors.shape == expected.shape == (8732, 4)
    # one known difference: ssd.pytorch clamps the centres too, and on the 10x10 map (step 32) the
    # last row's and column's centres lie at 9.5 x 32 = 304 px, outside the 300 px image; it moves
    # them to 300, torchvision's generator keeps 304. Those boxes are shifted by 4 px, nothing else.
    first = 38 * 38 * 4 + 19 * 19 * 6
    cells = torch.arange(600) // 6
    edge = first + torch.nonzero((cells % 10 == 9) | (cells // 10 == 9)).flatten()
    same = torch.ones(8732, dtype=torch.bool)
    same[edge] = False
    torch.testing.assert_close(anchors.double()[same], expected[same], atol=2e-3, rtol=0)
    shift = anchors.double()[edge] - expected[edge]
    on_x = ((cells[edge - first] % 10) == 9).double().unsqueeze(1)
    on_y = ((cells[edge - first] // 10) == 9).double().unsqueeze(1)
    torch.testing.assert_close(shift, torch.cat([4 * on_x, 4 * on_y, 4 * on_x, 4 * on_y], 1), atol=2e-3, rtol=0)


def _ece_reference(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Guo et al. 2017's ECE as their code computes it: bin m holds the confidences in (lower, upper]
    of torch.linspace(0, 1, n_bins + 1); sum over bins of |accuracy - confidence| x share."""
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64).numpy()
    total = 0.0
    for lower, upper in zip(edges[:-1], edges[1:]):
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            total += abs(correct[inside].mean() - confidence[inside].mean()) * inside.mean()
    return 100 * total


def test_ece_bins_are_lower_open_upper_closed_at_the_edges():
    """Samples exactly on bin edges, each sharing its bin with another sample, so that moving an
    edge sample to the next bin changes the number; 15 bins, as the tasks use."""
    from bench.metrics.calibration import expected_calibration_error, reliability

    edges = torch.linspace(0, 1, 16, dtype=torch.float64).numpy()
    conf = np.array([edges[3], edges[3] - 0.01, edges[3] + 0.01, edges[8], edges[8] - 0.02, edges[9] - 0.001, edges[15], edges[15] - 0.03, 0.1, 0.62, 0.68])
    correct = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0])
    ref = _ece_reference(conf, correct)
    assert expected_calibration_error(conf, correct) == pytest.approx(ref, abs=1e-12)
    assert _ece_reference(conf, correct, 10) != pytest.approx(ref, abs=1e-6)  # 0.62 and 0.68 share a bin of ten, not of fifteen
    # by hand: bin (2/15, 3/15] holds edges[3] and edges[3]-0.01; (3/15, 4/15] holds edges[3]+0.01 alone; ...
    by_hand = (abs(0.5 - (2 * edges[3] - 0.01) / 2) * 2 + abs(1 - (edges[3] + 0.01))
               + abs(0.5 - (2 * edges[8] - 0.02) / 2) * 2 + abs(0 - (edges[9] - 0.001))
               + abs(0.5 - (2 * edges[15] - 0.03) / 2) * 2 + abs(1 - 0.1) + abs(1 - 0.62) + abs(0 - 0.68)) / 11 * 100
    assert ref == pytest.approx(by_hand, abs=1e-12)
    # the reliability bins: an edge sample counts in the bin it closes
    bins = reliability(conf, correct)
    assert len(bins) == 15 and [b["count"] for b in bins] == [0, 1, 2, 1, 0, 0, 0, 2, 1, 1, 1, 0, 0, 0, 2]


def test_voc07_match_needs_iou_strictly_above_half():
    """The classic voc_eval: a detection is a hit when ovmax > 0.5; at exactly 0.5 (+1 pixel
    convention: GT 10 x 10, detection 10 x 5 inside it) it is a false positive."""
    from bench.metrics.voc import Detections, GroundTruth, voc_detection_ap

    gt = [GroundTruth(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([0]), np.array([False]))]
    half = Detections(np.array([0]), np.array([0]), np.array([0.9]), np.array([[0.0, 0.0, 9.0, 4.0]]))  # inter 50, union 100
    above = Detections(np.array([0]), np.array([0]), np.array([0.9]), np.array([[0.0, 0.0, 9.0, 5.0]]))  # inter 60, union 100
    assert voc_detection_ap(gt, half, 1)["map_voc07"] == 0.0
    assert voc_detection_ap(gt, above, 1)["map_voc07"] == pytest.approx(100.0)


def test_occlusion_defaults_sweep_to_the_full_crop_with_the_mean_fill():
    """Paper Fig. 5a: hole sides from 0 to 224 (the crop); the fill is bench's documented default
    (the paper says 'zeroed-out' and released no code)."""
    from tasks.sweeps import ImageNetInBetween, ImageNetOcclusion

    config = ImageNetOcclusion().default_config()
    assert config["sizes"][0] == 0 and config["sizes"][-1] == 224 and config["fill"] == "mean"
    assert ImageNetInBetween().default_config()["sizes"][-1] == 224


def test_faster_rcnn_test_time_proposals_are_torchvisions_defaults():
    import inspect

    from torchvision.models.detection.faster_rcnn import FasterRCNN

    from tasks.detection import FRCNN

    sig = inspect.signature(FasterRCNN.__init__).parameters
    expected = [sig[k].default for k in ("rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test")]
    assert FRCNN["rpn_top_n"] == expected == [2000, 2000, 1000, 1000]


def test_pyramidnet_widening_appends_zero_channels_to_the_shortcut():
    """CutMix-PyTorch's pyramidnet.py: torch.cat((shortcut, zero padding), 1): the input's
    channels first, the zeros after. With the residual branch silenced the block shows it."""
    from bench.backbones.pyramidnet import Bottleneck

    block = Bottleneck(16, 8).eval()  # 16 in, 32 out: 16 zero channels
    with torch.no_grad():
        block.bn4.weight.zero_()
        block.bn4.bias.zero_()
        x = torch.randn(2, 16, 5, 5)
        out = block(x)
    assert out.shape == (2, 32, 5, 5)
    torch.testing.assert_close(out[:, :16], x) and torch.testing.assert_close(out[:, 16:], torch.zeros(2, 16, 5, 5))


def test_cifar_normalisation_is_the_releases():
    """CutMix-PyTorch test.py (and ODIN's cal.py): mean (125.3, 123.0, 113.9) / 255, std (63.0, 62.1, 66.7) / 255."""
    from bench.cards import CIFAR_MEAN, CIFAR_STD, load_cards

    assert CIFAR_MEAN == tuple(v / 255 for v in (125.3, 123.0, 113.9)) and CIFAR_STD == tuple(v / 255 for v in (63.0, 62.1, 66.7))
    card = load_cards()["pyramidnet200_cutmix"]
    assert card.preprocessing.std == pytest.approx(tuple(v / 255 for v in (63.0, 62.1, 66.7)), abs=1e-12)
