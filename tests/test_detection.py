"""voc_det tasks end to end on a tiny generated VOCdevkit: the metrics equal an independent
recomputation from the trained detector, training resumes to the same weights, a diverging loss
stops with the last checkpoint kept, and a second process cannot train the same stage."""

from __future__ import annotations

import fcntl
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data.voc import CLASSES, read_voc
from bench.mini.digits import make_detection_scenes
from bench.mini.layouts import write_voc
from bench.mini.model import mini_resnet
from conftest import assert_informative, save_cutmix_format, assert_stats_reproduce
from det_oracle import plan_detections, use_fixed_detector
from voc_reference import classic_ap

TINY = ["iterations=4", "checkpoint_every=2", "batch_size=4", "warmup_iters=2"]


def tiny_voc(seed=3):
    """year -> (ids, images, objects, splits) of a tiny devkit; objects as the generator records them."""
    years = {}
    for year, (trainval, test) in {"2007": (10, 8), "2012": (6, 0)}.items():
        scenes = make_detection_scenes("train", trainval, seed + int(year))
        images, objects = list(scenes.images), list(scenes.objects)
        if test:
            t = make_detection_scenes("val", test, seed)
            images += list(t.images)
            objects += t.objects
        ids = [f"{year}_{i:06d}" for i in range(trainval + test)]
        years[year] = (ids, images, objects, {"trainval": ids[:trainval]} | ({"test": ids[trainval:]} if test else {}))
    return years


def write_tiny_voc(root, seed=3):
    for year, (ids, images, objects, splits) in tiny_voc(seed).items():
        write_voc(root / "VOCdevkit", year, ids, images, objects, splits, CLASSES)
    return root


def tiny_voc_test(seed=3):
    """(ids, objects) of the tiny devkit's 2007 test split, from the generator's records."""
    ids, _, objects, splits = tiny_voc(seed)["2007"]
    keep = [k for k, i in enumerate(ids) if i in set(splits["test"])]
    return [ids[k] for k in keep], [objects[k] for k in keep]


def expected_voc07(objects, planned):
    """VOC07 and area mAP of planned detections against the generator's objects, by the classic loop
    (VOC's 1-based corners: the generator's 0-based inclusive box + 1)."""
    gt = [(np.array([[x0 + 1, y0 + 1, x1 + 1, y1 + 1] for _, x0, y0, x1, y1, _ in objs], float).reshape(-1, 4),
           np.array([o[0] for o in objs], int), np.array([o[5] for o in objs], bool)) for objs in objects]
    rows = [(k, *d) for k, dets in enumerate(planned) for d in dets]
    args = (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), np.array([r[3:] for r in rows], float))
    mean = lambda aps: float(np.mean([100 * a for a in aps if not math.isnan(a)]))
    return mean(classic_ap(gt, *args, 20, use_07=True)), mean(classic_ap(gt, *args, 20, use_07=False))


def sample_rows(ids, planned, kind):
    return [{"detector": kind, "id": i, "detections": [[CLASSES[c], round(s, 5), x1, y1, x2, y2] for c, s, x1, y1, x2, y2 in dets]} for i, dets in zip(ids, planned)]


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


def write_learnable_voc(root, n=8, seed=5):
    """A devkit a few dozen iterations can learn: one class (every digit is an 'aeroplane'), and
    the test split shows the trainval scenes again, so that the trained detectors score hits."""
    scenes = make_detection_scenes("train", n, seed)
    objects = [[(0, *o[1:5], False) for o in objs] for objs in scenes.objects]
    ids = [f"2007_{i:06d}" for i in range(2 * n)]
    write_voc(root / "VOCdevkit", "2007", ids, list(scenes.images) * 2, objects * 2, {"trainval": ids[:n], "test": ids[n:]}, CLASSES)
    ids12 = [f"2012_{i:06d}" for i in range(n)]
    write_voc(root / "VOCdevkit", "2012", ids12, list(scenes.images), objects, {"trainval": ids12}, CLASSES)
    return root


# settings under which the mini detectors learn the learnable devkit (about 15 s each on 2 cores)
LEARN = {"frcnn": ["iterations=80", "lr=0.02", "steps=[80]", "checkpoint_every=80"], "ssd": ["iterations=150", "lr=0.02", "steps=[150]", "checkpoint_every=150"]}


