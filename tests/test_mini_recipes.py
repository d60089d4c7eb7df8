"""The four recipes against the paper's definitions (CutMix section 3.1 and CutMix-PyTorch's
train.py; Mixup; Cutout), with torchvision's v2.CutMix / v2.MixUp where they match."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from bench.mini.recipes import Recipe, cutout


def paper_rand_bbox(W: int, H: int, lam: float, cx: int, cy: int) -> tuple[int, int, int, int]:
    """CutMix-PyTorch's rand_bbox for a given lambda and centre (np.int -> int)."""
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(W * cut_rat), int(H * cut_rat)
    return (int(np.clip(cx - cut_w // 2, 0, W)), int(np.clip(cy - cut_h // 2, 0, H)),
            int(np.clip(cx + cut_w // 2, 0, W)), int(np.clip(cy + cut_h // 2, 0, H)))


@pytest.mark.parametrize("seed", range(20))
def test_cutmix_box_and_lambda_are_the_papers(seed):
    H = W = 64
    x = torch.randn(6, 3, H, W)
    cutmix = v2.CutMix(alpha=1.0, num_classes=10)
    torch.manual_seed(seed)
    params = cutmix.make_params([x])
    # replay the same draws: lambda ~ Beta(1, 1), then the centre, uniform over the image
    torch.manual_seed(seed)
    lam = float(torch.distributions.Beta(torch.tensor([1.0]), torch.tensor([1.0])).sample(()))
    cx, cy = int(torch.randint(W, (1,))), int(torch.randint(H, (1,)))
    assert params["box"] == paper_rand_bbox(W, H, lam, cx, cy)
    x1, y1, x2, y2 = params["box"]
    # lambda corrected to the clipped box area (CutMix-PyTorch commit f0c71b1)
    assert params["lam_adjusted"] == pytest.approx(1 - (x2 - x1) * (y2 - y1) / (W * H), abs=1e-12)


def test_cutmix_pastes_one_box_from_the_paired_sample_and_mixes_labels_by_area():
    torch.manual_seed(3)
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    out, soft = Recipe("cutmix", 10, 16)(x.clone(), y, torch.Generator())
    pasted = (out != x).any(1)  # (N, H, W): where the image changed
    area = pasted[0].float().mean().item()  # one box, same for the whole batch
    assert all(torch.equal(pasted[i], pasted[0]) for i in range(8))
    ys, xs = torch.nonzero(pasted[0], as_tuple=True)
    box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    assert torch.equal(out[:, :, box[0], box[1]], x.roll(1, 0)[:, :, box[0], box[1]])
    expected = (1 - area) * F.one_hot(y, 10) + area * F.one_hot(y.roll(1), 10)
    torch.testing.assert_close(soft, expected.float())
    # CE against the mixed target is the paper's lam * CE(y_a) + (1 - lam) * CE(y_b)
    logits = torch.randn(8, 10)
    paper = (1 - area) * F.cross_entropy(logits, y) + area * F.cross_entropy(logits, y.roll(1))
    torch.testing.assert_close(F.cross_entropy(logits, soft), paper)


def test_cutmix_lambda_is_uniform_and_area_tracks_it():
    """Beta(1, 1) = Uniform(0, 1); unclipped boxes have area 1 - lambda up to pixel rounding."""
    torch.manual_seed(0)
    cutmix = v2.CutMix(alpha=1.0, num_classes=10)
    x = torch.zeros(2, 3, 224, 224)
    lams, adjusted = [], []
    for s in range(1000):
        torch.manual_seed(s)
        p = cutmix.make_params([x])
        torch.manual_seed(s)
        lams.append(float(torch.distributions.Beta(torch.tensor([1.0]), torch.tensor([1.0])).sample(())))
        adjusted.append(p["lam_adjusted"])
    lams, adjusted = np.array(lams), np.array(adjusted)
    assert abs(lams.mean() - 0.5) < 0.02 and abs(np.median(lams) - 0.5) < 0.03
    assert (adjusted >= lams - 1e-9).all()  # clipping only shrinks the box
    cut = 2 * np.floor(224 * np.sqrt(1 - lams) / 2) / 224  # unclipped side fraction
    unclipped = adjusted - (1 - cut ** 2) < 1e-9
    assert unclipped.mean() > 0.1 and np.abs((1 - adjusted[unclipped]) - (1 - lams[unclipped])).max() < 4 * 2 / 224


def test_mixup_is_a_convex_combination_with_the_paired_sample():
    torch.manual_seed(5)
    x = torch.randn(8, 3, 16, 16)
    y = torch.randint(0, 10, (8,))
    out, soft = Recipe("mixup", 10, 8)(x.clone(), y, torch.Generator())
    # solve lam from the images, then check images and labels agree on it
    lam = float(((out - x.roll(1, 0)) * (x - x.roll(1, 0))).sum() / ((x - x.roll(1, 0)) ** 2).sum())
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.roll(1, 0))
    torch.testing.assert_close(soft, lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(y.roll(1), 10).float())


def test_cutout_hole_is_a_clipped_square_and_random_erasing_is_not_cutout():
    x = torch.ones(4000, 1, 64, 64)
    holes = (cutout(x, 32, torch.Generator().manual_seed(0)) == 0).squeeze(1)
    areas = holes.flatten(1).sum(1).float()
    assert areas.max() == 32 * 32  # a full square when the centre is far from the border
    assert areas.min() < 32 * 32 / 2  # clipped near the border, as Cutout's centre is uniform over the image
    sides = [min(c + 16, 64) - max(c - 16, 0) for c in range(64)]  # clipped side for each centre
    assert sum(sides) / 64 == 28 and abs(areas.mean().item() - 28 ** 2) < 15  # the axes are independent
    for h in holes[:50]:  # every hole is one axis-aligned rectangle
        ys, xs = torch.nonzero(h, as_tuple=True)
        assert h[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()
    erase = v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0)
    torch.manual_seed(0)
    erased = [int((erase(torch.ones(1, 64, 64)) == 0).sum()) for _ in range(200)]
    assert set(erased) == {32 * 32}  # never clipped: not the paper's Cutout


def test_baseline_and_cutout_keep_hard_labels():
    y = torch.tensor([1, 2, 3])
    for name in ("baseline", "cutout"):
        _, soft = Recipe(name, 5, 4)(torch.randn(3, 3, 8, 8), y, torch.Generator().manual_seed(0))
        torch.testing.assert_close(soft, F.one_hot(y, 5).float())
    with pytest.raises(ValueError):
        Recipe("autoaugment", 5, 4)
