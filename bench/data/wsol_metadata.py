"""wsolevaluation's metadata folders (metadata/<DATASET>/<split>/), as `bench score wsol` reads them.

image_ids.txt      "<image_id>"                      (a relative image path)
class_labels.txt   "<image_id>,<label>"
image_sizes.txt    "<image_id>,<width>,<height>"
localization.txt   "<image_id>,<x0>,<y0>,<x1>,<y1>"  (one line per box; an id repeats for several boxes)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


@dataclass
class WsolMetadata:
    image_ids: list[str]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]]  # width, height
    boxes: dict[str, list[tuple[int, int, int, int]]]


def _rows(path: Path, fields: int) -> list[tuple[int, list[str]]]:
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != fields:
            raise BenchError(f"{path} line {lineno} is malformed: '{line[:80]}'", f"expected {fields} comma-separated fields")
        rows.append((lineno, parts))
    return rows


def _ints(path: Path, lineno: int, values: list[str]) -> list[int]:
    try:
        return [int(float(v)) for v in values]
    except ValueError:
        raise BenchError(f"{path} line {lineno} has a non-numeric value: {','.join(values)}", "fix the metadata") from None


def read_wsol_metadata(folder: Path) -> WsolMetadata:
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise BenchError(f"wsolevaluation metadata at {folder} lacks {', '.join(missing)}", f"expected {', '.join(FILES)}")
    ids = [line.strip() for line in (folder / "image_ids.txt").read_text().splitlines() if line.strip()]
    if len(set(ids)) != len(ids):
        raise BenchError(f"{folder / 'image_ids.txt'} lists an image twice", "fix the metadata")
    known = set(ids)
    meta = WsolMetadata(ids, {}, {}, {i: [] for i in ids})
    for name, fields in (("class_labels.txt", 2), ("image_sizes.txt", 3), ("localization.txt", 5)):
        path = folder / name
        for lineno, parts in _rows(path, fields):
            if parts[0] not in known:
                raise BenchError(f"{path} line {lineno} names image '{parts[0]}', which image_ids.txt does not list", "use metadata files from the same split")
            values = _ints(path, lineno, parts[1:])
            if name == "class_labels.txt":
                meta.labels[parts[0]] = values[0]
            elif name == "image_sizes.txt":
                meta.sizes[parts[0]] = (values[0], values[1])
            else:
                x0, y0, x1, y1 = values
                if x1 < x0 or y1 < y0:
                    raise BenchError(f"{path} line {lineno} has a box with x1 < x0 or y1 < y0: {','.join(parts[1:])}", "boxes are x0,y0,x1,y1")
                meta.boxes[parts[0]].append((x0, y0, x1, y1))
    for what, table in (("class_labels.txt", meta.labels), ("image_sizes.txt", meta.sizes), ("localization.txt", meta.boxes)):
        lacking = [i for i in ids if i not in table or table[i] == []]
        if lacking:
            raise BenchError(f"{len(lacking)} image(s) have no entry in {folder / what} (e.g. {lacking[0]})", "every image needs a label, a size and at least one box")
    return meta


def write_wsol_metadata(folder: Path, meta: WsolMetadata) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image_ids.txt").write_text("".join(f"{i}\n" for i in meta.image_ids))
    (folder / "class_labels.txt").write_text("".join(f"{i},{meta.labels[i]}\n" for i in meta.image_ids))
    (folder / "image_sizes.txt").write_text("".join(f"{i},{meta.sizes[i][0]},{meta.sizes[i][1]}\n" for i in meta.image_ids))
    (folder / "localization.txt").write_text("".join(f"{i},{x0},{y0},{x1},{y1}\n" for i in meta.image_ids for x0, y0, x1, y1 in meta.boxes[i]))
    return folder
