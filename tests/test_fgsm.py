"""FGSM: the gradient against finite differences, the attack against a hand-computed case on a
linear model, and the task end to end against an independent recomputation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import NUM_CLASSES, assert_informative, assert_stats_reproduce
from tasks.adversarial import eps_name, fgsm


def test_the_gradient_is_the_loss_gradient_by_finite_differences():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).double().eval()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 3])
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    h = 1e-6
    for index in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 5, 5)]:
        e = torch.zeros_like(x)
        e[index] = h
        numeric = ((nn.functional.cross_entropy(model(x + e), y) - nn.functional.cross_entropy(model(x - e), y)) / (2 * h)).detach()
        assert float(grad[index].detach()) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)


def test_the_attack_on_a_linear_model_by_hand():
    """Logits W x (one pixel, two classes): the loss gradient's sign for label 0 is sign(w1 - w0),
    so x moves by eps that way and is clipped to [0, 1]."""
    model = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -0.5]]))
    x = torch.tensor([[0.5, 0.99, 0.2]])
    captured = []

    def normalize(v):
        captured.append(v.detach().clone())
        return v
    clean, (adv,) = fgsm(model, normalize, x, torch.tensor([0]), [0.1])
    # d CE / d x for label 0 = p1 * (w1 - w0): signs of (2, 3, -1)
    expected = torch.tensor([[0.6, 1.0, 0.1]])  # 0.99 + 0.1 clipped to 1
    torch.testing.assert_close(captured[1], expected)
    torch.testing.assert_close(adv, model(expected).detach())
    assert eps_name(8 / 255) == "eps8" and eps_name(0.05) == "eps0.05"


def test_imagenet_fgsm_end_to_end(run_bench, cards, data_root, tmp_path):
    import torchvision
    from torchvision import transforms as T

    code, out, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_fgsm", "--set", "eps=[0.01, 0.03]", "--data-root", data_root,
                               "--results", tmp_path / "r", "--workers", 0, "--batch-size", 5)
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert assert_stats_reproduce(record) == len(record["metrics"])  # what bench check resamples gives back every metric
    assert set(record["metrics"]) == {"fgsm_top1_acc", "clean_top1_acc", "top1_acc@eps0.01", "top1_acc@eps0.03"}
    assert record["metric_meta"]["top1_acc@eps0.03"]["name"] == "top1_acc@{eps}" and "paper Table 11: FGSM Top-1 Acc" in record["metric_meta"]["fgsm_top1_acc"]["tables"]
    # independent: ImageFolder + ToTensor (pixels in [0, 1]), the attack written out, Normalize after it
    model = torchvision.models.resnet18(weights=None, num_classes=NUM_CLASSES)
    sd = torch.load(cards["tiny_a"], weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    model.eval()
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    data = torchvision.datasets.ImageFolder(str(data_root / "imagenet" / "val"), T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor()]))
    correct = {"clean": 0, 0.01: 0, 0.03: 0}
    for x, y in torch.utils.data.DataLoader(data, batch_size=5):
        x.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(norm(x)), y)
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            correct["clean"] += int((model(norm(x)).argmax(1) == y).sum())
            for e in (0.01, 0.03):
                correct[e] += int((model(norm((x + e * g.sign()).clamp(0, 1))).argmax(1) == y).sum())
    n = len(data)
    assert record["metrics"]["clean_top1_acc"] == pytest.approx(100 * correct["clean"] / n)
    assert record["metrics"]["top1_acc@eps0.01"] == pytest.approx(100 * correct[0.01] / n) == record["metrics"]["fgsm_top1_acc"]
    assert record["metrics"]["top1_acc@eps0.03"] == pytest.approx(100 * correct[0.03] / n)
    assert_informative({"clean": record["metrics"]["clean_top1_acc"], "adv": 100 - record["metrics"]["top1_acc@eps0.03"]})
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    assert len(rows) == n and all(len(r["pred_adv"]) == 2 for r in rows)
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_fgsm", "--set", "eps=[2]", "--data-root", data_root, "--results", tmp_path / "r")
    assert code == 2 and "eps takes a list of numbers (at least one) each in [0, 1]" in err
