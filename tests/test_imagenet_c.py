"""imagenet_c: the released layouts (corruption folders and category folders) end to end against
an independent recomputation (PIL + torchvision's ToTensor/Normalize, mCE by the formula written
out here), the clean error from the store or a clean pass, the generated source and its cache,
every corruption of the library, and the bad inputs, each refused in one line with nothing stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import NUM_CLASSES, WNIDS, assert_informative, assert_stats_reproduce
from bench.data.imagenet_c import ALL_CORRUPTIONS, CATEGORIES
from bench.metrics.corruption import ALEXNET_CLEAN_ERR, ALEXNET_ERR, CORRUPTIONS, EXTRA_CORRUPTIONS

CROP = 56  # the test cards' crop


def make_imagenet_c(root: Path, layout: str = "corruption_folders", corruptions=ALL_CORRUPTIONS, severities=(1, 2, 3, 4, 5), per_class: int = 1, size: int = CROP) -> Path:
    """Random images in ImageNet-C's released layout, each (corruption, severity) its own draws."""
    category = {c: k for k, members in CATEGORIES.items() for c in members}
    rng = np.random.default_rng(0)
    for c in corruptions:
        base = root / (f"{category[c]}/{c}" if layout == "category_folders" else c)
        for s in severities:
            for k, wnid in enumerate(WNIDS):
                folder = base / str(s) / wnid
                folder.mkdir(parents=True)
                for j in range(per_class):
                    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"ILSVRC2012_val_{k * per_class + j + 1:08d}.JPEG", quality=85)
    return root


def load_tiny(path: Path) -> torch.nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=NUM_CLASSES)
    sd = torch.load(path, weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    return model.eval()


def independent_errors(model: torch.nn.Module, root: Path) -> tuple[dict[str, dict[int, float]], np.ndarray, np.ndarray, np.ndarray]:
    """Per (corruption, severity) top-1 error with PIL + ToTensor + Normalize, no resize; and every
    image's logits and labels for calibration."""
    from torchvision import transforms as T

    tf = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    errors: dict[str, dict[int, float]] = {}
    all_logits, all_labels = [], []
    paths = sorted(root.rglob("*.JPEG"))
    for start in range(0, len(paths), 64):  # batches of 64: the same images, a quicker reference
        chunk = paths[start:start + 64]
        with torch.no_grad():
            batch = model(torch.stack([tf(Image.open(path).convert("RGB")) for path in chunk]))
        for path, logits in zip(chunk, batch):
            c, s, wnid = path.parts[-4], int(path.parts[-3]), path.parts[-2]
            label = WNIDS.index(wnid)
            errors.setdefault(c, {}).setdefault(s, []).append(int(logits.argmax()) != label)  # type: ignore[arg-type]
            all_logits.append(logits.numpy())
            all_labels.append(label)
    rates = {c: {s: 100.0 * float(np.mean(v)) for s, v in by.items()} for c, by in errors.items()}
    logits = np.stack(all_logits)
    return rates, logits, np.asarray(all_labels), logits.argmax(1) == np.asarray(all_labels)


def run_c(run_bench, tmp_path, data_root, *extra, results="r"):
    return run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_c", "--data-root", data_root, "--results", tmp_path / results,
                     "--workers", 0, "--batch-size", 16, *extra)


def exported(run_bench, tmp_path, results="r"):
    return json.loads(run_bench("export", "--results", tmp_path / results)[1])


def _rows(record):
    return [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]


