"""cub_loc / imagenet_loc end to end on digit scenes in the real layouts, checked against an
independent recomputation: torchvision's classic PIL transforms, a hand-written CAM, scipy's
connected components (paper protocol) and the naive one-findContours-per-threshold loop
(wsolevaluation protocol)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from bench.mini.digits import make_scenes
from bench.mini.layouts import write_cub, write_imagenet_train, write_imagenet_val, write_imagenet_val_xml
from bench.mini.model import mini_resnet
from conftest import assert_informative, save_cutmix_format
from test_metrics_loc import scipy_box
from test_metrics_wsol import naive_accuracies

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SETTINGS = ["epochs=1", "batch_size=16", "step=1", "resize=73", "crop=64", "wsoleval_size=64", "interval=0.05"]
WNIDS = [f"n{d:08d}" for d in range(10)]


@pytest.fixture
def scenes():
    train, val = make_scenes("train", 48, seed=1), make_scenes("val", 30, seed=1)
    assert set(val.labels) == set(range(10))  # the ImageNet reader wants every class in val
    return train, val


def write_mini_cub(root, train, val):
    """Digit scenes in CUB_200_2011's layout under root: train scenes flagged train, val as test."""
    images = np.concatenate([train.images, val.images])
    labels = np.concatenate([train.labels, val.labels])
    boxes = [tuple(b) for b in np.concatenate([train.boxes, val.boxes])]
    write_cub(root / "CUB_200_2011", images, labels, boxes, [True] * len(train.labels) + [False] * len(val.labels), [f"D{d}" for d in range(10)])
    return root


@pytest.fixture
def cub_root(tmp_path, scenes):
    return write_mini_cub(tmp_path / "data", *scenes)


@pytest.fixture
def mini_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")


def run_loc(run_bench, root, ckpt, results, task="cub_loc", extra=()):
    args = ["run", "--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", task,
            "--data-root", root, "--results", results, "--workers", "0", "--batch-size", "8"]
    for s in list(SETTINGS) + list(extra):
        args += ["--set", s]
    code, out, err = run_bench(*args)
    assert code == 0, err
    code, out, _ = run_bench("export", "--results", results)
    return json.loads(out)[-1]


