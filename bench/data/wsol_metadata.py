"""wsolevaluation's metadata folders (metadata/<DATASET>/<split>/), as `bench score wsol` reads them.

image_ids.txt      "<image_id>"                      (a relative image path)
class_labels.txt   "<image_id>,<label>"
image_sizes.txt    "<image_id>,<width>,<height>"
localization.txt   "<image_id>,<x0>,<y0>,<x1>,<y1>"  (one line per box; an id repeats for several boxes)
                   or, for mask datasets (OpenImages30k), "<image_id>,<mask.png>,<ignore.png>": one
                   line per instance mask, the ignore mask on the image's first line only; paths are
                   relative to the mask root, and image_sizes.txt is empty
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError

FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


@dataclass
class WsolMetadata:
    image_ids: list[str]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]]  # width, height
    boxes: dict[str, list[tuple[int, int, int, int]]]
    masks: dict[str, list[str]] = field(default_factory=dict)  # mask datasets: instance mask paths
    ignore: dict[str, str] = field(default_factory=dict)  # mask datasets: the ignore mask path (may be "")

    @property
    def has_masks(self) -> bool:
        return bool(self.masks)


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
    loc = folder / "localization.txt"
    with_masks = loc.is_file() and next((line for line in loc.read_text().splitlines() if line.strip()), "").count(",") == 2
    missing = [f for f in FILES if not (folder / f).is_file() and not (with_masks and f == "image_sizes.txt")]  # OpenImages has none
    if missing:
        raise BenchError(f"wsolevaluation metadata at {folder} lacks {', '.join(missing)}", f"expected {', '.join(FILES)}")
    ids = [line.strip() for line in (folder / "image_ids.txt").read_text().splitlines() if line.strip()]
    if len(set(ids)) != len(ids):
        raise BenchError(f"{folder / 'image_ids.txt'} lists an image twice", "fix the metadata")
    known = set(ids)
    meta = WsolMetadata(ids, {}, {}, {i: [] for i in ids})
    tables = [("class_labels.txt", 2), ("localization.txt", 3 if with_masks else 5)] + ([] if with_masks else [("image_sizes.txt", 3)])
    for name, fields in tables:
        path = folder / name
        for lineno, parts in _rows(path, fields):
            if parts[0] not in known:
                raise BenchError(f"{path} line {lineno} names image '{parts[0]}', which image_ids.txt does not list", "use metadata files from the same split")
            if name == "localization.txt" and with_masks:
                if not parts[1]:
                    raise BenchError(f"{path} line {lineno} has no mask path", "each line is <image_id>,<mask.png>,<ignore.png or empty>")
                if parts[0] in meta.masks and parts[2]:
                    raise BenchError(f"{path} line {lineno} gives image '{parts[0]}' a second ignore mask", "the ignore mask goes on an image's first line only")
                meta.masks.setdefault(parts[0], []).append(parts[1])
                meta.ignore.setdefault(parts[0], parts[2])
                continue
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
    if with_masks:
        meta.boxes = {}
        required = (("class_labels.txt", meta.labels), ("localization.txt", meta.masks))
        need = "every image needs a label and at least one mask"
    else:
        required = (("class_labels.txt", meta.labels), ("image_sizes.txt", meta.sizes), ("localization.txt", meta.boxes))
        need = "every image needs a label, a size and at least one box"
    for what, table in required:
        lacking = [i for i in ids if i not in table or table[i] == []]
        if lacking:
            raise BenchError(f"{len(lacking)} image(s) have no entry in {folder / what} (e.g. {lacking[0]})", need)
    return meta


def write_wsol_metadata(folder: Path, meta: WsolMetadata) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image_ids.txt").write_text("".join(f"{i}\n" for i in meta.image_ids))
    (folder / "class_labels.txt").write_text("".join(f"{i},{meta.labels[i]}\n" for i in meta.image_ids))
    (folder / "image_sizes.txt").write_text("".join(f"{i},{meta.sizes[i][0]},{meta.sizes[i][1]}\n" for i in meta.image_ids if i in meta.sizes))
    if meta.has_masks:
        (folder / "localization.txt").write_text("".join(f"{i},{m},{meta.ignore.get(i, '') if k == 0 else ''}\n" for i in meta.image_ids for k, m in enumerate(meta.masks[i])))
    else:
        (folder / "localization.txt").write_text("".join(f"{i},{x0},{y0},{x1},{y1}\n" for i in meta.image_ids for x0, y0, x1, y1 in meta.boxes[i]))
    return folder
