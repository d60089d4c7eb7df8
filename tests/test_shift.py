"""imagenet_shift on fixtures in the four sets' released layouts, against an independent
recomputation that maps ImageNet-R/A classes with timm's index files (not bench's lists); the
wnid lists against timm's; and the bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from bench.data.shift import wnid_list
from conftest import assert_stats_reproduce

TIMM_INFO = None


def timm_info(name: str) -> list[str]:
    import timm

    return (Path(timm.__file__).parent / "data" / "_info" / name).read_text().split()


def test_the_wnid_lists_equal_timms():
    assert list(wnid_list("imagenet_1k")) == timm_info("imagenet_synsets.txt")
    assert sorted(timm_info("imagenet_r_synsets.txt")) == list(wnid_list("imagenet_r"))
    assert sorted(timm_info("imagenet_a_synsets.txt")) == list(wnid_list("imagenet_a"))


def write_sets(root: Path, sets=("imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a")) -> dict[str, Path]:
    """One small random image per class, in each set's released layout (V2: class-index folders;
    Sketch: the 1000 wnids; R and A: their 200 wnids)."""
    folders = {"imagenet_v2": "imagenetv2-matched-frequency-format-val", "imagenet_sketch": "sketch", "imagenet_r": "imagenet-r", "imagenet_a": "imagenet-a"}
    classes = {"imagenet_v2": [str(i) for i in range(1000)], "imagenet_sketch": list(wnid_list("imagenet_1k")),
               "imagenet_r": list(wnid_list("imagenet_r")), "imagenet_a": list(wnid_list("imagenet_a"))}
    rng = np.random.default_rng(0)
    out = {}
    for name in sets:
        base = root / folders[name]
        for k, c in enumerate(classes[name]):
            (base / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).save(base / c / f"{k}.jpg" if name != "imagenet_sketch" else base / c / f"{k}.JPEG")
        out[name] = base
    return out


@pytest.fixture(scope="module")
def shift_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shift")
    write_sets(root)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    torch.save(model.state_dict(), root / "r18_1k.pth")
    return root


def run_shift(run_bench, shift_root, tmp_path, *extra, data_root=None):
    return run_bench("run", "--backbone", shift_root / "r18_1k.pth", "--arch", "resnet18", "--resize", 32, "--crop", 32, "--task", "imagenet_shift",
                     "--data-root", data_root or shift_root, "--results", tmp_path / "r", "--workers", 0, "--batch-size", 100, *extra)


def test_imagenet_shift_equals_an_independent_recomputation(run_bench, shift_root, tmp_path):
    from torchvision import transforms as T

    code, out, err = run_shift(run_bench, shift_root, tmp_path, "--set", "clean=none")
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert assert_stats_reproduce(record) == 16  # the statistics bench check resamples give back every metric
    model = torchvision.models.resnet18(weights=None, num_classes=1000)
    model.load_state_dict(torch.load(shift_root / "r18_1k.pth", weights_only=True))
    model.eval()
    tf = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    full = timm_info("imagenet_synsets.txt")
    subsets = {"imagenet_r": [int(i) for i in timm_info("imagenet_r_indices.txt")], "imagenet_a": [int(i) for i in timm_info("imagenet_a_indices.txt")]}
    folders = {"imagenet_v2": "imagenetv2-matched-frequency-format-val", "imagenet_sketch": "sketch", "imagenet_r": "imagenet-r", "imagenet_a": "imagenet-a"}
    for name, folder in folders.items():
        wrong = n = 0
        paths = sorted((shift_root / folder).rglob("*.*"))
        for start in range(0, len(paths), 64):  # batches of 64: the same images, a quicker reference
            chunk = paths[start:start + 64]
            with torch.no_grad():
                batch = model(torch.stack([tf(Image.open(path).convert("RGB")) for path in chunk]))
            for path, logits in zip(chunk, batch):
                label = int(path.parent.name) if name == "imagenet_v2" else full.index(path.parent.name)
                pred = subsets[name][int(logits[subsets[name]].argmax())] if name in subsets else int(logits.argmax())
                wrong += pred != label
                n += 1
        assert record["metrics"][f"{name}_top1_err"] == pytest.approx(100.0 * wrong / n), name
    assert record["n_samples"]["total"] == 2400 and "imagenet_r" in record["details"]["restricted"]
    assert record["metrics"]["imagenet_r_top1_err"] < 100  # restricted to 200 classes a random model hits some
    assert "imagenet_r_delta" not in record["metrics"] and record["details"]["clean"]["source"] is None


def test_the_change_from_clean_uses_the_stored_imagenet_cls_record(run_bench, shift_root, tmp_path):
    from conftest import random_images
    from bench.mini.layouts import write_imagenet_val

    data = tmp_path / "data"
    shutil.copytree(shift_root / "imagenet-r", data / "imagenet-r")
    write_imagenet_val(data / "imagenet", random_images(1000, 1), list(range(1000)), list(wnid_list("imagenet_1k")))
    common = ("--backbone", shift_root / "r18_1k.pth", "--arch", "resnet18", "--resize", 32, "--crop", 32, "--data-root", data,
              "--results", tmp_path / "r", "--workers", 0, "--batch-size", 200)
    assert run_bench("run", "--task", "imagenet_cls", *common)[0] == 0
    code, _, err = run_bench("run", "--task", "imagenet_shift", "--set", "sets=[imagenet_r]", *common)
    assert code == 0, err
    cls, shift = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    assert shift["details"]["clean"]["run_id"] == cls["run_id"]
    m = shift["metrics"]
    assert m["imagenet_r_delta_1k"] == pytest.approx(m["imagenet_r_top1_err"] - cls["metrics"]["top1_err"])
    # ImageNet-R's own gap is against ImageNet-200 (hendrycks/imagenet-r eval.py): the val images of
    # its 200 classes, logits restricted to them; recomputed here with torchvision and timm's lists
    from torchvision import transforms as T

    model = torchvision.models.resnet18(weights=None, num_classes=1000)
    model.load_state_dict(torch.load(shift_root / "r18_1k.pth", weights_only=True))
    data_val = torchvision.datasets.ImageFolder(str(data / "imagenet" / "val"), T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(),
                                                                                           T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]))
    full, r200 = timm_info("imagenet_synsets.txt"), timm_info("imagenet_r_synsets.txt")
    mask = [full.index(w) for w in sorted(r200)]
    keep = [i for i, t in enumerate(data_val.targets) if t in mask]
    with torch.no_grad():
        logits = torch.cat([model.eval()(torch.stack([data_val[i][0] for i in keep[k:k + 50]])) for k in range(0, len(keep), 50)])
    predicted = [mask[j] for j in logits[:, mask].argmax(1).tolist()]
    err200 = 100.0 * np.mean([p != data_val.targets[i] for p, i in zip(predicted, keep)])
    assert len(keep) == 200 and m["imagenet_r_clean200_top1_err"] == pytest.approx(err200)
    assert m["imagenet_r_delta"] == pytest.approx(m["imagenet_r_top1_err"] - err200)
    assert m["imagenet_r_clean200_top1_err"] != pytest.approx(cls["metrics"]["top1_err"])  # the two references differ here


@pytest.mark.parametrize("damage, extra, message", [
    (lambda r: shutil.rmtree(r / "imagenet-a"), (), "dataset 'imagenet_a' not found"),
    (lambda r: shutil.rmtree(r / "imagenet-r" / "n01443537"), (), "imagenet_r at"),
    (lambda r: (r / "imagenetv2-matched-frequency-format-val" / "1000").mkdir(), (), "folder(s) that are not its classes"),
    (lambda r: next((r / "sketch" / "n01440764").iterdir()).write_bytes(b"x"), (), "cannot decode image"),
    (None, ("--set", "sets=[imagenet_b]"), "sets takes a list of"),
])
def test_bad_shift_sets_are_one_line_and_store_nothing(damage, extra, message, run_bench, shift_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shift_root, data, ignore=shutil.ignore_patterns("*.pth"))
    if damage:
        damage(data)
    code, _, err = run_shift(run_bench, shift_root, tmp_path, "--set", "clean=none", *extra, data_root=data)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    if "not found" in message:
        assert "--set sets=[...]" in err
    assert json.loads(run_bench("export", "--results", tmp_path / "r")[1]) == []


def test_a_backbone_that_is_not_1000_way_is_refused(run_bench, cards, shift_root, tmp_path):
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_shift", "--data-root", shift_root, "--results", tmp_path / "r")
    assert code != 0 and "scores 1000-way ImageNet classifiers, but tiny_a predicts 12 classes" in err


def test_imagenet_v2_folders_are_class_indices_not_sorted_names(shift_root):
    """ImageNetV2's folder k holds class k of the sorted wnid list; sorting the folder names as
    strings ('0', '1', '10', '100', ...) would put class 10 at index 2."""
    from bench.data.shift import read_shift_set

    found = read_shift_set("imagenet_v2", shift_root / "imagenetv2-matched-frequency-format-val")
    by_folder = {p.parent.name: t for p, t in zip(found.images, found.targets)}
    assert by_folder["10"] == 10 and by_folder["100"] == 100 and by_folder["999"] == 999 and by_folder["2"] == 2