def reference(model, paths, targets, gt_boxes_of, resize, crop, size, interval, batch_size=8):
    """Metrics recomputed without bench's task code. The network runs on batches of the run's size
    in the run's order: convolutions need not give bit-identical results at another batch size, and
    the wsoleval protocol's uint8 truncation would turn such a last-bit difference into a different
    map; everything after the forward pass is per image."""
    norm = transforms.Normalize(MEAN, STD)
    paper_tf = transforms.Compose([transforms.Resize((resize, resize)), transforms.CenterCrop(crop), transforms.ToTensor(), norm])
    wsol_tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), norm])
    body = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3, model.layer4)
    images = [Image.open(path).convert("RGB") for path in paths]

    def forward(tf):
        """(logits, layer4 features) per image, computed in batches of batch_size."""
        out = []
        for start in range(0, len(images), batch_size):
            x = torch.stack([tf(img) for img in images[start:start + batch_size]])
            out += list(zip(model(x), body(x)))
        return out

    def cam_map(feats, cls, out):
        cam = (model.fc.weight[cls][:, None, None] * feats).mean(0).numpy().astype(np.float64)  # wsolevaluation's t2n
        cam = cv2.resize(cam, (out, out), interpolation=cv2.INTER_CUBIC)
        if np.isnan(cam).any() or cam.max() == cam.min():
            return np.zeros_like(cam)
        return (cam - cam.min()) / (cam - cam.min()).max()

    top1 = gtk = wrong = 0
    maps, gts = [], []
    with torch.no_grad():
        for path, target, img, (logits, feats), (_, wsol_feats) in zip(paths, targets, images, forward(paper_tf), forward(wsol_tf)):
            w, h = img.size
            pred = int(logits.argmax())
            off = int(round((resize - crop) / 2))
            gt = np.array([[min(max(int(v * resize / d) - off, 0), crop - 1) for v, d in zip(b, (w, h, w, h))] for b in gt_boxes_of(path)])

            def hit(box):
                if box is None:
                    return False
                x0, y0, x1, y1 = box
                best = 0.0
                for g in gt:
                    iw = max(0, min(x1, g[2]) - max(x0, g[0]) + 1)
                    ih = max(0, min(y1, g[3]) - max(y0, g[1]) + 1)
                    union = (x1 - x0 + 1) * (y1 - y0 + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - iw * ih
                    best = max(best, iw * ih / union)
                return best > 0.5

            top1 += pred == target and hit(scipy_box(cam_map(feats, pred, crop), 0.15))
            gtk += hit(scipy_box(cam_map(feats, target, crop), 0.15))
            wrong += pred != target
            maps.append(cam_map(wsol_feats, target, size))
            gts.append([[int(v * size / d) for v, d in zip(b, (w, h, w, h))] for b in gt_boxes_of(path)])
    n = len(paths)
    v2 = naive_accuracies(maps, gts, interval, (30, 50, 70), True)
    v1 = naive_accuracies(maps, gts, interval, (50,), False)
    best = {t: v2[t].max() * 100.0 / n for t in (30, 50, 70)}
    return {"top1_loc": 100.0 * top1 / n, "gt_known_loc": 100.0 * gtk / n, "top1_err": 100.0 * wrong / n,
            "maxboxacc": v1[50].max() * 100.0 / n, "maxboxacc_v2": float(np.mean(list(best.values()))),
            **{f"maxboxacc@{t}": best[t] for t in (30, 50, 70)}}


def paper_reference(model, val, resize, crop, threshold=0.15):
    """The paper protocol recomputed by hand on the images' files, with the GT boxes from the
    generator's records (0-based inclusive): top-1 Loc, GT-known Loc, top-1 error, and per image
    (predicted class, IoU of its CAM's box, IoU of the true class's CAM's box, the two hits)."""
    tf = transforms.Compose([transforms.Resize((resize, resize)), transforms.CenterCrop(crop), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    off = int(round((resize - crop) / 2))

    def cam_box(feats, cls):
        cam = (model.fc.weight[cls][:, None, None] * feats).mean(0).numpy().astype(np.float64)
        cam = cv2.resize(cam, (crop, crop), interpolation=cv2.INTER_CUBIC)
        if cam.max() == cam.min():
            return None
        return scipy_box((cam - cam.min()) / (cam.max() - cam.min()), threshold)

    def iou(box, gt):
        if box is None:
            return 0.0
        iw = max(0, min(box[2], gt[2]) - max(box[0], gt[0]) + 1)
        ih = max(0, min(box[3], gt[3]) - max(box[1], gt[1]) + 1)
        union = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1) - iw * ih
        return iw * ih / union

    rows = []
    with torch.no_grad():
        for path, target, (x0, y0, x1, y1) in zip(val.paths, val.labels, val.boxes):
            img = Image.open(path).convert("RGB")
            w, h = img.size
            x = tf(img)[None]
            pred = int(model(x).argmax())
            feats = model.layer4(x)[0]
            gt = [min(max(int(v * resize / d) - off, 0), crop - 1) for v, d in zip((x0, y0, x1, y1), (w, h, w, h))]
            iou_pred, iou_true = iou(cam_box(feats, pred), gt), iou(cam_box(feats, int(target)), gt)
            rows.append((pred, round(iou_pred, 4), round(iou_true, 4), pred == target and iou_pred > 0.5, iou_true > 0.5))
    n = len(rows)
    return {"top1_loc": 100.0 * sum(r[3] for r in rows) / n, "gt_known_loc": 100.0 * sum(r[4] for r in rows) / n,
            "top1_err": 100.0 * sum(r[0] != t for r, t in zip(rows, val.labels)) / n}, rows


def finetuned(record):
    model = mini_resnet(10)
    state = torch.load(f"{record['details']['finetune']['stage_dir']}/finetuned.pt", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval()


def test_cub_loc_matches_independent_recomputation(run_bench, cub_root, mini_checkpoint, tmp_path, scenes):
    from bench.data.cub import read_cub

    record = run_loc(run_bench, cub_root, mini_checkpoint, tmp_path / "results")
    assert record["n_samples"] == {"total": 30, "evaluated": 30}
    assert record["details"]["finetune"]["train_images"] == 48 and not record["details"]["finetune"]["cached"]
    test = read_cub(cub_root / "CUB_200_2011", "test")
    train, val = scenes
    # GT boxes from the generator's records: image n of the CUB files is val scene n - 48 - 1
    box_of = lambda p: [tuple(val.boxes[int(p.stem.rsplit("_", 1)[1]) - len(train.labels) - 1])]
    expected = reference(finetuned(record), test.images, [int(t) for t in val.labels], box_of, 73, 64, 64, 0.05)
    assert record["metrics"] == pytest.approx(expected, abs=1e-9)
    assert_informative(record["metrics"])
    assert 0 < record["metrics"]["maxboxacc@30"]  # a degenerate all-zero case would prove little

    code, out, _ = run_bench("report", "--results", tmp_path / "results")
    assert code == 0 and "note: MaxBoxAcc / MaxBoxAccV2 of cub_loc come from the CutMix paper's fine-tuning" in out and "CUB 63.0, ImageNet 63.7" in out

    # the fine-tuned classifier is a cached stage: other evaluation settings reuse it
    again = run_loc(run_bench, cub_root, mini_checkpoint, tmp_path / "results2", extra=["interval=0.1"])
    assert again["details"]["finetune"]["cached"] and again["details"]["finetune"]["stage_dir"] == record["details"]["finetune"]["stage_dir"]
    assert again["metrics"]["top1_loc"] == record["metrics"]["top1_loc"]

    # the CAM figure: one row per backbone, the predicted (green or orange) and GT (red) boxes drawn
    code, out, err = run_bench("report", "--results", tmp_path / "results", "--figure", "cam", "--tasks", "cub_loc",
                               "--data-root", cub_root, "--images", "4", "--output", tmp_path / "cam.png")
    assert code == 0, err
    assert "wrote" in out and "1 backbones x 4 images" in out
    png = np.asarray(Image.open(tmp_path / "cam.png").convert("RGB")).reshape(-1, 3).astype(int)
    assert ((png[:, 0] > 200) & (png[:, 1] < 60) & (png[:, 2] < 60)).sum() > 50  # red GT boxes
    code, _, err = run_bench("report", "--results", tmp_path / "results", "--figure", "cam", "--tasks", "cub_loc", "--data-root", cub_root, "--images", "0")
    assert code == 2 and "--images must be at least 1" in err


def test_imagenet_loc_uses_every_box(run_bench, tmp_path, scenes, mini_checkpoint):
    train, val = scenes
    root = tmp_path / "data"
    write_imagenet_train(root / "imagenet", train.images, train.labels, WNIDS)
    write_imagenet_val(root / "imagenet", val.images, val.labels, WNIDS, "class_folders")
    # a second, decoy box per image: the metrics take the best GT box
    boxes = [[tuple(b), (0, 0, 5, 5)] for b in val.boxes]
    write_imagenet_val_xml(root / "imagenet", [(64, 64)] * len(val.labels), val.labels, WNIDS, boxes)
    record = run_loc(run_bench, root, mini_checkpoint, tmp_path / "results", task="imagenet_loc")
    from bench.data.imagenet import read_imagenet_val, read_val_box_table

    split = read_imagenet_val(root / "imagenet")
    table = read_val_box_table(root / "imagenet")
    assert all(len(table[p.stem]) == 2 for p in split.images)
    # GT boxes and labels from the generator's records: ILSVRC2012_val_<n> is val scene n - 1
    scene = lambda p: int(p.stem.rsplit("_", 1)[1]) - 1
    expected = reference(finetuned(record), split.images, [int(val.labels[scene(p)]) for p in split.images],
                         lambda p: [tuple(val.boxes[scene(p)]), (0, 0, 5, 5)], 73, 64, 64, 0.05)
    assert record["metrics"] == pytest.approx(expected, abs=1e-9)
    assert_informative(record["metrics"])


def test_finetuning_resumes_to_the_same_weights(tmp_path, cub_root, monkeypatch):
    import bench.finetune as ft
    from bench.data.cub import read_cub
    from bench.data.images import Normalizer
    from bench.cards import Preprocessing
    from bench.data.images import ImageList
    from tasks.localization import train_transform

    train = read_cub(cub_root / "CUB_200_2011", "train")
    dataset = ImageList(train.images, train.targets, train_transform(73, 64))
    cfg = ft.FinetuneConfig(epochs=2, batch_size=16, lr_head=0.01, lr_body=0.001, step=1)
    prepare = Normalizer(Preprocessing(), "cpu")

    def fresh():
        torch.manual_seed(0)
        return mini_resnet(10)

    whole = fresh()
    ft.finetune(whole, "fc", dataset, cfg, tmp_path / "a", "cpu", prepare, progress=False)
    real_save, calls = ft.save_atomic, []

    def save_then_interrupt(obj, path):
        real_save(obj, path)
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "save_atomic", save_then_interrupt)
    interrupted = fresh()
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(interrupted, "fc", dataset, cfg, tmp_path / "b", "cpu", prepare, progress=False)
    assert (tmp_path / "b" / "state.pt").is_file() and not (tmp_path / "b" / "finetuned.pt").exists()
    resumed = fresh()
    info = ft.finetune(resumed, "fc", dataset, cfg, tmp_path / "b", "cpu", prepare, progress=False)
    assert info["resumed_from_epoch"] == 1
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_imagenet_image_without_box_is_named(run_bench, tmp_path, scenes, mini_checkpoint):
    train, val = scenes
    root = tmp_path / "data"
    write_imagenet_train(root / "imagenet", train.images, train.labels, WNIDS)
    write_imagenet_val(root / "imagenet", val.images, val.labels, WNIDS, "class_folders")
    write_imagenet_val_xml(root / "imagenet", [(64, 64)] * len(val.labels), val.labels, WNIDS, [[tuple(b)] for b in val.boxes])
    next((root / "imagenet/ILSVRC/Annotations/CLS-LOC/val").glob("*.xml")).unlink()
    code, _, err = run_bench("run", "--backbone", mini_checkpoint, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10",
                             "--task", "imagenet_loc", "--data-root", root, "--results", tmp_path / "r")
    assert code == 2 and err.startswith("bench: error: 1 ImageNet val image(s) have no box (e.g. ILSVRC2012_val_") and len(err.strip().splitlines()) == 1
    assert sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)


@pytest.mark.parametrize("setting,message", [
    ("protocols=[paper,nope]", "protocols takes a list of paper, wsoleval"),
    ("cam_method=magic", "cam_method takes one of cam, gradcam"),
    ("layer4_stride=3", "layer4_stride takes one of 1, 2"),
    ("crop=300", "crop 300 is larger than resize 73"),
    ("epochs=0", "epochs takes an integer in [1, inf)"),
    ("lr_head=-1", "lr_head takes a number in (0, inf)"),
])
def test_settings_that_make_no_sense(run_bench, cub_root, mini_checkpoint, tmp_path, setting, message):
    args = ["run", "--backbone", mini_checkpoint, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "cub_loc",
            "--data-root", cub_root, "--results", tmp_path / "r", "--workers", "0"]
    for s in SETTINGS + [setting]:
        args += ["--set", s]
    code, _, err = run_bench(*args)
    assert code == 2 and message in err, err


def test_training_says_its_size_and_an_estimate_first(run_bench, cub_root, mini_checkpoint, tmp_path, monkeypatch):
    """Case 9: a run without --mini started a 7-hour fine-tune with no word. Before the first step
    the stage's size, after the first steps an estimate, and without a terminal steady lines."""
    monkeypatch.setenv("BENCH_PROGRESS_INTERVAL", "0")
    args = ["run", "--backbone", mini_checkpoint, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "cub_loc",
            "--data-root", cub_root, "--results", tmp_path / "r", "--workers", "0", "--set", "batch_size=4", "--limit", "4"]
    for s in SETTINGS[:1] + SETTINGS[2:]:
        args += ["--set", s]
    code, _, err = run_bench(*args)
    lines = err.splitlines()
    assert code == 0 and lines[0] == "bench: fine-tune: 1 epochs x 12 steps = 12 steps of batch 4 on 48 training images (48 images)", err
    assert lines[1].startswith("bench: fine-tune: ~") and "left at" in lines[1] and "(timed over 5 steps)" in lines[1]
    steady = [line for line in lines if line.startswith("bench: fine-tune: step ")]
    assert [line.split()[3] for line in steady] == [f"{n}/12" for n in range(6, 12)] and "loss" in steady[0]
    assert lines[-1].startswith("bench: fine-tune: done, 12 steps in")
    code, _, err = run_bench(*args, "--quiet", "--force")  # --quiet: nothing (the stage is cached now anyway)
    assert code == 0 and err == ""


def test_grad_cam_is_relu_cam_on_a_gap_fc_network():
    """On GAP + linear networks Grad-CAM's channel weights are the classifier row / (h w), so the
    grad-cam package's map is min-max(ReLU(CAM)) resized bilinearly: check it, per image of a batch
    (one target per image: a single target would silently leave the others' maps empty)."""
    from bench.cam import CamComputer

    torch.manual_seed(0)
    model = mini_resnet(10).eval()
    x = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([1, 4, 7])
    computer = CamComputer(model, "layer4", "fc", "gradcam")
    try:
        logits, (maps,) = computer(x, [classes], (32, 32))
    finally:
        computer.close()
    body = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3, model.layer4)
    with torch.no_grad():
        feats = body(x)
        assert torch.allclose(logits, model(x), atol=1e-5)
    for j, c in enumerate(classes.tolist()):
        cam = np.maximum((model.fc.weight[c][:, None, None] * feats[j]).sum(0).detach().numpy(), 0)
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        expected = cv2.resize(cam, (32, 32))  # grad-cam resizes with cv2's default, bilinear
        expected = (expected - expected.min()) / (expected.max() - expected.min())
        assert maps[j].max() == 1.0 and np.abs(maps[j] - expected).max() < 1e-4, j