@pytest.mark.parametrize("layout", ["corruption_folders", "category_folders"])
def test_released_imagenet_c_equals_an_independent_recomputation(layout, run_bench, cards, data_root, tmp_path):
    import torchmetrics

    make_imagenet_c(data_root / "ImageNet-C", layout)
    code, out, err = run_c(run_bench, tmp_path, data_root, "--set", "clean=run")
    assert code == 0, err
    assert "err@fog-3" not in out and "finer-grained metrics" in out  # the per-cell metrics stay in the record
    (record,) = exported(run_bench, tmp_path)
    m = record["metrics"]
    assert record["details"]["layout"] == layout and record["details"]["source"] == "released"
    # mCE and the mean error from the per-image errors bench check's cluster bootstrap resamples, the clean split's four too
    assert assert_stats_reproduce(record) == 6 and all(r["source"].count("/") == 1 for r in _rows(record) if r["split"] == "corrupted")
    assert set(record["details"]["timing"]) == {"clean", "corrupted"}  # every corruption folder in one pass, one loader
    n_c = len(ALL_CORRUPTIONS) * 5 * NUM_CLASSES
    assert record["n_samples"] == {"total": n_c, "evaluated": n_c}
    model = load_tiny(cards["tiny_a"])
    errors, logits, labels, correct = independent_errors(model, data_root / "ImageNet-C")
    for c in ALL_CORRUPTIONS:
        for s in range(1, 6):
            assert m[f"err@{c}-{s}"] == pytest.approx(errors[c][s])
    # the formula, written out: CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}; ALEXNET_ERR holds AlexNet's mean over severities
    ce = {c: sum(errors[c].values()) / (5 * ALEXNET_ERR[c]) for c in CORRUPTIONS}
    assert m["mce"] == pytest.approx(sum(ce.values()) / 15)
    assert m["extra_err"] == pytest.approx(np.mean([errors[c][s] for c in EXTRA_CORRUPTIONS for s in range(1, 6)]))
    assert m["mean_err"] == pytest.approx(np.mean([errors[c][s] for c in CORRUPTIONS for s in range(1, 6)]))
    # the clean pass: ImageFolder with the card's resize 64 + crop 56
    import torchvision
    from torchvision import transforms as T

    val = torchvision.datasets.ImageFolder(str(data_root / "imagenet" / "val"), T.Compose([T.Resize(64), T.CenterCrop(CROP), T.ToTensor(),
                                                                                            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]))
    with torch.no_grad():
        wrong = sum(int(model(x.unsqueeze(0)).argmax()) != y for x, y in val)
    clean = 100.0 * wrong / len(val)
    assert m["clean_err"] == pytest.approx(clean) == pytest.approx(m["clean_top1_err"])
    rel = {c: (sum(errors[c].values()) - 5 * clean) / (5 * 100 * (ALEXNET_ERR[c] - ALEXNET_CLEAN_ERR)) * 100 for c in CORRUPTIONS}
    assert m["relative_mce"] == pytest.approx(sum(rel.values()) / 15)
    # calibration over every corrupted image, against torchmetrics
    ece = torchmetrics.functional.classification.multiclass_calibration_error(torch.tensor(logits).softmax(1), torch.tensor(labels), NUM_CLASSES, n_bins=15, norm="l1")
    assert m["ece"] == pytest.approx(100 * float(ece), abs=1e-4)
    assert m["nll"] == pytest.approx(float(torch.nn.functional.cross_entropy(torch.tensor(logits, dtype=torch.float64), torch.tensor(labels))), rel=1e-6)
    assert_informative({c: errors[c][1] for c in CORRUPTIONS})
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    assert sum("corruption" in r for r in rows) == n_c


def test_clean_error_comes_from_the_stored_imagenet_cls_record(run_bench, cards, data_root, tmp_path):
    make_imagenet_c(data_root / "ImageNet-C", corruptions=CORRUPTIONS[:1], severities=(1,))
    assert run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0)[0] == 0
    code, _, err = run_c(run_bench, tmp_path, data_root, "--set", f"corruptions=[{CORRUPTIONS[0]}]", "--set", "severities=[1]")
    assert code == 0, err
    cls, c = exported(run_bench, tmp_path)
    assert c["details"]["clean"]["source"] == "stored imagenet_cls record" and c["details"]["clean"]["run_id"] == cls["run_id"]
    assert c["metrics"]["clean_err"] == cls["metrics"]["top1_err"]
    assert "mce" not in c["metrics"] and "relative_mce" not in c["metrics"]  # a partial set: no mCE, and the record says why
    assert any("no mCE" in n for n in c["details"]["notes"]) and any("no CE" in n for n in c["details"]["notes"])
    # without a stored record or ImageNet val: no relative mCE, with the reason
    shutil.rmtree(data_root / "imagenet")
    code, _, err = run_c(run_bench, tmp_path, data_root, "--set", f"corruptions=[{CORRUPTIONS[0]}]", "--set", "severities=[1]", results="r2")
    assert code == 0, err
    (c2,) = exported(run_bench, tmp_path, "r2")
    assert "clean_err" not in c2["metrics"] and "ImageNet val is not readable" in c2["details"]["clean"]["note"]


def _remove_severity(root):
    shutil.rmtree(root / "fog" / "3")


