"""CUB-200-2011 in its released layout.

<root>/images.txt              "<image_id> <class_folder>/<file>.jpg"
<root>/image_class_labels.txt  "<image_id> <class_id>"            (class ids 1..200)
<root>/train_test_split.txt    "<image_id> <is_training_image>"   (1 train, 0 test)
<root>/bounding_boxes.txt      "<image_id> <x> <y> <width> <height>"  (pixels, floats)
<root>/classes.txt             "<class_id> <class_folder>"
<root>/images/<class_folder>/<file>.jpg

Boxes come out as (x0, y0, x1, y1) = (x, y, x + width, y + height), as wsolevaluation's metadata
has them. Class index = class id - 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt")


@dataclass
class CubSplit:
    image_ids: list[int]
    images: list[Path]
    targets: list[int]  # 0-based
    boxes: list[tuple[float, float, float, float]]  # x0, y0, x1, y1
    classes: list[str]


def _table(path: Path, columns: int) -> dict[int, list[str]]:
    """id -> the other columns; errors name the file and line."""
    rows: dict[int, list[str]] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=columns - 1) if columns == 2 else line.split()
        if len(parts) != columns:
            raise BenchError(f"{path} line {lineno} is malformed: '{line[:80]}'", f"expected {columns} fields per line")
        try:
            key = int(parts[0])
        except ValueError:
            raise BenchError(f"{path} line {lineno} does not start with an integer id: '{line[:80]}'", "restore the file from CUB_200_2011.tgz") from None
        if key in rows:
            raise BenchError(f"{path} line {lineno} repeats id {key}", "restore the file from CUB_200_2011.tgz")
        rows[key] = parts[1:]
    return rows


def read_cub(root: Path, split: str = "test") -> CubSplit:
    """One split ('train' or 'test') of CUB-200-2011, checked for consistency across its files."""
    if split not in ("train", "test"):
        raise BenchError(f"unknown CUB split '{split}'", "use train or test")
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise BenchError(f"CUB_200_2011 at {root} lacks {', '.join(missing)}", "expected the layout of CUB_200_2011.tgz (images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, classes.txt, images/)")
    images = _table(root / "images.txt", 2)
    labels = _table(root / "image_class_labels.txt", 2)
    flags = _table(root / "train_test_split.txt", 2)
    boxes = _table(root / "bounding_boxes.txt", 5)
    classes = _table(root / "classes.txt", 2)
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", flags), ("bounding_boxes.txt", boxes)):
        if set(table) != set(images):
            odd = sorted(set(images) ^ set(table))
            raise BenchError(f"{root / name} and images.txt list different image ids (e.g. {odd[0]}; {len(odd)} differ)", "the files must describe the same images; restore them from CUB_200_2011.tgz")
    class_names = [classes[k][0].strip() for k in sorted(classes)]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise BenchError(f"{root / 'classes.txt'} ids are not 1..{len(classes)}", "restore it from CUB_200_2011.tgz")
    want = "1" if split == "train" else "0"
    out = CubSplit([], [], [], [], class_names)
    for image_id in sorted(images):
        flag = flags[image_id][0].strip()
        if flag not in ("0", "1"):
            raise BenchError(f"{root / 'train_test_split.txt'} gives image {image_id} the flag '{flag}'", "flags are 1 (train) or 0 (test)")
        if flag != want:
            continue
        label = int(labels[image_id][0])
        if not 1 <= label <= len(class_names):
            raise BenchError(f"{root / 'image_class_labels.txt'} gives image {image_id} class {label}", f"class ids are 1..{len(class_names)}")
        try:
            x, y, w, h = (float(v) for v in boxes[image_id])
        except ValueError:
            raise BenchError(f"{root / 'bounding_boxes.txt'} has a non-numeric box for image {image_id}", "restore it from CUB_200_2011.tgz") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise BenchError(f"{root / 'bounding_boxes.txt'} has an empty or negative box for image {image_id}: {x} {y} {w} {h}", "fix or drop that image")
        path = root / "images" / images[image_id][0].strip()
        if not path.is_file():
            raise BenchError(f"image {path} (id {image_id}) is missing", "restore the images/ folder from CUB_200_2011.tgz")
        out.image_ids.append(image_id)
        out.images.append(path)
        out.targets.append(label - 1)
        out.boxes.append((x, y, x + w, y + h))
    if not out.images:
        raise BenchError(f"CUB_200_2011 at {root} has no {split} images", "check train_test_split.txt")
    return out
