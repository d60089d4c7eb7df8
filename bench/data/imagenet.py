"""ILSVRC2012 validation set in its common on-disk layouts.

- class folders: <root>/val/<wnid>/*.JPEG (torchvision ImageFolder style);
- flat folder + Kaggle labels: <root>/val/*.JPEG (or <root>/ILSVRC/Data/CLS-LOC/val/) with
  <root>/LOC_val_solution.csv (first wnid of PredictionString is the label);
- flat folder + devkit labels: <root>/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt
  (devkit ILSVRC2012_IDs, one per image in file-name order) mapped to wnids by meta.mat.

Class index = position in the sorted wnid list (torchvision's order). The reader checks that the
class list is complete, since one missing class folder would silently shift every label.
"""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

VAL_DIRS = ("val", "ILSVRC/Data/CLS-LOC/val")
TRAIN_DIRS = ("train", "ILSVRC/Data/CLS-LOC/train")
BOX_DIRS = ("ILSVRC/Annotations/CLS-LOC/val", "val_boxes")  # Kaggle's release; ILSVRC2012_bbox_val_v3.tgz unpacked
KAGGLE_LABELS = "LOC_val_solution.csv"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"
DEVKIT = "ILSVRC2012_devkit_t12/data"
EXPECTED = (
    "<root>/val/<wnid>/*.JPEG (class folders), or <root>/val/*.JPEG with <root>/" + KAGGLE_LABELS
    + " or <root>/" + DEVKIT + "/ILSVRC2012_validation_ground_truth.txt and meta.mat"
)


@dataclass
class ImageNetSplit:
    images: list[Path]  # dataset order: sorted by class then file name (class folders) or by file name (flat)
    targets: list[int]
    classes: list[str]  # sorted wnids
    layout: str


def _images_in(folder: Path) -> list[str]:
    from bench.data.images import is_image

    return sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image(e.name))


def class_folder_images(root: Path, folders: list[str], targets: list[int], what: str) -> tuple[list[Path], list[int]]:
    """Every image of root/<folder>/ for each folder in order, with that folder's target; an empty
    class folder is an error (`what` names the dataset in it)."""
    images: list[Path] = []
    labels: list[int] = []
    for folder, target in zip(folders, targets):
        files = _images_in(root / folder)
        if not files:
            raise BenchError(f"{what} class folder {root / folder} has no images", "restore its images; an empty class cannot be scored")
        images += [root / folder / f for f in files]
        labels += [target] * len(files)
    return images, labels


def reference_classes(root: Path) -> tuple[list[str], str] | None:
    """The complete wnid list, from whichever of these the user has: Kaggle synset file, train folders, devkit."""
    synsets = root / KAGGLE_SYNSETS
    if synsets.is_file():
        wnids = [line.split()[0] for line in synsets.read_text().splitlines() if line.strip()]
        return sorted(wnids), str(synsets)
    train = root / "train"
    if train.is_dir():
        wnids = sorted(e.name for e in os.scandir(train) if e.is_dir())
        if wnids:
            return wnids, str(train)
    meta = root / DEVKIT / "meta.mat"
    if meta.is_file():
        return sorted(_devkit_id_to_wnid(meta).values()), str(meta)
    return None


def _devkit_id_to_wnid(meta: Path) -> dict[int, str]:
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise BenchError(f"{meta} is not the ILSVRC2012 devkit meta.mat ({exc})", "re-extract ILSVRC2012_devkit_t12.tar.gz") from None


def _check_classes(classes: list[str], root: Path, num_classes: int | None, where: str) -> None:
    ref = reference_classes(root)
    if ref is not None:
        wnids, source = ref
        missing = sorted(set(wnids) - set(classes))
        extra = sorted(set(classes) - set(wnids))
        if missing or extra:
            what = f"lacks {len(missing)} class(es) listed in {source} (e.g. {', '.join(missing[:3])})" if missing else f"has {len(extra)} class(es) not in {source} (e.g. {', '.join(extra[:3])})"
            raise BenchError(f"ImageNet val at {where} {what}", "class indices would shift; restore the complete val set")
    if num_classes is not None and len(classes) != num_classes:
        raise BenchError(
            f"ImageNet val at {where} has {len(classes)} classes but the backbone predicts {num_classes}",
            "a class is missing (indices would shift) or the backbone is for another label set; restore the complete val set",
        )