def _remove_class(root):
    shutil.rmtree(root / "snow" / "2" / WNIDS[4])


def _undecodable(root):
    next((root / "frost" / "4" / WNIDS[1]).iterdir()).write_bytes(b"not a jpeg")


def _wrong_size(root):
    path = next((root / "contrast" / "5" / WNIDS[2]).iterdir())
    Image.new("RGB", (64, 64)).save(path)


@pytest.mark.parametrize("damage, extra, message", [
    (lambda r: shutil.rmtree(r / "pixelate"), (), "lacks corruption folder(s) pixelate"),
    (_remove_severity, (), "severity folder"),
    (_remove_class, (), f"ImageNet-C snow/2 at"),
    (_undecodable, (), "cannot decode image"),
    (_wrong_size, (), "is 64x64, not 56x56"),
    (None, ("--set", "corruptions=[fog, smog]"), "corruptions takes a list of"),
    (None, ("--set", "severities=[0]"), "severities takes a list of"),
])
def test_bad_imagenet_c_is_one_line_and_stores_nothing(damage, extra, message, run_bench, cards, data_root, tmp_path):
    root = make_imagenet_c(data_root / "ImageNet-C", corruptions=("fog", "snow", "frost", "contrast", "pixelate"), per_class=1)
    if damage:
        damage(root)
    code, out, err = run_c(run_bench, tmp_path, data_root, "--set", "clean=none", *(extra or ("--set", "corruptions=[fog, snow, frost, contrast, pixelate]")))
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert exported(run_bench, tmp_path) == []


def test_a_missing_severity_names_the_folder(run_bench, cards, data_root, tmp_path):
    root = make_imagenet_c(data_root / "ImageNet-C", corruptions=("fog",))
    shutil.rmtree(root / "fog" / "3")
    code, _, err = run_c(run_bench, tmp_path, data_root, "--set", "corruptions=[fog]")
    assert code != 0 and f"{root / 'fog' / '3'} is missing" in err


def test_every_corruption_of_the_library_runs_and_is_seeded():
    from bench.data.corruption_cache import corrupt_to_jpeg

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    for name in ALL_CORRUPTIONS:
        for severity in (1, 5):
            data = corrupt_to_jpeg(image, name, severity, seed=7)
            import io

            out = np.asarray(Image.open(io.BytesIO(data)))
            assert out.shape == (64, 64, 3), name
            assert data == corrupt_to_jpeg(image, name, severity, seed=7), f"{name} is not reproducible from its seed"
        assert corrupt_to_jpeg(image, name, 1, 7) != corrupt_to_jpeg(image, name, 5, 7), f"{name}: severity changes nothing"


def test_generated_source_caches_resumes_and_refuses_another_library_version(run_bench, cards, data_root, tmp_path):
    args = ("--set", "source=generated", "--set", "corruptions=[gaussian_noise, glass_blur]", "--set", "severities=[1, 2]", "--set", "clean=run")
    code, _, err = run_c(run_bench, tmp_path, data_root, *args)
    assert code == 0, err
    (record,) = exported(run_bench, tmp_path)
    d = record["details"]
    assert d["source"] == "generated" and d["library"].startswith("imagecorruptions-imaug ") and d["pipeline"]["jpeg_quality"] == 85
    assert d["generation"] == {"written": 4 * 2 * NUM_CLASSES, "reused": 0}
    cache = Path(d["cache"])
    assert cache.is_relative_to(tmp_path / "cache" / "imagenet_c")
    manifest = json.loads((cache / "glass_blur" / "2" / ".generated.json").read_text())
    assert manifest["library"] == "imagecorruptions-imaug" and manifest["seed"] == 0 and manifest["images"] == 2 * NUM_CLASSES
    files = sorted(cache.rglob("*.JPEG"))
    assert len(files) == 4 * 2 * NUM_CLASSES and all(Image.open(f).size == (CROP, CROP) for f in files[:5])
    # the same images scored as a released folder would be: the metrics match an independent pass over the cache
    errors, *_ = independent_errors(load_tiny(cards["tiny_a"]), cache)
    assert record["metrics"]["err@glass_blur-2"] == pytest.approx(errors["glass_blur"][2])
    # resumable: an interrupted build (a missing image and manifest) is completed, nothing else rewritten
    before = {f: f.read_bytes() for f in files}
    files[0].unlink()
    (files[0].parents[1] / ".generated.json").unlink()
    code, _, err = run_c(run_bench, tmp_path, data_root, *args, "--force")
    assert code == 0, err
    (record,) = exported(run_bench, tmp_path)
    assert record["details"]["generation"] == {"written": 1, "reused": 2 * NUM_CLASSES - 1}
    assert {f: f.read_bytes() for f in files} == before  # seeded per image: the rewritten one is identical
    # a cache written by another version of the library is refused
    manifest["version"] = "0.0.1"
    (cache / "glass_blur" / "2" / ".generated.json").write_text(json.dumps(manifest))
    code, _, err = run_c(run_bench, tmp_path, data_root, *args, "--force", results="r3")
    assert code != 0 and "was written by imagecorruptions-imaug 0.0.1" in err and len(err.strip().splitlines()) == 1
    assert exported(run_bench, tmp_path, "r3") == []
    # and a generated cache is not taken for the released ImageNet-C
    code, _, err = run_c(run_bench, tmp_path, data_root, "--data-path", f"imagenet_c={cache}", "--set", "corruptions=[gaussian_noise]", results="r4")
    assert code != 0 and "generated by bench" in err and "--set source=generated" in err


