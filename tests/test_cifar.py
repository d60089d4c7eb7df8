"""PyramidNet-200 against the CutMix-PyTorch release's architecture (key names and shapes written
out here from its description, a checkpoint in the release's container loading strictly), the
CIFAR-100 reader against torchvision's CIFAR100 on a fixture in the exact pickle layout,
cifar100_cls against an independent recomputation, and the bad inputs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from bench.mini.layouts import write_cifar100
from conftest import assert_informative, assert_stats_reproduce

CIFAR_MEAN = [x / 255 for x in (125.3, 123.0, 113.9)]
CIFAR_STD = [x / 255 for x in (63.0, 62.1, 66.7)]
CLASSES = [f"class_{i:02d}" for i in range(100)]


def release_keys() -> list[tuple[str, tuple[int, ...]]]:
    """PyramidNet(dataset='cifar100', depth=200, alpha=240, num_classes=100, bottleneck=True) of
    CutMix-PyTorch's pyramidnet.py: n = (200 - 2) / 9 = 22 bottlenecks per stage, the width grows
    by 240 / 66 per block and is rounded with Python's round(); each block registers bn1, conv1
    (1x1), bn2, conv2 (3x3), bn3, conv3 (1x1, 4x wider), bn4; then bn_final and fc."""
    def bn(name, c):
        return [(f"{name}.weight", (c,)), (f"{name}.bias", (c,)), (f"{name}.running_mean", (c,)), (f"{name}.running_var", (c,)), (f"{name}.num_batches_tracked", ())]
    keys = [("conv1.weight", (16, 3, 3, 3))] + bn("bn1", 16)
    addrate, width, inplanes = 240 / 66, 16.0, 16
    for stage in (1, 2, 3):
        for b in range(22):
            width += addrate
            planes = int(round(width))
            p = f"layer{stage}.{b}"
            keys += bn(f"{p}.bn1", inplanes) + [(f"{p}.conv1.weight", (planes, inplanes, 1, 1))] + bn(f"{p}.bn2", planes)
            keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + bn(f"{p}.bn3", planes) + [(f"{p}.conv3.weight", (4 * planes, planes, 1, 1))] + bn(f"{p}.bn4", 4 * planes)
            inplanes = 4 * planes
    return keys + bn("bn_final", inplanes) + [("fc.weight", (100, inplanes)), ("fc.bias", (100,))]


def test_pyramidnet200_keys_and_shapes_are_the_releases():
    from bench.backbones.build import build_model

    with torch.device("meta"):
        model = build_model("pyramidnet200", 100)
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == release_keys()
    assert release_keys()[-2] == ("fc.weight", (100, 1024))
    assert sum(p.numel() for p in model.parameters()) == 26_844_952  # the paper's 26.8M


def save_release(model: torch.nn.Module, path: Path) -> Path:
    """What CutMix-PyTorch's train.py saves for its DataParallel PyramidNet."""
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.25, momentum=0.9)
    torch.save({"epoch": 300, "arch": "pyramidnet", "state_dict": sd, "best_err1": 14.23, "best_err5": 2.97, "optimizer": opt.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    from bench.backbones.pyramidnet import pyramidnet200

    torch.manual_seed(0)
    model = pyramidnet200(100)
    for m in model.modules():  # trained-looking statistics, so that skipping them would change the logits
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    return save_release(model, tmp_path_factory.mktemp("pyr") / "model_best.pth.tar"), model


def test_a_release_checkpoint_loads_strictly_and_round_trips(pyramid):
    from bench.backbones.build import load_backbone_from
    from bench.cards import resolve_backbone

    path, model = pyramid
    card = resolve_backbone(str(path), "pyramidnet200")
    assert card.num_classes == 100 and card.preprocessing.crop == 32 and card.preprocessing.mean == tuple(CIFAR_MEAN)
    loaded = load_backbone_from(card, str(path), "x", None)
    assert loaded.report.format == "cutmix" and loaded.report.stripped_prefix == "module." and loaded.report.meta["arch"] == "pyramidnet"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_a_pyramidnet_file_named_as_a_resnet_says_what_it_looks_like(pyramid, run_bench, tmp_path):
    code, _, err = run_bench("run", "--backbone", pyramid[0], "--arch", "resnet50", "--task", "cifar100_cls", "--num-classes", 100, "--data-root", tmp_path)
    assert code != 0 and "look like pyramidnet200: pass --arch pyramidnet200" in err, err


def test_the_five_release_cards():
    from bench.cards import find_card

    for recipe, top1 in (("baseline", 16.45), ("cutmix", 14.23), ("mixup", 15.63), ("manifold_mixup", 16.14), ("cutout", 16.53)):
        card = find_card(f"pyramidnet200_{recipe}")
        assert card.arch == "pyramidnet200" and card.num_classes == 100 and card.weights.format == "cutmix"
        assert card.weights.url.startswith("https://www.dropbox.com/sh/") and card.weights.file == "model_best.pth.tar"
        assert card.reported("cifar100_cls")["top1_err"] == top1
        assert card.preprocessing.mean == pytest.approx(CIFAR_MEAN) and card.preprocessing.std == pytest.approx(CIFAR_STD)
    assert find_card("pyramidnet200_cutmix").reported("cifar100_ood")["msp_tnr_at_tpr95"] == 69.0


def cifar_fixture(root: Path, n_test: int = 120, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    test = rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, size=n_test)
    return write_cifar100(root, {"train": (test[:10], labels[:10]), "test": (test, labels)}, CLASSES)


def torchvision_cifar(root: Path) -> torchvision.datasets.CIFAR100:
    """torchvision's own reader on the fixture (its md5 checks are for the released files)."""
    from unittest import mock

    with mock.patch("torchvision.datasets.cifar.check_integrity", return_value=True), \
            mock.patch.object(torchvision.datasets.CIFAR100, "_check_integrity", return_value=True):
        return torchvision.datasets.CIFAR100(str(root), train=False, download=False)


def test_the_reader_equals_torchvisions(tmp_path):
    from bench.data.cifar import read_cifar100

    folder = cifar_fixture(tmp_path)
    ours = read_cifar100(folder, "test")
    theirs = torchvision_cifar(tmp_path)
    assert np.array_equal(ours.images, theirs.data) and list(ours.targets) == theirs.targets
    assert ours.classes == theirs.classes == CLASSES and ours.images.shape == (120, 32, 32, 3)


@pytest.mark.parametrize("arch, extra, limit", [("resnet18", ("--num-classes", 100, "--resize", 32, "--crop", 32, "--mean", ",".join(map(str, CIFAR_MEAN)),
                                                                "--std", ",".join(map(str, CIFAR_STD))), None),
                                                 ("pyramidnet200", (), 12)])
def test_cifar100_cls_equals_an_independent_recomputation(arch, extra, limit, run_bench, tmp_path, pyramid):
    from torchvision import transforms as T

    cifar_fixture(tmp_path / "data")
    if arch == "resnet18":
        torch.manual_seed(1)
        model = torchvision.models.resnet18(num_classes=100).eval()
        path = tmp_path / "r18.pth"
        torch.save(model.state_dict(), path)
    else:
        path, model = pyramid
    args = ["run", "--backbone", path, "--arch", arch, *extra, "--task", "cifar100_cls", "--data-root", tmp_path / "data", "--results", tmp_path / "r",
            "--workers", 0, "--batch-size", 50]
    code, out, err = run_bench(*args, *(("--limit", limit) if limit else ()))
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert assert_stats_reproduce(record) == 4  # top-1/top-5 error, ECE, NLL from the per-sample statistics bench check resamples
    data = torchvision_cifar(tmp_path / "data")
    data.transform = T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    chosen = [i * 120 // limit for i in range(limit)] if limit else range(120)
    x = torch.stack([data[i][0] for i in chosen])
    y = torch.tensor([data[i][1] for i in chosen])
    with torch.no_grad():
        top5 = model(x).topk(5, 1).indices
    expected = {"top1_err": 100.0 * (top5[:, 0] != y).double().mean().item(), "top5_err": 100.0 * (~(top5 == y[:, None]).any(1)).double().mean().item()}
    for key, value in expected.items():
        assert record["metrics"][key] == pytest.approx(value, abs=1e-9), key
    assert record["n_samples"] == {"total": 120, "evaluated": limit or 120}
    assert_informative({"top1": 100 - expected["top1_err"], "top5": expected["top5_err"]})


def _truncate(folder):
    data = (folder / "test").read_bytes()
    (folder / "test").write_bytes(data[: len(data) // 2])


def _cifar10_keys(folder):
    obj = pickle.loads((folder / "test").read_bytes())
    obj["labels"] = obj.pop("fine_labels")
    (folder / "test").write_bytes(pickle.dumps(obj, protocol=2))


def _bad_label(folder):
    obj = pickle.loads((folder / "test").read_bytes())
    obj["fine_labels"][7] = 100
    (folder / "test").write_bytes(pickle.dumps(obj, protocol=2))


def _code_pickle(folder):
    (folder / "test").write_bytes(pickle.dumps({"data": Path("/etc")}, protocol=2))


@pytest.mark.parametrize("damage, message", [
    (_truncate, "cannot read CIFAR file"),
    (_cifar10_keys, "lacks fine_labels"),
    (_bad_label, "label 100 of image 7 is outside 0-99"),
    (_code_pickle, "which a CIFAR file never holds"),
    (lambda f: (f / "meta").unlink(), "meta does not exist"),
])
def test_bad_cifar_is_one_line_and_stores_nothing(damage, message, run_bench, tmp_path):
    folder = cifar_fixture(tmp_path / "data")
    damage(folder)
    torch.save(torchvision.models.resnet18(num_classes=100).state_dict(), tmp_path / "r18.pth")
    code, _, err = run_bench("run", "--backbone", tmp_path / "r18.pth", "--arch", "resnet18", "--num-classes", 100, "--task", "cifar100_cls",
                             "--data-root", tmp_path / "data", "--results", tmp_path / "r", "--workers", 0)
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert json.loads(run_bench("export", "--results", tmp_path / "r")[1]) == []


@pytest.mark.parametrize("task", ["cifar100_cls", "cifar100_ood"])
def test_a_classifier_that_is_not_100_way_is_refused(task, run_bench, tmp_path):
    cifar_fixture(tmp_path / "data")
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r18.pth")
    code, _, err = run_bench("run", "--backbone", tmp_path / "r18.pth", "--arch", "resnet18", "--num-classes", 10, "--task", task,
                             "--data-root", tmp_path / "data", "--results", tmp_path / "r")
    assert code != 0 and "needs a 100-way CIFAR-100 classifier" in err and len(err.strip().splitlines()) == 1, err
    assert json.loads(run_bench("export", "--results", tmp_path / "r")[1]) == []
