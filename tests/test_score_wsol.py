"""`bench score wsol` reproduces the independent per-threshold implementation exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.data.wsol_metadata import WsolMetadata, write_wsol_metadata
from conftest import assert_informative
from test_metrics_wsol import naive_accuracies, varied_maps


@pytest.fixture
def scored(tmp_path):
    maps, gts = varied_maps(np.random.default_rng(11), n=18, size=(56, 64))
    ids = [f"{d:03d}.Digit/img_{i}.jpg" for i, d in enumerate(range(18))]
    # image frame twice the map's size: GT boxes are scaled down by 2 and truncated, as wsolevaluation does
    meta = WsolMetadata(ids, {i: 0 for i in ids}, {i: (128, 112) for i in ids},
                        {i: [tuple(int(v) * 2 for v in b) for b in g] for i, g in zip(ids, gts)})
    write_wsol_metadata(tmp_path / "meta", meta)
    for i, m in zip(ids, maps):
        (tmp_path / "maps" / i).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "maps" / f"{i}.npy", m)
    return tmp_path, maps, gts


def test_score_wsol_matches_the_naive_loop(scored, run_bench):
    root, maps, gts = scored
    code, out, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--interval", "0.01")
    assert code == 0, err
    result = json.loads(out)
    naive = naive_accuracies(maps, gts, 0.01, (30, 50, 70), True)
    per_iou = {t: naive[t].max() * 100.0 / len(maps) for t in (30, 50, 70)}
    for t, v in per_iou.items():
        assert result[f"maxboxacc@{t}"] == v
    assert result["maxboxacc_v2"] == np.mean(list(per_iou.values())) and result["images"] == 18
    assert_informative({k: v for k, v in result.items() if k.startswith("maxboxacc")})
    code, out, _ = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--interval", "0.01", "--iou", "50", "--largest-contour")
    assert json.loads(out)["maxboxacc"] == naive_accuracies(maps, gts, 0.01, (50,), False)[50].max() * 100.0 / 18


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: p.unlink(), "1 of 18 score maps are missing"),
        (lambda p: np.save(p, np.zeros((2, 3, 4), np.float32)), "must be a 2-D array"),
        (lambda p: np.save(p, np.full((5, 5), np.nan, np.float32)), "contains NaN"),
        (lambda p: np.save(p, np.full((5, 5), 3.0, np.float32)), "outside \\[0, 1\\]"),
        (lambda p: p.write_bytes(b"not npy"), "bad score map"),
    ],
)
def test_bad_score_maps_are_one_line(scored, run_bench, damage, message):
    root, _, _ = scored
    damage(next((root / "maps").rglob("*.npy")))
    code, out, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("bench: error: ") and __import__("re").search(message, err)


def test_predictions_give_top1_maxboxacc(scored, run_bench):
    """Top-1 variant: an image counts at a threshold only when its predicted class is right too."""
    root, maps, gts = scored
    ids = (root / "meta" / "image_ids.txt").read_text().split()
    preds = {i: (k % 3 == 0) * 1 for k, i in enumerate(ids)}  # label 0 everywhere: every third image is misclassified
    (root / "preds.csv").write_text("".join(f"{i},{c}\n" for i, c in preds.items()))
    code, out, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--interval", "0.01", "--predictions", root / "preds.csv")
    assert code == 0, err
    result = json.loads(out)
    right = [preds[i] == 0 for i in ids]
    kept = naive_accuracies([m for m, r in zip(maps, right) if r], [g for g, r in zip(gts, right) if r], 0.01, (30, 50, 70), True)
    per_iou = {t: kept[t].max() * 100.0 / len(maps) for t in (30, 50, 70)}  # wrong-class images count as misses
    assert result["top1_maxboxacc_v2"] == np.mean(list(per_iou.values()))
    assert all(result[f"top1_maxboxacc@{t}"] == v for t, v in per_iou.items())
    assert result["top1_cls_acc"] == 100.0 * sum(right) / len(ids)
    assert result["maxboxacc_v2"] >= result["top1_maxboxacc_v2"]
    assert_informative({k: v for k, v in result.items() if k.startswith("top1_")})
    (root / "preds.json").write_text(json.dumps(preds))
    code, out, _ = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--interval", "0.01", "--predictions", root / "preds.json")
    assert json.loads(out)["top1_maxboxacc_v2"] == result["top1_maxboxacc_v2"]
    (root / "preds.csv").write_text("".join(f"{i},{c}\n" for i, c in list(preds.items())[1:]))
    code, _, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--predictions", root / "preds.csv")
    assert code == 2 and "1 of 18 images have no prediction" in err


@pytest.fixture
def masked(tmp_path):
    """OpenImages30k-style metadata: instance masks and ignore masks as PNGs at twice the map size."""
    import cv2

    rng = np.random.default_rng(5)
    ids, masks, ignore, maps, truth = [], {}, {}, [], []
    for k in range(10):
        image_id = f"test/c{k % 3}/{k:04d}.jpg"
        h, w = 24, 32
        m = rng.random((h, w)) ** 2
        maps.append(m.astype(np.float32))
        fg = np.zeros((h, w), bool)
        names = []
        for j in range(1 + k % 2):
            inst = np.zeros((2 * h, 2 * w), np.uint8)
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            inst[2 * y0:2 * y0 + 16, 2 * x0:2 * x0 + 20] = 255
            name = f"masks/{k:04d}_m{j}.png"
            (tmp_path / "root" / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "root" / name), inst)
            names.append(name)
            fg |= inst[::2, ::2] > 0  # cv2's nearest neighbour at scale 1/2 takes the even pixels
        ign = np.zeros((2 * h, 2 * w), np.uint8)
        ign[:10, :] = 255
        cv2.imwrite(str(tmp_path / "root" / f"masks/{k:04d}_ignore.png"), ign)
        ignore_here = (ign[::2, ::2] > 0) & ~fg
        ids.append(image_id)
        masks[image_id], ignore[image_id] = names, f"masks/{k:04d}_ignore.png"
        truth.append((fg, ignore_here))
        (tmp_path / "maps" / image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "maps" / f"{image_id}.npy", maps[-1])
    write_wsol_metadata(tmp_path / "meta", WsolMetadata(ids, {i: 0 for i in ids}, {}, {}, masks, ignore))
    (tmp_path / "meta" / "image_sizes.txt").unlink()  # OpenImages ships none
    return tmp_path, maps, truth


def naive_pxap(maps, truth, interval):
    """PxAP by its definition: one precision-recall point per threshold edge (score >= edge)."""
    pos = np.concatenate([m[fg] for m, (fg, ign) in zip(maps, truth)])
    neg = np.concatenate([m[~fg & ~ign] for m, (fg, ign) in zip(maps, truth)])
    edges = list(np.arange(0, 1, interval)) + [1.0, 2.0]
    points = []
    for e in reversed(edges):
        tp, fp = int((pos >= e).sum()), int((neg >= e).sum())
        points.append((tp / (tp + fp) if tp + fp else None, tp / len(pos)))
    area, previous = 0.0, points[0][1]
    for precision, recall in points[1:]:
        if precision is not None:
            area += precision * (recall - previous)
        previous = recall
    return 100 * area


def test_pxap_matches_its_definition_and_sklearn(masked, run_bench):
    from sklearn.metrics import average_precision_score

    root, maps, truth = masked
    code, out, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--mask-root", root / "root", "--interval", "0.01")
    assert code == 0, err
    assert json.loads(out)["pxap"] == pytest.approx(naive_pxap(maps, truth, 0.01), abs=1e-9)
    # scores on the threshold grid: every PR point is a distinct score, so PxAP is scikit-learn's AP
    grid = [np.floor(m * 8) / 8 for m in maps]
    for i, g in zip((root / "meta" / "image_ids.txt").read_text().split(), grid):
        np.save(root / "maps" / f"{i}.npy", g.astype(np.float32))
    code, out, _ = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--mask-root", root / "root", "--interval", "0.125")
    y = np.concatenate([fg[~ign] for fg, ign in truth])
    s = np.concatenate([g[~ign] for g, (fg, ign) in zip(grid, truth)])
    assert json.loads(out)["pxap"] == pytest.approx(100 * average_precision_score(y, s), abs=1e-9)


def test_masks_need_their_root(masked, run_bench):
    root, _, _ = masked
    code, _, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta")
    assert code == 2 and "pass --mask-root DIR" in err
    code, _, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta", "--mask-root", root)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_box_outside_the_image_is_named(scored, run_bench):
    root, _, _ = scored
    loc = root / "meta" / "localization.txt"
    first = loc.read_text().splitlines()[0]
    image_id = first.split(",")[0]
    loc.write_text(loc.read_text().replace(first, f"{image_id},130,2,140,20", 1))
    code, out, err = run_bench("score", "wsol", "--scoremaps", root / "maps", "--metadata", root / "meta")
    assert code == 2 and out == "" and f"image {image_id} has a box (130, 2, 140, 20) outside its 128x112 pixels" in err