def test_box_outside_its_image_stops_before_training(run_bench, cub_root, mini_checkpoint, tmp_path):
    boxes = cub_root / "CUB_200_2011" / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    test_id = next(line.split()[0] for line in (cub_root / "CUB_200_2011" / "train_test_split.txt").read_text().splitlines() if line.split()[1] == "0")
    lines = [f"{test_id} 70.0 3.0 5.0 5.0" if line.split()[0] == test_id else line for line in lines]
    boxes.write_text("\n".join(lines) + "\n")
    args = ["run", "--backbone", mini_checkpoint, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "cub_loc",
            "--data-root", cub_root, "--results", tmp_path / "r", "--workers", "0"]
    for setting in SETTINGS:
        args += ["--set", setting]
    code, _, err = run_bench(*args)
    assert code == 2 and f"bench: error: image {test_id} (" in err and "has a box (70, 3, 75, 8) outside its 64x64 pixels" in err
    assert not (tmp_path / "cache" / "artifacts").exists()  # nothing trained


def known_cam_scenes(scenes):
    """The fixture's scenes relabelled so that the known-CAM classifier is right on some images and
    wrong on others: every class appears (the ImageNet reader wants them all), then 0, 5, 1, 6 in
    turn (0 and 5 are the two classes it predicts; 1 is an ink class and 6 a corner class it never does)."""
    train, val = scenes
    labels = np.array([*range(10), *([0, 5, 1, 6] * 10)][: len(val.labels)])
    return train, type(val)(val.images, labels, val.boxes)


