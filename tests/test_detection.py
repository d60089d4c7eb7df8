"""voc_det tasks end to end on a tiny generated VOCdevkit: the metrics equal an independent
recomputation from the trained detector, training resumes to the same weights, a diverging loss
stops with the last checkpoint kept, and a second process cannot train the same stage."""

from __future__ import annotations

import fcntl
import json
import math
import sqlite3

import numpy as np
import pytest
import torch

from bench.data.voc import CLASSES, read_voc
from bench.mini.digits import make_detection_scenes
from bench.mini.layouts import write_voc
from bench.mini.model import mini_resnet
from conftest import save_cutmix_format
from voc_reference import classic_ap

TINY = ["iterations=4", "checkpoint_every=2", "batch_size=4", "warmup_iters=2"]


def write_tiny_voc(root, seed=3):
    for year, (trainval, test) in {"2007": (10, 8), "2012": (6, 0)}.items():
        scenes = make_detection_scenes("train", trainval, seed + int(year))
        images, objects = list(scenes.images), list(scenes.objects)
        if test:
            t = make_detection_scenes("val", test, seed)
            images += list(t.images)
            objects += t.objects
        ids = [f"{year}_{i:06d}" for i in range(trainval + test)]
        splits = {"trainval": ids[:trainval]} | ({"test": ids[trainval:]} if test else {})
        write_voc(root / "VOCdevkit", year, ids, images, objects, splits, CLASSES)
    return root


@pytest.fixture
def voc_root(tmp_path):
    return write_tiny_voc(tmp_path / "data")


@pytest.fixture
def mini_ckpt(tmp_path):
    torch.manual_seed(0)
    return save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")


def args_for(task, ckpt, root, results, extra=()):
    args = ["run", "--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", task, "--mini",
            "--data-root", root, "--results", results, "--workers", "0", "--batch-size", "4"]
    prefix = ("frcnn.", "ssd.") if task == "voc_det" else ("",)
    for s in TINY:
        for p in prefix:
            args += ["--set", p + s]
    for s in extra:
        args += ["--set", s]
    return args


