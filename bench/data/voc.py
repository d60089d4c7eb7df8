"""Pascal VOC in its devkit layout (VOCdevkit/VOC2007, VOCdevkit/VOC2012).

<devkit>/VOC<year>/Annotations/<image_id>.xml     objects: name, difficult, bndbox (1-based, inclusive)
<devkit>/VOC<year>/ImageSets/Main/<split>.txt      one image id per line
<devkit>/VOC<year>/JPEGImages/<image_id>.jpg

Boxes are kept as written (1-based pixel coordinates), as the devkit's evaluation and the classic
voc_eval use them; the detection tasks subtract 1 when they feed a detector. Classes are the 20 in
the devkit's order; an object of any other name is an error. Every check happens when the split
is read, before any training.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import BenchError

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


@dataclass
class VocImage:
    image_id: str
    year: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float64 x1 y1 x2 y2 as in the XML (1-based, inclusive)
    labels: np.ndarray  # (n,) int64 class index into CLASSES
    difficult: np.ndarray  # (n,) bool


@dataclass
class VocSplit:
    name: str  # e.g. "07+12 trainval"
    images: list[VocImage] = field(default_factory=list)

    @property
    def num_objects(self) -> int:
        return int(sum(len(i.labels) for i in self.images))


def _text(node: ET.Element, tag: str, where: str) -> str:
    value = node.findtext(tag)
    if value is None or not value.strip():
        raise ValueError(f"<{tag}> is missing")
    return value.strip()


def read_annotation(path: Path, image_id: str, year: str, image_path: Path) -> VocImage:
    """One Annotations/<id>.xml, checked: known classes, boxes inside the image and not degenerate."""
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        if size is None:
            raise ValueError("<size> is missing")
        width, height = int(float(_text(size, "width", str(path)))), int(float(_text(size, "height", str(path))))
        boxes, labels, difficult = [], [], []
        for obj in root.iter("object"):
            name = _text(obj, "name", str(path))
            if name not in CLASSES:
                raise BenchError(f"{path}: unknown class '{name}'", f"VOC has 20 classes: {', '.join(CLASSES)}")
            bb = obj.find("bndbox")
            if bb is None:
                raise ValueError(f"object '{name}' has no <bndbox>")
            x1, y1, x2, y2 = (float(_text(bb, k, str(path))) for k in ("xmin", "ymin", "xmax", "ymax"))
            if x2 < x1 or y2 < y1:
                raise BenchError(f"{path}: degenerate box for '{name}' ({x1:g}, {y1:g}, {x2:g}, {y2:g})", "xmax >= xmin and ymax >= ymin; fix or remove the object")
            if x1 < 1 or y1 < 1 or x2 > width or y2 > height:
                raise BenchError(f"{path}: box for '{name}' ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is outside the {width}x{height} image (VOC boxes are 1-based)", "fix or remove the object")
            boxes.append((x1, y1, x2, y2))
            labels.append(CLASSES.index(name))
            difficult.append(obj.findtext("difficult", "0").strip() == "1")
    except BenchError:
        raise
    except (ET.ParseError, ValueError, TypeError) as exc:
        raise BenchError(f"malformed annotation {path} ({exc})", "restore it from the VOC tar files") from None
    return VocImage(image_id, year, image_path, width, height, np.array(boxes, np.float64).reshape(-1, 4),
                    np.array(labels, np.int64), np.array(difficult, bool))


def read_split_ids(devkit: Path, year: str, split: str) -> list[str]:
    folder = devkit / f"VOC{year}"
    if not folder.is_dir():
        raise BenchError(f"no VOC{year} folder in {devkit}", "expected VOCdevkit/VOC2007 and VOCdevkit/VOC2012 (the VOC tar files unpacked)")
    path = folder / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise BenchError(f"split file {path} does not exist", f"expected VOC{year}/ImageSets/Main/{split}.txt")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise BenchError(f"split file {path} is empty", "restore it from the VOC tar files")
    if len(set(ids)) != len(ids):
        raise BenchError(f"split file {path} lists an image twice", "restore it from the VOC tar files")
    return ids


def read_voc(devkit: Path, sets: list[tuple[str, str]], images: bool = True) -> VocSplit:
    """The union of (year, split) image sets, e.g. [('2007', 'trainval'), ('2012', 'trainval')].
    images=False reads only what scoring needs (Annotations, ImageSets/Main): JPEGImages may be absent."""
    out = VocSplit("+".join(f"{y[2:]} {s}" for y, s in sets))
    for year, split in sets:
        folder = devkit / f"VOC{year}"
        ids = read_split_ids(devkit, year, split)
        jpegs = {e.name for e in os.scandir(folder / "JPEGImages")} if images and (folder / "JPEGImages").is_dir() else set()
        for image_id in ids:
            xml = folder / "Annotations" / f"{image_id}.xml"
            if not xml.is_file():
                raise BenchError(f"annotation {xml} is missing ({split}.txt lists {image_id})", "restore Annotations/ from the VOC tar files")
            if images and f"{image_id}.jpg" not in jpegs:
                raise BenchError(f"image {folder / 'JPEGImages' / (image_id + '.jpg')} is missing ({split}.txt lists it)", "restore JPEGImages/ from the VOC tar files")
            out.images.append(read_annotation(xml, image_id, year, folder / "JPEGImages" / f"{image_id}.jpg"))
    return out