def _class_folders(val: Path, root: Path, num_classes: int | None) -> ImageNetSplit:
    classes = sorted(e.name for e in os.scandir(val) if e.is_dir())
    _check_classes(classes, root, num_classes, str(val))
    images, targets = class_folder_images(val, classes, list(range(len(classes))), "ImageNet")
    return ImageNetSplit(images, targets, classes, "class_folders")


def _read_kaggle_labels(path: Path) -> dict[str, str]:
    labels: dict[str, str] = {}
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise BenchError(f"{path} does not start with the header ImageId,PredictionString", "use the file from the Kaggle ImageNet localization challenge")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2 or not row[1].split():
                raise BenchError(f"{path} line {lineno} is malformed: {','.join(row)[:80]}", "each line is ImageId,\"wnid x0 y0 x1 y1 ...\"")
            labels[row[0]] = row[1].split()[0]
    return labels


def _flat(val: Path, root: Path, num_classes: int | None) -> ImageNetSplit:
    files = _images_in(val)
    kaggle = root / KAGGLE_LABELS
    devkit_gt = root / DEVKIT / "ILSVRC2012_validation_ground_truth.txt"
    if kaggle.is_file():
        labels = _read_kaggle_labels(kaggle)
        layout, source = "flat+LOC_val_solution.csv", kaggle
        ref = reference_classes(root)
        classes = ref[0] if ref else sorted(set(labels.values()))
        by_file = {f: labels.get(os.path.splitext(f)[0]) for f in files}
    elif devkit_gt.is_file():
        id_to_wnid = _devkit_id_to_wnid(root / DEVKIT / "meta.mat")
        lines = devkit_gt.read_text().split()
        try:
            ids = [int(x) for x in lines]
        except ValueError:
            raise BenchError(f"{devkit_gt} holds a non-integer label", "re-extract the devkit") from None
        bad = [i for i in ids if i not in id_to_wnid]
        if bad:
            raise BenchError(f"{devkit_gt} holds label {bad[0]}, which meta.mat does not define", "re-extract the devkit")
        labels = {f"ILSVRC2012_val_{n:08d}": id_to_wnid[i] for n, i in enumerate(ids, start=1)}
        layout, source = "flat+devkit", devkit_gt
        classes = sorted(set(id_to_wnid.values()))
        by_file = {f: labels.get(os.path.splitext(f)[0]) for f in files}
    else:
        raise BenchError(f"ImageNet val at {val} is a flat folder with no labels", f"expected {EXPECTED}")
    unlabeled = [f for f, w in by_file.items() if w is None]
    if unlabeled:
        raise BenchError(f"{len(unlabeled)} image(s) in {val} have no label in {source} (e.g. {unlabeled[0]})", "use the labels file that belongs to this val set")
    have = {os.path.splitext(f)[0] for f in files}
    absent = sorted(set(labels) - have)
    if absent:
        raise BenchError(f"{len(absent)} image(s) listed in {source} are missing from {val} (e.g. {absent[0]})", "restore the complete val set")
    _check_classes(classes, root, num_classes, str(val))
    index = {w: i for i, w in enumerate(classes)}
    unknown = sorted({w for w in by_file.values() if w not in index})
    if unknown:
        raise BenchError(f"{source} uses wnid(s) outside the class list (e.g. {unknown[0]})", "use the matching synset list")
    return ImageNetSplit([val / f for f in files], [index[by_file[f]] for f in files], classes, layout)


def read_imagenet_val(root: Path, num_classes: int | None = None) -> ImageNetSplit:
    """Find and read the val split under an ImageNet root, in whichever layout it is."""
    val = next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)
    if val is None:
        raise BenchError(f"no ImageNet val folder under {root}", f"expected {EXPECTED}")
    has_dirs = any(e.is_dir() for e in os.scandir(val))
    split = _class_folders(val, root, num_classes) if has_dirs else _flat(val, root, num_classes)
    if not split.images:
        raise BenchError(f"ImageNet val at {val} holds no images", f"expected {EXPECTED}")
    return split


