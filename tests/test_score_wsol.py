"""`bench score wsol` reproduces the independent per-threshold implementation exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.data.wsol_metadata import WsolMetadata, write_wsol_metadata
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
