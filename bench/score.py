"""`bench score`: metrics for predictions made anywhere, from the field's standard files, with the
same functions the tasks use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError


def score_wsol(scoremaps: Path, metadata: Path, interval: float = 0.01, ious: tuple[int, ...] = (30, 50, 70), multi_contour: bool = True) -> dict[str, Any]:
    """wsolevaluation's box metrics over saved score maps: <scoremaps>/<image_id>.npy, one per image.

    GT boxes are rescaled from the image size to the map's size and truncated, as wsolevaluation
    does for its 224x224 maps. Maps must be 2-D floats in [0, 1] without NaN (min-max normalise
    them; wsolevaluation's inference turns NaN or constant maps into zeros before saving).
    """
    from bench.data.wsol_metadata import read_wsol_metadata
    from bench.metrics.wsol import BoxAccuracy, cam_thresholds, check_scoremap, resize_box

    meta = read_wsol_metadata(metadata)
    if not scoremaps.is_dir():
        raise BenchError(f"score map folder {scoremaps} does not exist", "pass --scoremaps DIR holding <image_id>.npy files")
    try:
        thresholds = cam_thresholds(interval)
    except ValueError as exc:
        raise BenchError(str(exc), "pass --interval between 0 and 1, e.g. 0.001") from None
    missing = [i for i in meta.image_ids if not (scoremaps / f"{i}.npy").is_file()]
    if missing:
        raise BenchError(f"{len(missing)} of {len(meta.image_ids)} score maps are missing from {scoremaps} (e.g. {missing[0]}.npy)", "save one <image_id>.npy per image listed in image_ids.txt")
    def load(image_id: str) -> tuple[np.ndarray, np.ndarray]:
        path = scoremaps / f"{image_id}.npy"
        try:
            scoremap = np.load(path, allow_pickle=False)
            check_scoremap(scoremap, str(path))
        except (ValueError, OSError) as exc:
            raise BenchError(f"bad score map: {exc}", "save 2-D float maps in [0, 1] without NaN (min-max normalised)") from None
        h, w = scoremap.shape
        return scoremap, np.array([resize_box(b, meta.sizes[image_id], (w, h)) for b in meta.boxes[image_id]])

    acc = BoxAccuracy(thresholds, tuple(ious), multi_contour)
    for start in range(0, len(meta.image_ids), 256):  # a chunk at a time keeps memory flat
        maps, gts = zip(*(load(i) for i in meta.image_ids[start:start + 256]))
        acc.add_many(maps, gts, threads=os.cpu_count() or 1)
    result = acc.result()
    named = {(True, (30, 50, 70)): "maxboxacc_v2", (False, (50,)): "maxboxacc"}  # the published metrics
    key = named.get((multi_contour, tuple(ious)), "maxboxacc_mean")
    return {
        key: result.pop("maxboxacc_mean"),
        **result,
        "images": len(meta.image_ids),
        "cam_threshold_interval": interval,
        "contours": "all" if multi_contour else "largest",
        "convention": "wsolevaluation: uint8 maps, foreground > int(t * max), RETR_TREE contours, inclusive-pixel IoU, best threshold per IoU",
    }
