"""Occlusion and in-between sweeps: the image operations by hand, the pair draw, each task end to
end against an independent recomputation, decode-once, and the bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.sweeps import center_square, class_pairs, cutmix_center, mixup, occlude
from conftest import NUM_CLASSES, assert_informative, assert_stats_reproduce
from test_imagenet_c import load_tiny

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_centre_square_occlusion_and_cutmix_by_hand():
    x = torch.arange(1, 37, dtype=torch.float32).view(1, 1, 6, 6)
    fill = torch.full((1, 1, 1, 1), -1.0)
    assert center_square(6, 6, 2) == (2, 4, 2, 4) and center_square(6, 6, 3) == (1, 4, 1, 4) and center_square(6, 6, 0) == (3, 3, 3, 3)
    c = occlude(x, 2, "center", fill)
    assert c[0, 0, 2:4, 2:4].eq(-1).all() and (c != -1).sum() == 32 and c[0, 0, 0, 0] == 1
    b = occlude(x, 2, "boundary", fill)
    assert torch.equal(b[0, 0, 2:4, 2:4], x[0, 0, 2:4, 2:4]) and (b == -1).sum() == 32
    assert torch.equal(occlude(x, 0, "center", fill), x) and occlude(x, 0, "boundary", fill).eq(-1).all()
    assert occlude(x, 6, "center", fill).eq(-1).all() and torch.equal(occlude(x, 6, "boundary", fill), x)
    y = -x
    m = cutmix_center(x, y, 4)
    assert torch.equal(m[0, 0, 1:5, 1:5], y[0, 0, 1:5, 1:5]) and torch.equal(m[0, 0, 0], x[0, 0, 0])
    assert torch.equal(cutmix_center(x, y, 0), x) and torch.equal(cutmix_center(x, y, 6), y)
    torch.testing.assert_close(mixup(x, y, 0.25), 0.25 * x - 0.75 * x)


def test_pairs_are_fixed_by_the_seed_and_always_of_two_classes():
    targets = [0, 0, 0, 1, 2, 2]
    pairs = class_pairs(targets, 500, seed=3)
    assert pairs.shape == (500, 2) and all(targets[a] != targets[b] for a, b in pairs)
    assert np.array_equal(pairs, class_pairs(targets, 500, seed=3)) and not np.array_equal(pairs, class_pairs(targets, 500, seed=4))
    with pytest.raises(ValueError):
        class_pairs([1, 1], 3, 0)


def _val(data_root):
    import torchvision
    from torchvision import transforms as T

    return torchvision.datasets.ImageFolder(str(data_root / "imagenet" / "val"), T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor()]))


def test_occlusion_equals_an_independent_recomputation(run_bench, cards, data_root, tmp_path):
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_occlusion", "--set", "sizes=[0, 20, 56]", "--set", "fill=black",
                             "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0, "--batch-size", 7)
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert assert_stats_reproduce(record) == len(record["metrics"])  # what bench check resamples gives back every metric
    model, val = load_tiny(cards["tiny_a"]), _val(data_root)
    norm = lambda v: (v - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)  # noqa: E731
    expected = {}
    for side in (0, 20, 56):
        lo = (56 - side) // 2
        wrong = {"center": 0, "boundary": 0}
        for x, y in val:
            inside = torch.zeros(56, 56, dtype=torch.bool)
            inside[lo:lo + side, lo:lo + side] = True
            with torch.no_grad():
                wrong["center"] += int(model(norm(x * ~inside).unsqueeze(0)).argmax()) != y
                wrong["boundary"] += int(model(norm(x * inside).unsqueeze(0)).argmax()) != y
        for mode in wrong:
            expected[f"{mode}_err@{side}"] = 100.0 * wrong[mode] / len(val)
    for name, value in expected.items():
        assert record["metrics"][name] == pytest.approx(value), name
    assert record["metrics"]["center_err_mean"] == pytest.approx(np.mean([expected[f"center_err@{s}"] for s in (0, 20, 56)]))
    assert record["details"]["fill"]["pixel_value"] == [0.0, 0.0, 0.0] and record["details"]["curves"]["boundary"]["20"] == expected["boundary_err@20"]
    assert_informative(expected)
    # the default fill is the normalisation mean: zero after normalising
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_occlusion", "--set", "sizes=[56]", "--set", "modes=[center]",
                             "--data-root", data_root, "--results", tmp_path / "r2", "--workers", 0)
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r2")[1])
    with torch.no_grad():
        blank = int(model(torch.zeros(1, 3, 56, 56)).argmax())
    assert record["metrics"]["center_err@56"] == pytest.approx(100.0 * sum(y != blank for _, y in val) / len(val))


def test_inbetween_equals_an_independent_recomputation(run_bench, cards, data_root, tmp_path):
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_inbetween", "--set", "pairs=40", "--set", "pair_seed=5",
                             "--set", "lambdas=[0, 0.3, 1]", "--set", "sizes=[0, 28, 56]", "--data-root", data_root, "--results", tmp_path / "r",
                             "--workers", 0, "--batch-size", 6)
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert assert_stats_reproduce(record) == len(record["metrics"])
    model, val = load_tiny(cards["tiny_a"]), _val(data_root)
    # bench's val order is class then file name, as ImageFolder's: the same indices
    pairs = class_pairs([y for _, y in val.samples], 40, 5)
    norm = lambda v: (v - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)  # noqa: E731
    for kind, points in (("mixup", (0, 0.3, 1)), ("cutmix", (0, 28, 56))):
        for p in points:
            counts = {"a": 0, "b": 0}
            for i, j in pairs:
                (xa, ya), (xb, yb) = val[i], val[j]
                if kind == "mixup":
                    x = p * xa + (1 - p) * xb
                else:
                    lo = (56 - p) // 2
                    x = xa.clone()
                    x[:, lo:lo + p, lo:lo + p] = xb[:, lo:lo + p, lo:lo + p]
                with torch.no_grad():
                    pred = int(model(norm(x).unsqueeze(0)).argmax())
                counts["a"] += pred == ya
                counts["b"] += pred == yb
            assert record["metrics"][f"{kind}_a@{p:g}"] == pytest.approx(100 * counts["a"] / 40)
            assert record["metrics"][f"{kind}_b@{p:g}"] == pytest.approx(100 * counts["b"] / 40)
            assert record["metrics"][f"{kind}_neither@{p:g}"] == pytest.approx(100 * (40 - counts["a"] - counts["b"]) / 40)
    m = record["metrics"]
    assert m["mixup_a@1"] == m["cutmix_a@0"] and m["mixup_b@0"] == m["cutmix_b@56"]  # the ends are the pure images
    assert_informative({k: v for k, v in m.items() if "_a@" in k or "_b@" in k})
    assert record["details"]["pairs"]["first"] == pairs[:5].tolist()


def test_each_image_is_decoded_once_for_every_sweep_point(run_bench, cards, data_root, tmp_path, monkeypatch):
    import bench.data.images as images

    calls = []
    real = images.load_rgb
    monkeypatch.setattr(images, "load_rgb", lambda path: calls.append(path) or real(path))
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_occlusion", "--data-root", data_root, "--results", tmp_path / "r",
                             "--workers", 0, "--set", "sizes=[0, 8, 16, 24, 32, 40, 48, 56]")
    assert code == 0, err
    assert len(calls) == len(set(calls)) == 2 * NUM_CLASSES  # 16 sweep points, one decode per image


@pytest.mark.parametrize("task, setting, message", [
    ("imagenet_occlusion", "sizes=[0, 64]", "sizes 64 is larger than the crop (56x56)"),
    ("imagenet_inbetween", "sizes=[100]", "sizes 100 is larger than the crop"),
    ("imagenet_occlusion", "fill=grey", "fill takes one of mean, black"),
    ("imagenet_inbetween", "lambdas=[1.5]", "lambdas takes a list of numbers"),
])
def test_bad_sweeps_are_refused_before_any_work(task, setting, message, run_bench, cards, data_root, tmp_path):
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", task, "--set", setting, "--data-root", data_root, "--results", tmp_path / "r")
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert json.loads(run_bench("export", "--results", tmp_path / "r")[1]) == []


def test_the_robustness_figure_draws_from_stored_records(run_bench, cards, data_root, tmp_path):
    for task, extra in (("imagenet_occlusion", ["--set", "sizes=[0, 28, 56]"]), ("imagenet_inbetween", ["--set", "pairs=10", "--set", "sizes=[0, 56]"]), ("imagenet_cls", [])):
        for backbone in ("tiny_a", "tiny_b"):
            assert run_bench("run", "--backbone", backbone, "--task", task, *extra, "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)[0] == 0
    code, out, err = run_bench("report", "--results", tmp_path / "r", "--figure", "robustness", "--output", tmp_path / "fig.png")
    assert code == 0, err
    from PIL import Image

    image = Image.open(tmp_path / "fig.png")
    assert image.format == "PNG" and image.size[0] > 1000
    assert np.asarray(image.convert("L")).std() > 10  # not blank
    code, _, err = run_bench("report", "--results", tmp_path / "r", "--tasks", "imagenet_fgsm", "--figure", "robustness")
    assert code != 0