def recomputed_map(info, kind, cfg, test):
    """VOC07 mAP of a trained stage, recomputed: classic torchvision to_tensor input, one image at a
    time, the classic per-detection loop."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from bench.detection.models import build_detector

    model = build_detector(kind, mini_resnet(10), 20, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], cfg)
    model.load_state_dict(torch.load(f"{info['stage_dir']}/detector.pt", weights_only=True)["model"])
    model.eval()
    rows = []
    with torch.no_grad():
        for k, image in enumerate(test.images):
            out = model([to_tensor(Image.open(image.path).convert("RGB"))])[0]
            for b, c, s in zip(out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist()):
                rows.append((k, c - 1, s, [b[0] + 1, b[1] + 1, b[2], b[3]]))
    ref = classic_ap([(i.boxes, i.labels, i.difficult) for i in test.images], np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                     np.array([r[2] for r in rows]), np.array([r[3] for r in rows]).reshape(-1, 4), 20)
    return float(np.mean([100 * a for a in ref if not math.isnan(a)]))


def test_voc_det_metrics_equal_an_independent_recomputation(run_bench, voc_root, mini_ckpt, tmp_path):
    code, out, err = run_bench(*args_for("voc_det", mini_ckpt, voc_root, tmp_path / "r"))
    assert code == 0, err
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    assert set(record["metrics"]) == {f"{k}_{m}" for k in ("frcnn", "ssd") for m in ("map_voc07", "map_area", "coco_ap", "coco_ap50", "coco_ap75")}
    test = read_voc(voc_root / "VOCdevkit", [("2007", "test")])
    for kind in ("frcnn", "ssd"):
        info = record["details"][kind]["train"]
        assert info["train_images"] == 16 and not info["cached"] and record["details"][kind]["train_set"] == "07 trainval+12 trainval"
        assert record["metrics"][f"{kind}_map_voc07"] == pytest.approx(recomputed_map(info, kind, record["task"]["config"][kind], test), abs=1e-9)
    # the single-detector task shares the trained stage
    code, _, err = run_bench(*args_for("voc_det_ssd", mini_ckpt, voc_root, tmp_path / "r2"))
    assert code == 0, err
    single = json.loads(run_bench("export", "--results", tmp_path / "r2")[1])[-1]
    assert single["details"]["ssd"]["train"]["cached"] and single["metrics"]["map_voc07"] == record["metrics"]["ssd_map_voc07"]


def test_fpn_design_and_trainable_batchnorm(run_bench, voc_root, mini_ckpt, tmp_path):
    code, _, err = run_bench(*args_for("voc_det_frcnn", mini_ckpt, voc_root, tmp_path / "r", extra=["design=fpn", "freeze_bn=false"]))
    assert code == 0, err
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    test = read_voc(voc_root / "VOCdevkit", [("2007", "test")])
    info = record["details"]["frcnn"]["train"]
    assert record["metrics"]["map_voc07"] == pytest.approx(recomputed_map(info, "frcnn", record["task"]["config"], test), abs=1e-9)


def test_batchnorm_and_early_stages_are_frozen_with_the_checkpoint_statistics():
    from torchvision.ops.misc import FrozenBatchNorm2d

    from bench.detection.models import build_detector
    from tasks.detection import FRCNN

    torch.manual_seed(0)
    net = mini_resnet(10)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    reference = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = {**FRCNN, "min_size": 96, "max_size": 96, "anchor_sizes": [16, 32, 64]}
    model = build_detector("frcnn", net, 20, [0.5] * 3, [0.25] * 3, cfg)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert bns and all(isinstance(m, FrozenBatchNorm2d) for m in bns)
    body = model.backbone
    assert torch.equal(body.stem[1].running_mean, reference["bn1.running_mean"]) and torch.equal(body.layer2[0].conv1.weight, reference["layer2.0.conv1.weight"])
    assert not any(p.requires_grad for p in body.stem.parameters()) and not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters()) and model.transform.image_mean == [0.5] * 3
    unfrozen = build_detector("frcnn", mini_resnet(10), 20, [0.5] * 3, [0.25] * 3, {**cfg, "freeze_bn": False})
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unfrozen.modules())


def _dataset(voc_root, kind):
    from tasks.detection import VocTrainSet

    train = read_voc(voc_root / "VOCdevkit", [("2007", "trainval"), ("2012", "trainval")])
    return VocTrainSet(train.images, kind, False)


def _ssd():
    from bench.detection.models import ssd

    torch.manual_seed(0)
    return ssd(mini_resnet(10), 20, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], size=96)


def test_interrupted_training_resumes_to_the_same_weights(voc_root, tmp_path):
    from bench.detection.train import Schedule, train_detector

    sched = Schedule(iterations=6, batch_size=4, lr=0.01, steps=(4,), warmup_iters=2, checkpoint_every=2)
    whole = _ssd()
    train_detector(whole, _dataset(voc_root, "ssd"), sched, tmp_path / "a", "cpu", progress=False)

    def interrupt(done):
        if done == 4:
            raise KeyboardInterrupt

    cut = _ssd()
    with pytest.raises(KeyboardInterrupt):
        train_detector(cut, _dataset(voc_root, "ssd"), sched, tmp_path / "b", "cpu", progress=False, on_checkpoint=interrupt)
    assert not (tmp_path / "b" / "detector.pt").exists()
    resumed = _ssd()
    info = train_detector(resumed, _dataset(voc_root, "ssd"), sched, tmp_path / "b", "cpu", progress=False)
    assert info["resumed_from_iteration"] == 4
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_diverging_loss_stops_and_keeps_the_last_checkpoint(run_bench, voc_root, mini_ckpt, tmp_path):
    code, _, err = run_bench(*args_for("voc_det_ssd", mini_ckpt, voc_root, tmp_path / "r", extra=["lr=1e12", "warmup_iters=0"]))
    assert code == 2 and "detector training diverged at iteration" in err and len(err.strip().splitlines()) == 1
    assert sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_a_second_process_cannot_train_the_same_stage(voc_root, tmp_path):
    from bench.detection.train import Schedule, train_detector
    from bench.errors import BenchError

    stage = tmp_path / "stage"
    stage.mkdir()
    with open(stage / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        with pytest.raises(BenchError, match="another bench process \\(pid 4242\\) is training this detector"):
            train_detector(_ssd(), _dataset(voc_root, "ssd"), Schedule(2, 4, 0.01, (1,)), stage, "cpu", progress=False)
    assert not (stage / "state.pt").exists() and not (stage / "detector.pt").exists()