def test_a_stored_clean_record_of_other_preprocessing_or_other_data_is_not_used(run_bench, cards, data_root, tmp_path):
    """clean=auto takes a stored imagenet_cls record only when it is the cell imagenet_cls would be
    now: the card's preprocessing (--resize keeps the card's name) and the ImageNet val on disk
    (a smaller copy of val scored without --limit is a complete record of other data)."""
    from conftest import make_val

    make_imagenet_c(data_root / "ImageNet-C", corruptions=CORRUPTIONS[:1], severities=(1,))
    one = ("--set", f"corruptions=[{CORRUPTIONS[0]}]", "--set", "severities=[1]")
    cls = ("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--workers", 0)
    # other preprocessing, same name and weights
    assert run_bench(*cls, "--data-root", data_root, "--results", tmp_path / "r", "--resize", 72)[0] == 0
    # a smaller copy of val (one image per class), complete as far as the store knows
    small = make_val(tmp_path / "small", per_class=1, seed=3)
    assert run_bench(*cls, "--data-root", small, "--results", tmp_path / "r")[0] == 0
    code, _, err = run_c(run_bench, tmp_path, data_root, *one)
    assert code == 0, err
    records = exported(run_bench, tmp_path)
    c = next(r for r in records if r["task"]["name"] == "imagenet_c")
    assert c["details"]["clean"]["source"] == "ImageNet val scored in this run"
    assert "not used" in c["details"]["clean"]["unused"] and "other data (12 images then, 24 now)" in c["details"]["clean"]["unused"]
    # the clean error is the card-preprocessing imagenet_cls on the full val
    assert run_bench(*cls, "--data-root", data_root, "--results", tmp_path / "r3")[0] == 0
    (full,) = exported(run_bench, tmp_path, "r3")
    assert c["metrics"]["clean_err"] == pytest.approx(full["metrics"]["top1_err"])
    # only the preprocessing differs: said so
    assert run_bench(*cls, "--data-root", data_root, "--results", tmp_path / "r5", "--resize", 72)[0] == 0
    shutil.copy(tmp_path / "r5" / "bench.sqlite", tmp_path / "r6.sqlite")
    (tmp_path / "r6").mkdir()
    shutil.move(tmp_path / "r6.sqlite", tmp_path / "r6" / "bench.sqlite")
    code, _, err = run_c(run_bench, tmp_path, data_root, *one, results="r6")
    assert code == 0, err
    c6 = next(r for r in exported(run_bench, tmp_path, "r6") if r["task"]["name"] == "imagenet_c")
    assert c6["details"]["clean"]["source"] == "ImageNet val scored in this run" and "other preprocessing" in c6["details"]["clean"]["unused"]
    # and the matching record is used once it exists
    assert run_bench(*cls, "--data-root", data_root, "--results", tmp_path / "r6")[0] == 0
    code, _, err = run_c(run_bench, tmp_path, data_root, *one, "--force", results="r6")
    assert code == 0, err
    c6 = next(r for r in exported(run_bench, tmp_path, "r6") if r["task"]["name"] == "imagenet_c")
    assert c6["details"]["clean"]["source"] == "stored imagenet_cls record" and "unused" not in c6["details"]["clean"]