@pytest.mark.parametrize("task", ["cub_loc", "imagenet_loc"])
def test_paper_protocol_hits_and_misses_with_a_known_cam(run_bench, tmp_path, scenes, monkeypatch, task):
    """The paper protocol end to end on a classifier whose CAMs are known (tests/known_cam.py), so that
    the choice of the predicted or true class's CAM, the boxes' mapping into the crop, the 0.15
    threshold and IoU > 0.5 all decide hits: per image, the IoUs equal a recomputation with GT boxes
    taken from the generator's own records, not from bench's readers."""
    import bench.finetune
    from known_cam import known_cam_net, set_known_head

    train, val = known_cam_scenes(scenes)
    root = tmp_path / "data"
    if task == "cub_loc":
        write_mini_cub(root, train, val)
    else:
        write_imagenet_train(root / "imagenet", train.images, train.labels, WNIDS)
        write_imagenet_val(root / "imagenet", val.images, val.labels, WNIDS, "class_folders")
        write_imagenet_val_xml(root / "imagenet", [(64, 64)] * len(val.labels), val.labels, WNIDS, [[tuple(b)] for b in val.boxes])

    def known_head(model, head, *args, **kwargs):  # instead of fine-tuning: the known classifier
        set_known_head(model.get_submodule(head))
        return {"train_images": len(train.labels), "cached": False, "stage_dir": str(tmp_path / "none")}

    monkeypatch.setattr(bench.finetune, "finetune", known_head)
    ckpt = save_cutmix_format(known_cam_net(), tmp_path / "known.pth.tar")
    args = ["run", "--backbone", ckpt, "--arch", "known_cam:known_cam_net", "--num-classes", "10", "--task", task, "--data-root", root,
            "--results", tmp_path / "r", "--workers", "0", "--batch-size", "8"]
    for s in SETTINGS:
        args += ["--set", s]
    code, _, err = run_bench(*args)
    assert code == 0, err
    record = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    m = record["metrics"]
    # where the generator wrote each val scene, and the id bench gives it
    if task == "cub_loc":
        ns = [len(train.labels) + k + 1 for k in range(len(val.labels))]
        ids = [str(n) for n in ns]
        paths = [root / "CUB_200_2011" / "images" / f"{c + 1:03d}.D{c}" / f"D{c}_{n:05d}.jpg" for n, c in zip(ns, val.labels)]
    else:
        ids = [f"ILSVRC2012_val_{k + 1:08d}" for k in range(len(val.labels))]
        paths = [root / "imagenet" / "val" / WNIDS[c] / f"{i}.JPEG" for i, c in zip(ids, val.labels)]
    files = type("Files", (), {"paths": paths, "labels": val.labels, "boxes": val.boxes})
    expected, per_image = paper_reference(known_cam_net(), files, 73, 64)
    assert {k: m[k] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert 0 < m["top1_loc"] < m["gt_known_loc"] < 100 and 0 < m["top1_err"] < 100
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    paper_rows = [r for r in rows if r["split"] == "paper"]
    assert {r["id"]: (r["pred"], r["iou"], r["gt_known_iou"], r["top1_loc"], r["gt_known_loc"]) for r in paper_rows} == dict(zip(ids, per_image))
    assert [r["top1_wrong"] for r in paper_rows] == [int(r["pred"] != r["target"]) for r in paper_rows]
    # the per-image hit runs that bench check resamples give back the stored MaxBoxAcc and MaxBoxAccV2 exactly
    from bench.checks.pairing import as_data

    wsol = [r for r in rows if r["split"] == "wsoleval"]
    assert sorted(r["id"] for r in wsol) == sorted(ids)
    ones = np.ones((1, len(wsol)), np.int32)
    from bench.stats.replicates import max_box_acc

    assert max_box_acc(as_data("maxboxacc", [[r["hits_v1"]] for r in wsol])[0], ones)[0] == m["maxboxacc"]
    assert max_box_acc(as_data("maxboxacc", [[r[f"hits@{t}"] for t in (30, 50, 70)] for r in wsol])[0], ones)[0] == pytest.approx(m["maxboxacc_v2"], abs=1e-12)
    assert_informative(m)


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    from bench.errors import BenchError
    from bench.finetune import FinetuneConfig, finetune

    with pytest.raises(BenchError, match="batch_size 8 does not split over 3 processes") as err:
        finetune(mini_resnet(10), "fc", [], FinetuneConfig(1, 8, 0.01, 0.001, 1), tmp_path / "s", "cpu", lambda x: x, rank=0, world_size=3)
    assert "use a multiple of 3" in err.value.hint and not (tmp_path / "s").exists()


@pytest.mark.parametrize("recipe", ["paper", "wsolevaluation"])
def test_fine_tuning_recipes(recipe):
    """paper (CutMix App. B): only the new head at lr_head, momentum SGD, x0.1 after every `step`
    epochs. wsolevaluation (main.py, ResNet): parameters whose names contain 'layer4.' or 'fc.' at
    lr x lr_classifier_ratio, Nesterov, and adjust_learning_rate(epoch) x0.1 before each 1-based
    epoch that is a multiple of lr_decay_frequency."""
    from bench.finetune import FinetuneConfig, optimizer_for

    model = mini_resnet(10)
    cfg = FinetuneConfig(epochs=7, batch_size=8, lr_head=0.1, lr_body=0.01, step=3)
    fast = ("fc",) if recipe == "paper" else ("layer4", "fc")
    opt, sched = optimizer_for(model, fast, cfg, recipe)
    names = {id(p): n for n, p in model.named_parameters()}
    head_names = sorted(names[id(p)] for p in opt.param_groups[0]["params"])
    if recipe == "paper":
        assert head_names == ["fc.bias", "fc.weight"] and not opt.param_groups[0]["nesterov"]
    else:
        assert head_names == sorted(n for n, _ in model.named_parameters() if "layer4." in n or "fc." in n) and opt.param_groups[0]["nesterov"]
    lrs = []
    for epoch in range(1, 8):  # 1-based epoch numbers, as wsolevaluation counts them
        lrs.append(round(opt.param_groups[1]["lr"], 12))
        opt.step()
        sched.step()
    if recipe == "paper":
        assert lrs == [0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001]
    else:  # wsolevaluation: lr = lr x 0.1 before epochs 3 and 6 (epoch % 3 == 0)
        expected, lr = [], 0.01
        for epoch in range(1, 8):
            if epoch % 3 == 0:
                lr *= 0.1
            expected.append(round(lr, 12))
        assert lrs == expected == [0.01, 0.01, 0.001, 0.001, 0.001, 0.0001, 0.0001]
