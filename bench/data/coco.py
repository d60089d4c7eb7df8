"""MS-COCO captions: the annotation files (`captions_{train,val}2014.json`) and results files
(`[{"image_id": int, "caption": str}, ...]`, coco-caption's format), checked as they are read:
every mistake is one line naming the file and the entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError


@dataclass
class CocoCaptions:
    """One annotation file: image id -> file name, and image id -> its reference captions."""

    path: Path
    files: dict[int, str]
    captions: dict[int, list[str]]


def _load_json(path: Path, what: str, expected: str) -> Any:
    if not path.is_file():
        raise BenchError(f"{what} {path} does not exist", f"pass the path of {expected}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{what} {path} is not valid JSON ({exc})", f"use {expected}") from None


def read_captions(path: Path) -> CocoCaptions:
    """A COCO captions file; refuses what would give a silently different score: no `images` or
    `annotations`, a caption for an image the file does not list, an image without a caption, an
    empty caption."""
    data = _load_json(path, "captions file", "a COCO captions file (captions_val2014.json)")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise BenchError(f"captions file {path} lacks its 'images' and 'annotations' lists", "use a COCO captions file (captions_val2014.json)")
    files: dict[int, str] = {}
    for n, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int) or not isinstance(image.get("file_name"), str):
            raise BenchError(f"captions file {path}: images[{n}] lacks an integer 'id' or a 'file_name'", "use a COCO captions file")
        files[image["id"]] = image["file_name"]
    captions: dict[int, list[str]] = {i: [] for i in files}
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int) or not isinstance(ann.get("caption"), str):
            raise BenchError(f"captions file {path}: annotations[{n}] lacks an integer 'image_id' or a 'caption'", "use a COCO captions file")
        if ann["image_id"] not in files:
            raise BenchError(f"captions file {path}: annotations[{n}] is for image {ann['image_id']}, which 'images' does not list", "use a complete COCO captions file")
        if not ann["caption"].strip():
            raise BenchError(f"captions file {path}: annotations[{n}] (image {ann['image_id']}) has an empty caption", "remove or fix that annotation")
        captions[ann["image_id"]].append(ann["caption"])
    bare = [i for i, c in captions.items() if not c]
    if bare:
        raise BenchError(f"captions file {path}: {len(bare)} image(s) have no caption (e.g. image {bare[0]})", "use a complete COCO captions file")
    return CocoCaptions(path, files, captions)


def read_results(path: Path, known: dict[int, Any]) -> dict[int, str]:
    """A results file: one caption per image id, every id one of `known`'s, none twice."""
    data = _load_json(path, "results file", "a JSON list of {\"image_id\": int, \"caption\": str}")
    if not isinstance(data, list):
        raise BenchError(f"results file {path} is not a JSON list", "write a list of {\"image_id\": int, \"caption\": str}")
    out: dict[int, str] = {}
    for n, row in enumerate(data):
        if not isinstance(row, dict) or not isinstance(row.get("image_id"), int) or not isinstance(row.get("caption"), str):
            raise BenchError(f"results file {path}: entry {n} lacks an integer 'image_id' or a 'caption'", "write a list of {\"image_id\": int, \"caption\": str}")
        image_id = row["image_id"]
        if image_id not in known:
            raise BenchError(f"results file {path}: entry {n} is for image {image_id}, which the annotations do not list", "score results against the annotations of their split")
        if image_id in out:
            raise BenchError(f"results file {path}: image {image_id} has two captions (entries of one id must be unique)", "keep one caption per image")
        out[image_id] = row["caption"]
    if not out:
        raise BenchError(f"results file {path} holds no caption", "write one caption per image")
    return out
