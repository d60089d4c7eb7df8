"""`bench demo` end to end at a reduced size: data in the real layout, a trained mini backbone
loaded through the official-format loader, the table written, and a warm second run."""

from __future__ import annotations

import json

import numpy as np

import bench.demo as demo
from bench.data.imagenet import read_imagenet_val
from bench.mini.digits import make_scenes


def test_scenes_are_deterministic_and_boxed():
    a = make_scenes("val", 20, seed=3)
    b = make_scenes("val", 20, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    images, labels, boxes = a
    assert images.shape == (20, 64, 64, 3) and set(labels) <= set(range(10))
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all() and boxes.max() < 64
    assert not np.array_equal(make_scenes("val", 20, seed=4)[0], images)


def test_demo_small(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "TRAIN_SCENES", 800)
    monkeypatch.setattr(demo, "VAL_SCENES", 60)
    monkeypatch.setattr(demo, "EPOCHS", 3)
    monkeypatch.setattr(demo, "TRAIN_BATCH", 32)
    out = tmp_path / "reports"
    assert demo.run_demo(tmp_path / "work", out, progress=False) == 0
    first = capsys.readouterr().out
    assert "| mini_baseline | imagenet_cls v1 | top1_err |" in first and "| new" in first
    table = (out / "README.md").read_text()
    assert "| mini_baseline |" in table and "not a reproduction" in table
    data = tmp_path / "work" / "data" / demo.data_key()
    split = read_imagenet_val(data / "imagenet", 10)
    assert len(split.images) == 60 and split.layout == "class_folders"
    # the mini backbone learned something (10 classes: chance is 90% error)
    records = list(__import__("bench.store", fromlist=["x"]).ResultsStore.open(tmp_path / "work" / "results", write=False).records())
    assert records[0]["metrics"]["top1_err"] < 80 and records[0]["backbone"]["load_report"]["format"] == "cutmix"
    # warm: nothing regenerated, retrained or re-run
    assert demo.run_demo(tmp_path / "work", out, progress=False) == 0
    assert "cached" in capsys.readouterr().out
    # a half-written dataset from a crash is rebuilt, not used
    (data / ".complete").unlink()
    (data / "imagenet" / "val" / split.classes[0]).rename(data / "junk")
    assert demo.run_demo(tmp_path / "work", out, progress=False) == 0
    assert len(read_imagenet_val(data / "imagenet", 10).images) == 60
    meta = json.loads((tmp_path / "cache" / "weights" / "mini_baseline" / "model_best.pth.tar.json").read_text())
    assert meta["key"]["epochs"] == 3