def learn_args(task, ckpt, root, results, extra=()):
    args = args_for(task, ckpt, root, results)
    for kind, settings in LEARN.items():
        if task in ("voc_det", f"voc_det_{kind}"):
            for setting in settings:
                args += ["--set", (f"{kind}." if task == "voc_det" else "") + setting]
    for setting in extra:  # last: they win
        args += ["--set", setting]
    return args


def recomputed(kind, stage_dir, test, batch_size=4):
    """VOC07 mAP and the number of detections of a trained stage, recomputed: the detector built
    straight from torchvision (tests/det_reference.py), weights loaded strictly, classic to_tensor
    input at the run's batch size, GT from the XML files as written, the classic loop."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from det_reference import load_reference

    model = load_reference(kind, mini_resnet(10), f"{stage_dir}/detector.pt")
    rows = []
    with torch.no_grad():
        for start in range(0, len(test.images), batch_size):
            chunk = test.images[start:start + batch_size]
            outs = model([to_tensor(Image.open(image.path).convert("RGB")) for image in chunk])
            for k, out in enumerate(outs, start=start):
                for b, c, s in zip(out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist()):
                    rows.append((k, c - 1, s, [b[0] + 1, b[1] + 1, b[2], b[3]]))
    ref = classic_ap([(i.boxes, i.labels, i.difficult) for i in test.images], np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                     np.array([r[2] for r in rows]), np.array([r[3] for r in rows]).reshape(-1, 4), 20)
    return float(np.mean([100 * a for a in ref if not math.isnan(a)])), len(rows)


@pytest.mark.parametrize("task", ["voc_det_frcnn", "voc_det"])
def test_task_evaluation_scores_fixed_detections_exactly(run_bench, voc_root, mini_ckpt, tmp_path, monkeypatch, task):
    """The task's evaluation (loader, frame and label conversion, gather, scoring, samples file) on a
    detector whose outputs are planned from the generator's records: jittered GT boxes, wrong
    classes, duplicates, misses and background boxes. The metrics equal the classic loop on the
    planned detections and every per-image row is exactly the planned one."""
    ids, objects = tiny_voc_test()
    planned = plan_detections(objects)
    (tmp_path / "planned.json").write_text(json.dumps(dict(zip(ids, planned))))
    use_fixed_detector(tmp_path / "planned.json", monkeypatch.setattr)
    code, _, err = run_bench(*args_for(task, mini_ckpt, voc_root, tmp_path / "r"))
    assert code == 0, err
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    assert assert_stats_reproduce(record) == (4 if task == "voc_det" else 2)  # mAP from the per-detection flags bench check reweights
    voc07, area = expected_voc07(objects, planned)
    assert 0 < voc07 < 100 and 0 < area < 100
    kinds = ("frcnn", "ssd") if task == "voc_det" else ("frcnn",)
    prefix = {k: f"{k}_" if task == "voc_det" else "" for k in kinds}
    for kind in kinds:
        assert record["metrics"][prefix[kind] + "map_voc07"] == pytest.approx(voc07, abs=1e-9)
        assert record["metrics"][prefix[kind] + "map_area"] == pytest.approx(area, abs=1e-9)
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    assert [{k: r[k] for k in ("detector", "id", "detections")} for r in rows] == [r for kind in kinds for r in sample_rows(ids, planned, kind)]
    assert all(r["split"] == r["detector"] and len(r["flags"]) == len(r["detections"]) for r in rows)
    assert_informative(record["metrics"])


def test_voc_det_metrics_equal_an_independent_recomputation(run_bench, tmp_path, mini_ckpt):
    root = write_learnable_voc(tmp_path / "data")
    code, out, err = run_bench(*learn_args("voc_det", mini_ckpt, root, tmp_path / "r"))
    assert code == 0, err
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    assert set(record["metrics"]) == {f"{k}_{m}" for k in ("frcnn", "ssd") for m in ("map_voc07", "map_area", "coco_ap", "coco_ap50", "coco_ap75")}
    test = read_voc(root / "VOCdevkit", [("2007", "test")])
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    for kind in ("frcnn", "ssd"):
        info = record["details"][kind]["train"]
        assert info["train_images"] == 16 and not info["cached"] and record["details"][kind]["train_set"] == "07 trainval+12 trainval"
        assert info["precision"] == "fp32" and record["task"]["config"][kind]["amp"] is False  # AMP is off unless asked, and recorded
        expected, n_dets = recomputed(kind, info["stage_dir"], test)
        assert 0 < record["metrics"][f"{kind}_map_voc07"] < 100 and n_dets > 0
        assert record["metrics"][f"{kind}_map_voc07"] == pytest.approx(expected, abs=1e-9)
        assert sum(len(r["detections"]) for r in rows if r["detector"] == kind) == n_dets
    assert assert_stats_reproduce(record) == 4  # trained detectors: mAP (11-point, area) from the flags bench check reweights
    assert_informative(record["metrics"])
    # the single-detector task shares the trained stage
    code, _, err = run_bench(*learn_args("voc_det_ssd", mini_ckpt, root, tmp_path / "r2"))
    assert code == 0, err
    single = json.loads(run_bench("export", "--results", tmp_path / "r2")[1])[-1]
    assert single["details"]["ssd"]["train"]["cached"] and single["metrics"]["map_voc07"] == record["metrics"]["ssd_map_voc07"]


def test_fpn_design_and_trainable_batchnorm(run_bench, tmp_path, mini_ckpt):
    root = write_learnable_voc(tmp_path / "data")
    code, _, err = run_bench(*learn_args("voc_det_frcnn", mini_ckpt, root, tmp_path / "r", extra=["design=fpn", "freeze_bn=false", "lr=0.005", "warmup_iters=10", "iterations=40", "steps=[40]", "checkpoint_every=40"]))
    assert code == 0, err
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    test = read_voc(root / "VOCdevkit", [("2007", "test")])
    expected, n_dets = recomputed("fpn", record["details"]["frcnn"]["train"]["stage_dir"], test)
    assert 0 < record["metrics"]["map_voc07"] < 100 and n_dets > 0
    assert record["metrics"]["map_voc07"] == pytest.approx(expected, abs=1e-9)
    assert_informative(record["metrics"])


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
    errors = [line for line in err.splitlines() if line.startswith("bench: error")]
    assert code == 2 and "detector training diverged at iteration" in err and len(errors) == 1
    assert err.startswith("bench: train detector: 4 iterations of batch 4 (16 images) on 16 training images\n")  # said before the first step
    assert sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_divergence_keeps_the_last_checkpoint_and_a_rerun_resumes_there(voc_root, tmp_path):
    """Losses become NaN from the 4th iteration on (a forward hook), with a checkpoint after every
    iteration: the run stops naming iteration 4, iteration 3's checkpoint is kept, and a rerun
    (without the fault) resumes from iteration 3."""
    from bench.detection.train import Schedule, train_detector
    from bench.errors import BenchError

    sched = Schedule(iterations=6, batch_size=4, lr=0.01, steps=(5,), warmup_iters=2, checkpoint_every=1)
    model, calls = _ssd(), [0]

    def poison(module, inputs, losses):
        calls[0] += 1
        return {k: v * float("nan") for k, v in losses.items()} if calls[0] >= 4 else None

    hook = model.register_forward_hook(poison)
    with pytest.raises(BenchError) as err:
        train_detector(model, _dataset(voc_root, "ssd"), sched, tmp_path / "s", "cpu", progress=False)
    hook.remove()
    assert "diverged at iteration 4" in err.value.message and f"the last good checkpoint (iteration 3) is kept in {tmp_path / 's'}" in err.value.message
    assert torch.load(tmp_path / "s" / "state.pt", weights_only=True)["iteration"] == 3 and not (tmp_path / "s" / "detector.pt").exists()
    info = train_detector(_ssd(), _dataset(voc_root, "ssd"), sched, tmp_path / "s", "cpu", progress=False)
    assert info["resumed_from_iteration"] == 3 and [h[0] for h in info["loss_history"]] == [1, 2, 3, 4, 5, 6]


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