def read_imagenet_train(root: Path, num_classes: int | None = None) -> ImageNetSplit:
    """The train split: <root>/train/<wnid>/*.JPEG (or Kaggle's ILSVRC/Data/CLS-LOC/train/)."""
    train = next((root / d for d in TRAIN_DIRS if (root / d).is_dir()), None)
    if train is None:
        raise BenchError(f"no ImageNet train folder under {root}", "expected <root>/train/<wnid>/*.JPEG")
    return _class_folders(train, root, num_classes)


@dataclass(frozen=True)
class Box:
    wnid: str
    x0: int
    y0: int
    x1: int
    y1: int  # as written in the XML, used as inclusive pixel indices (wsolevaluation's reading: no 1-based shift)


def read_val_boxes(root: Path) -> dict[str, list[Box]]:
    """ILSVRC val box XMLs by image id (file name without extension); several boxes per image."""
    folder = next((root / d for d in BOX_DIRS if (root / d).is_dir()), None)
    if folder is None:
        raise BenchError(f"no ImageNet val boxes under {root}", f"expected <root>/{BOX_DIRS[0]}/*.xml or <root>/{BOX_DIRS[1]}/*.xml (ILSVRC2012_bbox_val_v3.tgz)")
    boxes: dict[str, list[Box]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.name.endswith(".xml"):
            continue
        try:
            tree = ET.parse(entry.path).getroot()
            image_boxes = []
            for obj in tree.iter("object"):
                bb = obj.find("bndbox")
                x0, y0, x1, y1 = (int(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
                image_boxes.append(Box(obj.findtext("name").strip(), x0, y0, x1, y1))
        except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
            raise BenchError(f"malformed box file {entry.path} ({exc})", "re-extract the val boxes") from None
        boxes[entry.name[:-4]] = image_boxes
    if not boxes:
        raise BenchError(f"no box XMLs in {folder}", "re-extract the val boxes")
    return boxes


def _kaggle_boxes(path: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """LOC_val_solution.csv: PredictionString is 'wnid x0 y0 x1 y1' repeated, one group per box."""
    boxes: dict[str, list[tuple[int, int, int, int]]] = {}
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for lineno, row in enumerate(reader, start=2):
            if len(row) < 2:
                continue
            parts = row[1].split()
            if not parts or len(parts) % 5:
                raise BenchError(f"{path} line {lineno} has a PredictionString that is not 'wnid x0 y0 x1 y1' groups", "use the file from the Kaggle ImageNet localization challenge")
            try:
                boxes[row[0].strip()] = [tuple(int(float(v)) for v in parts[i + 1:i + 5]) for i in range(0, len(parts), 5)]  # type: ignore[misc]
            except ValueError:
                raise BenchError(f"{path} line {lineno} has a non-numeric box coordinate", "use the file from the Kaggle ImageNet localization challenge") from None
    return boxes


def read_val_box_table(root: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """Val boxes (x0, y0, x1, y1) by image id, from the box XMLs or, without them, LOC_val_solution.csv.
    Boxes with x1 < x0 or y1 < y0 are refused with the file that holds them."""
    if any((root / d).is_dir() for d in BOX_DIRS):
        table = {k: [(b.x0, b.y0, b.x1, b.y1) for b in v] for k, v in read_val_boxes(root).items()}
        source = next(str(root / d) for d in BOX_DIRS if (root / d).is_dir())
    elif (root / KAGGLE_LABELS).is_file():
        table, source = _kaggle_boxes(root / KAGGLE_LABELS), str(root / KAGGLE_LABELS)
    else:
        raise BenchError(f"no ImageNet val boxes under {root}", f"expected <root>/{BOX_DIRS[0]}/*.xml, <root>/{BOX_DIRS[1]}/*.xml or <root>/{KAGGLE_LABELS}")
    for image_id, boxes in table.items():
        for x0, y0, x1, y1 in boxes:
            if x1 < x0 or y1 < y0:
                raise BenchError(f"{source}: image {image_id} has a box with x1 < x0 or y1 < y0 ({x0}, {y0}, {x1}, {y1})", "fix or remove that box")
    return table
