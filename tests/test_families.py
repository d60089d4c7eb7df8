"""Any backbone family through the adapter: tiny random-weight ConvNeXt, EfficientNet, RegNet and
ViT (torchvision's and timm's), VGG-GAP and Inception-V3 run every task that has a mini variant
on the mini data with --limit; what the adapter derived is in the records, each task's numbers
are finite and of the right count, and the CAM and detection parts are right by construction
(tests/test_adapter.py has their golden checks)."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from bench.mini.build import MiniSpec
from families import FAMILIES, write_cards

SPEC = MiniSpec(seed=3, train=100, val=40, epochs=1)
WSOL = ["epochs=1", "batch_size=20", "interval=0.05"]
# every task with a mini variant, each as short as it can be and still train and score
TASKS = {
    "imagenet_cls": [],
    "cub_loc": WSOL,
    "imagenet_loc": WSOL,
    "voc_det_frcnn": ["iterations=2", "checkpoint_every=2", "steps=[2]", "warmup_iters=1", "batch_size=2", "design=fpn"],
    "voc_det_ssd": ["iterations=2", "checkpoint_every=2", "steps=[2]", "warmup_iters=1", "batch_size=2"],
    "coco_cap": ["epochs=1", "beam=1"],
    "imagenet_fgsm": [],
    "imagenet_c": [],
    "imagenet_occlusion": ["sizes=[0,32]"],
    "imagenet_inbetween": ["pairs=20", "sizes=[0,32]"],
    "imagenet_ood": [],
}
GROUPS = {"torchvision": ["tv_convnext", "tv_efficientnet", "tv_regnet", "tv_vit"], "timm": ["timm_convnext", "timm_efficientnet", "timm_regnet", "timm_vit"],
          "wsol": ["vgg_gap", "inception_cam"]}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_task_runs_on_every_family(group, run_bench, mini_data, tmp_path, monkeypatch):
    data = mini_data(SPEC)
    write_cards(tmp_path / "cards", GROUPS[group])
    monkeypatch.setenv("BENCH_CARDS", str(tmp_path / "cards"))
    results = tmp_path / "r"
    for task, sets in TASKS.items():
        argv = ["run", "--backbone", ",".join(GROUPS[group]), "--task", task, "--mini", "--data-root", data, "--results", results,
                "--limit", 6, "--workers", 0, "--batch-size", 10, "--quiet"]
        code, out, err = run_bench(*argv, *[a for s in sets for a in ("--set", s)])
        assert code == 0, (task, err[-3000:])
    records = [json.loads(r) for (r,) in sqlite3.connect(results / "bench.sqlite").execute("SELECT record FROM results")]
    done = {(r["backbone"]["name"], r["task"]["name"]) for r in records}
    assert done == {(b, t) for b in GROUPS[group] for t in TASKS}
    for r in records:
        name, task = r["backbone"]["name"], r["task"]["name"]
        assert r["metrics"] and all(math.isfinite(v) for v in r["metrics"].values()), (name, task, r["metrics"])
        details = r["details"]
        if task in ("cub_loc", "imagenet_loc"):
            parts = details["backbone_parts"]
            vit = FAMILIES[name][0] in ("families:tv_vit", "timm:test_vit")
            assert parts["family"] == ("vit" if vit else "cnn"), (name, parts)
            assert parts["cam_method"].startswith("vit_patch_tokens" if vit else "cam"), parts
            assert (parts["cam_norm"] is not None) == ("convnext" in name), parts  # ConvNeXt's LayerNorm, folded
            # the last stage at stride 1 where the family allows it; recorded as not applicable otherwise
            applicable = name in ("tv_efficientnet", "tv_regnet", "timm_efficientnet", "timm_regnet")
            assert details["final_stride"].startswith("stride 1" if applicable else "not applicable"), (name, details["final_stride"])
            assert bool(details["strided_convs_changed"]) == applicable
            assert r["n_samples"]["evaluated"] == 6
        if task.startswith("voc_det"):
            kind = task.rsplit("_", 1)[1]
            built = details["backbone"][kind]
            assert built["family"] in ("cnn", "vit") and built["maps"], built
            if kind == "ssd" and built["family"] == "cnn":
                assert [m.split("(stride ")[1].split(",")[0] for m in built["maps"]] == ["8", "16"], built
            assert built["norm_layers"].get("BatchNorm2d", {}).get("trainable", 0) == 0, built  # BatchNorm frozen
            if built["family"] == "vit":
                assert built["norm_layers"]["LayerNorm"].get("trainable", 0) > 0  # LayerNorm left trainable
