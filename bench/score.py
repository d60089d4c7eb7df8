"""`bench score`: metrics for predictions made anywhere, from the field's standard files, with the
same functions the tasks use."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

CONVENTION = "wsolevaluation: uint8 maps, foreground > int(t * max), RETR_TREE contours, inclusive-pixel IoU, best threshold per IoU"


def read_predictions(path: Path, image_ids: list[str]) -> dict[str, int]:
    """Predicted classes by image id: a JSON object {image_id: class} or CSV lines
    '<image_id>,<class>' (class_labels.txt's format). Every scored image needs one."""
    if not path.is_file():
        raise BenchError(f"predictions file {path} does not exist", "pass --predictions FILE with '<image_id>,<class>' lines or a JSON object")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            preds = {str(k): int(v) for k, v in raw.items()}
        else:
            preds = {}
            for lineno, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    image_id, _, value = line.rpartition(",")
                    if not image_id:
                        raise ValueError(f"line {lineno} is not '<image_id>,<class>'")
                    preds[image_id.strip()] = int(value)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"cannot read predictions {path} ({exc})", "write '<image_id>,<class>' lines or a JSON object {image_id: class}") from None
    lacking = [i for i in image_ids if i not in preds]
    if lacking:
        raise BenchError(f"{len(lacking)} of {len(image_ids)} images have no prediction in {path} (e.g. {lacking[0]})", "predict every image listed in image_ids.txt")
    return preds


def score_wsol(
    scoremaps: Path,
    metadata: Path,
    interval: float = 0.01,
    ious: tuple[int, ...] = (30, 50, 70),
    multi_contour: bool = True,
    predictions: Path | None = None,
    mask_root: Path | None = None,
) -> dict[str, Any]:
    """wsolevaluation's metrics over saved score maps: <scoremaps>/<image_id>.npy, one per image.

    Box metadata (CUB, ILSVRC): MaxBoxAcc per IoU threshold. GT boxes are rescaled from the image
    size to the map's size and truncated, as wsolevaluation does for its 224x224 maps. With
    predictions, the top-1 variant also requires the predicted class to be right.
    Mask metadata (OpenImages30k): PxAP, with masks read from mask_root.
    Maps must be 2-D floats in [0, 1] without NaN (min-max normalise them; wsolevaluation's
    inference turns NaN or constant maps into zeros before saving).
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

    def load(image_id: str) -> np.ndarray:
        path = scoremaps / f"{image_id}.npy"
        try:
            scoremap = np.load(path, allow_pickle=False)
            check_scoremap(scoremap, str(path))
        except (ValueError, OSError) as exc:
            raise BenchError(f"bad score map: {exc}", "save 2-D float maps in [0, 1] without NaN (min-max normalised)") from None
        return scoremap

    common = {"images": len(meta.image_ids), "cam_threshold_interval": interval}
    if meta.has_masks:
        return {**_score_masks(meta, load, thresholds, mask_root), **common, "convention": "wsolevaluation MaskEvaluator: pixels pooled over the dataset, ignore pixels left out"}
    if mask_root is not None:
        raise BenchError(f"--mask-root was given, but {metadata} holds boxes, not masks", "drop --mask-root for box metadata")

    for image_id in meta.image_ids:  # before scoring anything
        width, height = meta.sizes[image_id]
        for x0, y0, x1, y1 in meta.boxes[image_id]:
            if x0 >= width or y0 >= height or x1 < 0 or y1 < 0:
                raise BenchError(f"image {image_id} has a box ({x0}, {y0}, {x1}, {y1}) outside its {width}x{height} pixels (image_sizes.txt)", "fix or remove that box in localization.txt")

    def with_boxes(image_id: str) -> tuple[np.ndarray, np.ndarray]:
        scoremap = load(image_id)
        h, w = scoremap.shape
        return scoremap, np.array([resize_box(b, meta.sizes[image_id], (w, h)) for b in meta.boxes[image_id]])

    preds = read_predictions(predictions, meta.image_ids) if predictions is not None else None
    acc = BoxAccuracy(thresholds, tuple(ious), multi_contour)
    top1 = BoxAccuracy(thresholds, tuple(ious), multi_contour)
    for start in range(0, len(meta.image_ids), 256):  # a chunk at a time keeps memory flat
        ids = meta.image_ids[start:start + 256]
        maps, gts = zip(*(with_boxes(i) for i in ids))
        bests = acc.add_many(maps, gts, threads=os.cpu_count() or 1)
        if preds is not None:
            for image_id, best in zip(ids, bests):
                top1.add_best(best, preds[image_id] == meta.labels[image_id])
    named = {(True, (30, 50, 70)): "maxboxacc_v2", (False, (50,)): "maxboxacc"}  # the published metrics
    key = named.get((multi_contour, tuple(ious)), "maxboxacc_mean")
    result = acc.result()
    out: dict[str, Any] = {key: result.pop("maxboxacc_mean"), **result}
    if preds is not None:
        top = top1.result()
        out[f"top1_{key}"] = top.pop("maxboxacc_mean")
        out.update({f"top1_{k}": v for k, v in top.items()})
        out["top1_cls_acc"] = 100.0 * sum(preds[i] == meta.labels[i] for i in meta.image_ids) / len(meta.image_ids)
    return {**out, **common, "contours": "all" if multi_contour else "largest", "convention": CONVENTION}


def _score_masks(meta: Any, load: Any, thresholds: np.ndarray, mask_root: Path | None) -> dict[str, Any]:
    from bench.metrics.wsol import PixelAP, load_gt_mask

    if mask_root is None:
        raise BenchError("this metadata describes masks (OpenImages30k), so PxAP needs the masks", "pass --mask-root DIR, the folder the mask paths in localization.txt are relative to")
    pxap = PixelAP(thresholds)
    for image_id in meta.image_ids:
        scoremap = load(image_id)
        paths = [mask_root / m for m in meta.masks[image_id]]
        ignore = mask_root / meta.ignore[image_id] if meta.ignore.get(image_id) else None
        lacking = [p for p in paths + ([ignore] if ignore else []) if not p.is_file()]
        if lacking:
            raise BenchError(f"mask {lacking[0]} for image {image_id} does not exist", "pass --mask-root DIR, the folder the mask paths in localization.txt are relative to")
        try:
            mask = load_gt_mask(paths, ignore, scoremap.shape[::-1])
        except ValueError as exc:
            raise BenchError(f"{exc} (image {image_id})", "re-extract the OpenImages30k masks") from None
        pxap.add(scoremap, mask)
    try:
        return pxap.result()
    except ValueError as exc:
        raise BenchError(f"PxAP is undefined: {exc}", "check the masks and score maps") from None
