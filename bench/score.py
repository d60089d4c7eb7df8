"""`bench score`: metrics for predictions made anywhere, from the field's standard files, with the
same functions the tasks use."""

from __future__ import annotations

import json
import os
import re
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


RESULT_FILE = re.compile(r"^(?P<prefix>.+)_det_(?P<split>[a-z]+)_(?P<cls>[a-z]+)$")


def _check_detection(source: str, score: float, box: tuple[float, float, float, float]) -> None:
    """NaN or infinite values, or corners in the wrong order, are refused where they are written."""
    if not all(np.isfinite([score, *box])):
        raise BenchError(f"{source} has a score or coordinate that is not a finite number ({score}, {box})", "write finite scores and boxes")
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise BenchError(f"{source} has a box with swapped corners (x1 {x1:g}, y1 {y1:g}, x2 {x2:g}, y2 {y2:g})", "write boxes as x1 y1 x2 y2 with x1 <= x2 and y1 <= y2")


def read_voc_detections(path: Path, ids: list[str], class_names: tuple[str, ...], split: str = "test",
                        allow_missing_classes: bool = False) -> tuple[Any, dict[str, Any]]:
    """Detections from VOC devkit result files (<path>/comp*_det_<split>_<class>.txt, lines
    'image_id score x1 y1 x2 y2' in 1-based pixels) or a COCO-style results JSON (a list of
    {image_id, category_id (1 = aeroplane .. 20), bbox [x, y, w, h] with x = x1 - 1, score}).

    Returns (detections, notes): result files of other splits are left out and named; integer
    JSON image ids are mapped to VOC's zero-padded six-digit ids when the split uses those."""
    from bench.metrics.voc import Detections

    position = {image_id: k for k, image_id in enumerate(ids)}
    rows: list[tuple[int, int, float, tuple[float, float, float, float]]] = []
    notes: dict[str, Any] = {}

    def where(image_id: str, source: str) -> int:
        if image_id not in position:
            raise BenchError(f"{source} names image '{image_id}', which the split does not list", "score detections against the split they were made for")
        return position[image_id]

    if path.is_file() and path.suffix == ".json":
        try:
            items = json.loads(path.read_text())
            if not isinstance(items, list):
                raise ValueError("not a JSON list")
            mapped = 0
            for n, d in enumerate(items):
                c = int(d["category_id"])
                if not 1 <= c <= len(class_names):
                    raise ValueError(f"entry {n}: category_id {c} is not in 1..{len(class_names)}")
                x, y, w, h = (float(v) for v in d["bbox"])
                image_id = d["image_id"]
                if isinstance(image_id, int) and not isinstance(image_id, bool):  # COCO's usual form; VOC07 ids are '000005'
                    if str(image_id) not in position and f"{image_id:06d}" in position:
                        image_id, mapped = f"{image_id:06d}", mapped + 1
                    elif str(image_id) not in position:
                        raise BenchError(f"{path} entry {n} has the integer image_id {image_id}, which the split does not list",
                                         "VOC image ids are strings such as '000005' or '2008_000002': write image_id as that string")
                box = (x + 1, y + 1, x + w, y + h)
                _check_detection(f"{path} entry {n}", float(d["score"]), box)
                rows.append((where(str(image_id), f"{path} entry {n}"), c - 1, float(d["score"]), box))
            if mapped:
                notes["image_ids"] = f"{mapped} integer image_id(s) read as VOC's zero-padded six-digit ids (5 -> '000005')"
        except BenchError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"cannot read detections {path} ({exc})", "a JSON list of {image_id, category_id, bbox: [x, y, w, h], score}") from None
    elif path.is_dir():
        found = [(f, RESULT_FILE.match(f.stem)) for f in sorted(path.glob("*_det_*_*.txt"))]
        other = sorted(f.name for f, m in found if m and m["split"] != split)
        files = [(f, m) for f, m in found if m and m["split"] == split]
        if not files:
            raise BenchError(f"no VOC result files for the {split} split (comp4_det_{split}_<class>.txt) in {path}"
                             + (f"; it holds {other[0]} and {len(other) - 1} more of other splits" if other else ""),
                             "write one file per class, lines 'image_id score x1 y1 x2 y2', or pass the --split they were made for")
        if other:
            notes["ignored_files"] = f"{len(other)} result file(s) of other splits left out (e.g. {other[0]})"
        seen = set()
        for f, m in files:
            name = m["cls"]
            if name not in class_names:
                raise BenchError(f"{f} is for an unknown class '{name}'", f"VOC classes: {', '.join(class_names)}")
            c = class_names.index(name)
            seen.add(name)
            for lineno, line in enumerate(f.read_text().splitlines(), start=1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    if len(parts) != 6:
                        raise ValueError
                    score, x1, y1, x2, y2 = (float(v) for v in parts[1:])
                except ValueError:
                    raise BenchError(f"{f} line {lineno} is malformed: '{line[:80]}'", "lines are 'image_id score x1 y1 x2 y2'") from None
                _check_detection(f"{f} line {lineno}", score, (x1, y1, x2, y2))
                rows.append((where(parts[0], f"{f} line {lineno}"), c, score, (x1, y1, x2, y2)))
        missing = [c for c in class_names if c not in seen]
        if missing and not allow_missing_classes:
            raise BenchError(f"{path} has no {split} result file for {len(missing)} class(es): {', '.join(missing)} (their AP would be 0)",
                             "write an (even empty) file per class, or pass --allow-missing-classes to score them as 0")
        if missing:
            notes["missing_classes"] = missing
    else:
        raise BenchError(f"detections {path} are neither a folder of VOC result files nor a .json file", "pass --detections DIR or --detections results.json")
    dets = Detections(np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                      np.array([r[2] for r in rows], np.float64), np.array([r[3] for r in rows], np.float64).reshape(-1, 4))
    return dets, notes


def score_voc(detections: Path, devkit: Path, split: str = "2007:test", allow_missing_classes: bool = False) -> dict[str, Any]:
    """VOC07 11-point mAP, area mAP, COCO-style AP and per-class AP of detections against a split."""
    from bench.data.voc import CLASSES, read_voc
    from bench.metrics.voc import GroundTruth, detection_metrics

    year, _, name = split.partition(":")
    if not year or not name:
        raise BenchError(f"--split expects YEAR:SPLIT, got '{split}'", "e.g. --split 2007:test")
    data = read_voc(devkit, [(year, name)], images=False)  # scoring needs no images
    dets, notes = read_voc_detections(detections, [i.image_id for i in data.images], CLASSES, name, allow_missing_classes)
    gt = [GroundTruth(i.boxes, i.labels, i.difficult) for i in data.images]
    try:
        metrics, details = detection_metrics(gt, dets, CLASSES)
    except ValueError as exc:
        raise BenchError(f"{exc} in {data.name}", "score against a split with annotated objects") from None
    return {**metrics, "images": len(data.images), "detections": int(len(dets.scores)), "split": data.name, **details, **({"notes": notes} if notes else {})}


def score_captions(results: Path, annotations: Path, java: bool | None = None) -> dict[str, Any]:
    """coco-caption's BLEU-1..4, METEOR, ROUGE-L and CIDEr (percent) of a results file
    ([{"image_id", "caption"}]) against a COCO captions file, over the images it captions (as
    coco-caption scores a Karpathy test subset against captions_val2014.json)."""
    from bench.data.coco import read_captions, read_results
    from bench.metrics.captions import caption_metrics

    refs = read_captions(annotations)
    candidates = read_results(results, refs.captions)
    metrics, info = caption_metrics(refs.captions, candidates, java)
    info.pop("per_image")
    return {**metrics, **info, "annotated_images": len(refs.captions), "convention": "coco-caption: PTB tokens, corpus BLEU (closest reference length), METEOR 1.5, ROUGE-L, CIDEr (pycocoevalcap's Cider, which is CIDEr-D: clipped counts, length penalty sigma 6, x10); SPICE off"}


def read_corruption_errors(path: Path) -> dict[str, dict[int, float]]:
    """Per-corruption x severity errors (percent) from JSON ({corruption: {severity: error}} or
    {corruption: [five errors]}) or CSV lines 'corruption,severity,error' (a header line allowed)."""
    if not path.is_file():
        raise BenchError(f"errors file {path} does not exist", "pass --errors FILE (JSON or CSV)")
    out: dict[str, dict[int, float]] = {}
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            for name, values in data.items():
                if not isinstance(values, (list, dict)):
                    raise BenchError(f"errors file {path}: '{name}' holds {type(values).__name__} {json.dumps(values)[:40]}, not a corruption's five severities",
                                     'the JSON maps each corruption to its errors in percent: {"gaussian_noise": {"1": 52.1, "2": 60.3, "3": 70.0, "4": 80.2, "5": 88.9}, ...} '
                                     'or {"gaussian_noise": [52.1, 60.3, 70.0, 80.2, 88.9], ...} (a wrapped object such as {"errors": {...}} is not read)')
                pairs = enumerate(values, start=1) if isinstance(values, list) else values.items()
                out[name] = {int(s): float(v) for s, v in pairs}
        else:
            for lineno, line in enumerate(path.read_text().splitlines(), start=1):
                parts = [p.strip() for p in line.split(",")]
                if not line.strip() or (lineno == 1 and not parts[-1].replace(".", "", 1).isdigit()):
                    continue
                if len(parts) != 3:
                    raise ValueError(f"line {lineno} is not 'corruption,severity,error'")
                severity = int(parts[1])
                if severity in out.setdefault(parts[0], {}):
                    raise ValueError(f"line {lineno} repeats {parts[0]} severity {severity}")
                out[parts[0]][severity] = float(parts[2])
    except (ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot read errors {path} ({exc})", "JSON {corruption: {severity: error %}} or CSV 'corruption,severity,error'") from None
    return out


def score_mce(errors: Path, clean_error: float | None = None) -> dict[str, Any]:
    """mCE (AlexNet-normalised, the 15 benchmark corruptions), relative mCE with the clean error,
    and the extra corruptions' mean error, from per-corruption x severity errors in percent."""
    from bench.metrics.corruption import corruption_metrics

    if clean_error is not None and not 0 <= clean_error <= 100:
        raise BenchError(f"--clean-error {clean_error} is not a percentage", "pass the clean top-1 error in percent, e.g. 23.85")
    try:
        result = corruption_metrics(read_corruption_errors(errors), clean_error)
    except ValueError as exc:
        raise BenchError(f"{errors}: {exc}", "give every benchmark corruption's five severities, errors in percent") from None
    return {**result, "convention": "CE = mean error over severities 1-5 / AlexNet's (augmix ALEXNET_ERR); mCE over the 15 benchmark corruptions; "
                                    "relative CE against AlexNet's clean error 43.478 (torchvision AlexNet); extra corruptions apart"}


def read_scores(path: Path, what: str) -> np.ndarray:
    """One score per sample from a .npy array or a text file (numbers separated by newlines,
    spaces or commas), checked: 1-D, not empty, finite."""
    from bench.metrics.ood import check_scores

    if not path.is_file():
        raise BenchError(f"{what} score file {path} does not exist", "pass a .npy array or a text file with one score per sample")
    try:
        if path.suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            values = []
            for lineno, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    fields = line.replace(",", " ").split()
                    if len(fields) != 1:
                        raise ValueError(f"line {lineno} holds {len(fields)} values, not one score")
                    values.append(float(fields[0]))
            raw = np.array(values, dtype=np.float64)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read {what} scores {path} ({str(exc)[:120]})", "pass a 1-D .npy array or a text file with one score per line") from None
    try:
        return check_scores(raw, what)
    except ValueError as exc:
        raise BenchError(f"{path}: {exc}", "give one finite score per sample, higher = more in-distribution (e.g. max softmax probability)") from None


def _ood_summary(ins: np.ndarray, outs: dict[str, np.ndarray]) -> dict[str, Any]:
    from bench.metrics.ood import CONVENTIONS, CUTS, METRICS, ood_metrics

    sets = {name: ood_metrics(ins, scores) for name, scores in outs.items()}
    mean = {m: float(np.mean([s[m] for s in sets.values()])) for m in METRICS}
    return {"unit": "percent", "n_in": int(len(ins)), "n_out": {k: int(len(v)) for k, v in outs.items()}, "sets": sets, "mean": mean,
            "positive": "in-distribution unless a convention says otherwise; scores: higher = more in-distribution", "cuts": CUTS, "conventions": CONVENTIONS}


def score_ood(in_path: Path, out_paths: list[Path], names: list[str] | None = None) -> dict[str, Any]:
    """OOD metrics (bench.metrics.ood) of saved in- and out-of-distribution scores, per OOD file and their mean."""
    if names and len(names) != len(out_paths):
        raise BenchError(f"--names gives {len(names)} name(s) for {len(out_paths)} --out file(s)", "give one name per --out file, or none")
    names = names or [p.stem for p in out_paths]
    if len(set(names)) != len(names):
        raise BenchError(f"two --out files share the name {next(n for n in names if names.count(n) > 1)}", "name them with --names")
    ins = read_scores(in_path, "in-distribution")
    return _ood_summary(ins, {n: read_scores(p, f"out-of-distribution ({n})") for n, p in zip(names, out_paths)})


def score_ood_samples(samples: Path, score: str = "msp") -> dict[str, Any]:
    """The same metrics from a samples file that an OOD task stored (JSON lines: set, index,
    image, one value per score; the in-distribution rows also have target and pred)."""
    if not samples.is_file():
        raise BenchError(f"samples file {samples} does not exist", "pass the file a cifar100_ood / imagenet_ood record names under artifacts.samples")
    ins: list[float] = []
    outs: dict[str, list[float]] = {}
    try:
        with open(samples) as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if "set" not in row:  # every row of an OOD task's file names its set
                    raise BenchError(f"{samples} is not an OOD task's samples file (its rows have {', '.join(sorted(row)) or 'nothing'}, not 'set')",
                                     "pass the samples file of a cifar100_ood or imagenet_ood run (bench list results shows each run's file)")
                if score not in row:
                    have = sorted(k for k in row if k not in ("set", "index", "image", "target", "pred"))
                    raise BenchError(f"{samples} has no '{score}' scores (it has {', '.join(have) or 'none'})", "pick one with --score")
                (ins if "pred" in row else outs.setdefault(row["set"], [])).append(float(row[score]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{samples} is not an OOD task's samples file ({exc})", "pass the samples file of a cifar100_ood or imagenet_ood run") from None
    if not ins or not outs:
        raise BenchError(f"{samples} lacks {'in-distribution' if not ins else 'out-of-distribution'} rows", "pass the samples file of a complete OOD run")
    from bench.metrics.ood import check_scores

    try:
        result = _ood_summary(check_scores(ins, "in-distribution"), {k: check_scores(v, k) for k, v in outs.items()})
    except ValueError as exc:
        raise BenchError(f"{samples}: {exc}", "rerun the task") from None
    return {"score": score, **result}
