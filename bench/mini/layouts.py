"""Writers for the real dataset layouts (the readers in bench.data consume exactly these)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

IMAGENET_LAYOUTS = ("class_folders", "kaggle", "devkit")
LAYOUT_VERSION = "5"  # bump whenever a writer's output changes: it keys the mini data folder (2: ILSVRC XML boxes as pixel indices; 3: COCO captions; 4: Karpathy splits; 5: the mini ImageNet-C's marker)
VAL_XML_DIR = "ILSVRC/Annotations/CLS-LOC/val"  # where ILSVRC's val box XMLs live (Kaggle's release)


def val_name(n: int) -> str:
    return f"ILSVRC2012_val_{n:08d}"


def write_imagenet_val(
    root: Path,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    wnids: Sequence[str],
    layout: str = "class_folders",
    boxes: Sequence[Sequence[tuple[int, int, int, int]]] | None = None,
    seed: int = 0,
) -> Path:
    """Write an ILSVRC2012-style val split under root (the dataset's 'imagenet' folder).

    images: HxWx3 uint8 arrays; labels index into wnids (sorted, like ILSVRC's class order);
    boxes: per image (x0, y0, x1, y1) boxes for the LOC csv (whole image when None).
    The devkit layout numbers classes by ILSVRC2012_ID in a shuffled order, as the real
    devkit does (its IDs are not the sorted-wnid order), and adds non-leaf synsets.
    """
    if list(wnids) != sorted(wnids):
        raise ValueError("wnids must be sorted")
    if layout not in IMAGENET_LAYOUTS:
        raise ValueError(f"layout must be one of {IMAGENET_LAYOUTS}")
    root.mkdir(parents=True, exist_ok=True)
    val = root / "val"
    for n, (img, label) in enumerate(zip(images, labels), start=1):
        folder = val / wnids[label] if layout == "class_folders" else val
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{val_name(n)}.JPEG", quality=95)
    if layout == "kaggle":
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {w}\n" for w in wnids))
        with open(root / "LOC_val_solution.csv", "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["ImageId", "PredictionString"])
            for n, (img, label) in enumerate(zip(images, labels), start=1):
                h, w = img.shape[:2]
                img_boxes = boxes[n - 1] if boxes is not None else [(0, 0, w - 1, h - 1)]
                out.writerow([val_name(n), " ".join(f"{wnids[label]} {x0} {y0} {x1} {y1}" for x0, y0, x1, y1 in img_boxes) + " "])
    elif layout == "devkit":
        _write_devkit(root, labels, wnids, seed)
    return root


def _write_devkit(root: Path, labels: Sequence[int], wnids: Sequence[str], seed: int) -> None:
    from scipy.io import savemat

    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True, exist_ok=True)
    ids = np.random.default_rng(seed).permutation(len(wnids)) + 1  # ILSVRC2012_ID of each sorted wnid
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
    dtype = [(f, object) for f in fields]
    rows = [(int(i), w, f"class {w}", "", 0, np.zeros(0), 0, 1300) for i, w in zip(ids, wnids)]
    rows.append((len(wnids) + 1, "n99999999", "a parent synset", "", 2, np.array([1, 2]), 1, 0))
    order = np.argsort([r[0] for r in rows])
    synsets = np.array([rows[i] for i in order], dtype=dtype)
    savemat(str(data / "meta.mat"), {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[label]}\n" for label in labels))


def write_imagenet_train(root: Path, images: Sequence[np.ndarray], labels: Sequence[int], wnids: Sequence[str]) -> Path:
    """<root>/train/<wnid>/<wnid>_<n>.JPEG, as ILSVRC2012's train tree."""
    counts: dict[int, int] = {}
    for img, label in zip(images, labels):
        folder = root / "train" / wnids[label]
        folder.mkdir(parents=True, exist_ok=True)
        n = counts[label] = counts.get(label, 0) + 1
        Image.fromarray(img).save(folder / f"{wnids[label]}_{n}.JPEG", quality=95)
    for w in wnids:  # every class has a folder, even one without samples
        (root / "train" / w).mkdir(parents=True, exist_ok=True)
    return root


def write_imagenet_val_xml(
    root: Path,
    sizes: Sequence[tuple[int, int]],
    labels: Sequence[int],
    wnids: Sequence[str],
    boxes: Sequence[Sequence[tuple[int, int, int, int]]],
) -> Path:
    """ILSVRC val box XMLs (one per image, <root>/ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_N.xml).

    boxes are 0-based inclusive pixel boxes, written as they are: bench reads ILSVRC's XML (and
    LOC_val_solution.csv) coordinates as pixel indices without a 1-based shift, as wsolevaluation's
    metadata and the CAM codebases do. sizes are (width, height).
    """
    folder = root / VAL_XML_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for n, ((w, h), label, img_boxes) in enumerate(zip(sizes, labels, boxes), start=1):
        objects = "".join(
            f"\t<object>\n\t\t<name>{wnids[label]}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
            f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n"
            f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n"
            for x0, y0, x1, y1 in img_boxes
        )
        (folder / f"{val_name(n)}.xml").write_text(
            f"<annotation>\n\t<folder>val</folder>\n\t<filename>{val_name(n)}</filename>\n"
            f"\t<source>\n\t\t<database>ILSVRC_2012</database>\n\t</source>\n"
            f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{objects}</annotation>\n"
        )
    return root


def write_cub(
    root: Path,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    boxes: Sequence[tuple[int, int, int, int]],
    is_train: Sequence[bool],
    class_names: Sequence[str],
) -> Path:
    """CUB_200_2011's layout under root (the dataset's folder). boxes are 0-based inclusive
    (x0, y0, x1, y1), written as "x y width height" with width = x1 - x0, the reading
    wsolevaluation gives them (x1 = x + width)."""
    folders = [f"{i + 1:03d}.{name}" for i, name in enumerate(class_names)]
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": [], "bounding_boxes.txt": []}
    for n, (img, label, box, train) in enumerate(zip(images, labels, boxes, is_train), start=1):
        rel = f"{folders[label]}/{class_names[label]}_{n:05d}.jpg"
        (root / "images" / folders[label]).mkdir(exist_ok=True)
        Image.fromarray(img).save(root / "images" / rel, quality=95)
        x0, y0, x1, y1 = box
        lines["images.txt"].append(f"{n} {rel}")
        lines["image_class_labels.txt"].append(f"{n} {label + 1}")
        lines["train_test_split.txt"].append(f"{n} {int(bool(train))}")
        lines["bounding_boxes.txt"].append(f"{n} {float(x0)} {float(y0)} {float(x1 - x0)} {float(y1 - y0)}")
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")
    (root / "classes.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(folders)))
    return root


def write_voc(devkit: Path, year: str, ids: Sequence[str], images: Sequence[np.ndarray], objects: Sequence[Sequence[tuple]],
              splits: dict[str, Sequence[str]], class_names: Sequence[str]) -> Path:
    """VOCdevkit/VOC<year>: JPEGImages/<id>.jpg, Annotations/<id>.xml (boxes 0-based inclusive in
    `objects` are written 1-based, as the devkit has them) and ImageSets/Main/<split>.txt."""
    from xml.sax.saxutils import escape

    from PIL import Image

    folder = devkit / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for image_id, image, objs in zip(ids, images, objects):
        Image.fromarray(image).save(folder / "JPEGImages" / f"{image_id}.jpg", quality=95)
        h, w = image.shape[:2]
        body = "".join(
            f"<object><name>{escape(class_names[c])}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{int(d)}</difficult>"
            f"<bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1 + 1}</xmax><ymax>{y1 + 1}</ymax></bndbox></object>"
            for c, x0, y0, x1, y1, d in objs
        )
        (folder / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><folder>VOC{year}</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>\n"
        )
    for split, members in splits.items():
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in members))
    return folder


def write_coco_captions(root: Path, split: str, ids: Sequence[int], images: Sequence[np.ndarray], captions: Sequence[Sequence[str]]) -> Path:
    """MS-COCO 2014's layout: <root>/<split>/COCO_<split>_<id:012d>.jpg and
    <root>/annotations/captions_<split>.json (images with id, file_name, height, width; one
    annotation per caption)."""
    import json

    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for image_id, img, caps in zip(ids, images, captions):
        name = f"COCO_{split}_{image_id:012d}.jpg"
        Image.fromarray(img).save(folder / name, quality=95)
        entries.append({"id": int(image_id), "file_name": name, "height": int(img.shape[0]), "width": int(img.shape[1])})
        annotations += [{"id": len(annotations) + 1, "image_id": int(image_id), "caption": c} for c in caps]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    path = root / "annotations" / f"captions_{split}.json"
    path.write_text(json.dumps({"info": {"description": "bench mini COCO"}, "images": entries, "annotations": annotations}))
    return path


def write_cifar100(root: Path, splits: dict[str, tuple[np.ndarray, Sequence[int]]], classes: Sequence[str]) -> Path:
    """cifar-100-python/{meta, train, test} as the released pickles: {'filenames', 'batch_label',
    'fine_labels', 'coarse_labels', 'data' (N, 3072) uint8: the red, green and blue planes of each
    32x32 image, row-major} and meta {'fine_label_names', 'coarse_label_names'}; protocol 2."""
    import pickle

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    coarse_names = [f"superclass_{i}" for i in range(20)]
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": list(classes), "coarse_label_names": coarse_names}, fh, protocol=2)
    for split, (images, labels) in splits.items():
        images = np.asarray(images, np.uint8)
        assert images.shape[1:] == (32, 32, 3), images.shape
        data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
        obj = {"filenames": [f"{classes[int(t)]}_s_{i:06d}.png" for i, t in enumerate(labels)], "batch_label": f"{split}ing batch 1 of 1",
               "fine_labels": [int(t) for t in labels], "coarse_labels": [int(t) % 20 for t in labels], "data": data}
        with open(folder / split, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    return folder


def write_image_folder(folder: Path, images: Sequence[np.ndarray], suffix: str = ".jpg", prefix: str = "") -> list[Path]:
    """Images as numbered files in one folder (ODIN's OOD tarballs: <set>/test/<n>.jpg; JPEG at quality 95, or PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}{i}{suffix}"
        Image.fromarray(np.asarray(image, np.uint8)).save(path, **({"quality": 95} if suffix == ".jpg" else {}))
        paths.append(path)
    return paths
