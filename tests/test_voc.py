"""The VOCdevkit reader on generated multi-digit scenes, its one-line errors, and `bench score voc`
against the classic algorithm (tests/voc_reference.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.data.voc import CLASSES, read_voc
from bench.errors import BenchError
from bench.mini.digits import make_detection_scenes
from bench.mini.layouts import write_voc
from conftest import assert_informative
from voc_reference import classic_ap


@pytest.fixture
def devkit(tmp_path):
    scenes = make_detection_scenes("val", 30, seed=4)
    ids = [f"{i:06d}" for i in range(30)]
    write_voc(tmp_path / "VOCdevkit", "2007", ids, scenes.images, scenes.objects, {"trainval": ids[:12], "test": ids[12:]}, CLASSES)
    return tmp_path / "VOCdevkit", scenes


def test_reads_boxes_1_based_with_difficult_flags(devkit):
    root, scenes = devkit
    test = read_voc(root, [("2007", "test")])
    assert [i.image_id for i in test.images] == [f"{i:06d}" for i in range(12, 30)]
    for image, objects in zip(test.images, scenes.objects[12:]):
        assert image.width == image.height == 96
        assert image.boxes.tolist() == [[x0 + 1, y0 + 1, x1 + 1, y1 + 1] for _, x0, y0, x1, y1, _ in objects]
        assert image.labels.tolist() == [c for c, *_ in objects] and image.difficult.tolist() == [d for *_, d in objects]
    assert any(len(i.labels) == 0 for i in test.images) and any(i.difficult.any() for i in test.images)  # the fixture has both


@pytest.mark.parametrize("damage,message", [
    (lambda r: (r / "VOC2007/Annotations/000013.xml").write_text("<annotation><size>"), "malformed annotation .*000013.xml"),
    (lambda r: (r / "VOC2007/JPEGImages/000013.jpg").unlink(), "image .*000013.jpg is missing \\(test.txt lists it\\)"),
    (lambda r: (r / "VOC2007/Annotations/000013.xml").unlink(), "annotation .*000013.xml is missing"),
    (lambda r: (r / "VOC2007/ImageSets/Main/test.txt").write_text("\n"), "split file .*test.txt is empty"),
    (lambda r: _edit(r, "<name>[a-z]+</name>", "<name>zebra</name>"), "unknown class 'zebra'"),
    (lambda r: _edit(r, "<xmax>\\d+</xmax>", "<xmax>200</xmax>"), "is outside the 96x96 image"),
    (lambda r: _edit(r, "<xmin>\\d+</xmin>", "<xmin>95</xmin>"), "degenerate box|outside"),
])
def test_bad_devkits_are_one_line(devkit, damage, message):
    root, _ = devkit
    damage(root)
    with pytest.raises(BenchError, match=message) as err:
        read_voc(root, [("2007", "test")])
    assert "\n" not in err.value.message


def _edit(root, pattern, replacement):
    import re

    for path in sorted((root / "VOC2007" / "Annotations").glob("*.xml"))[12:]:
        text = path.read_text()
        if "<object>" in text:
            path.write_text(re.sub(pattern, replacement, text, count=1))
            return


def _detections(test, rng):
    rows = []
    for k, image in enumerate(test.images):
        for box, label in zip(image.boxes, image.labels):
            for _ in range(int(rng.integers(0, 3))):
                rows.append((k, int(label), round(float(rng.random()), 3), box + rng.normal(0, 2, 4)))
        if rng.random() < 0.5:
            rows.append((k, int(rng.integers(0, 10)), round(float(rng.random()), 3), np.array([5.0, 5.0, 30.0, 40.0])))
    return rows


def test_score_voc_files_and_json_match_the_classic_loop(devkit, tmp_path, run_bench):
    root, _ = devkit
    test = read_voc(root, [("2007", "test")])
    rows = _detections(test, np.random.default_rng(0))
    out = tmp_path / "results"
    out.mkdir()
    for c, name in enumerate(CLASSES):
        (out / f"comp4_det_test_{name}.txt").write_text("".join(f"{test.images[k].image_id} {s} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f}\n" for k, cc, s, b in rows if cc == c))
    code, text, err = run_bench("score", "voc", "--detections", out, "--devkit", root)
    assert code == 0, err
    result = json.loads(text)
    boxes = np.array([[float(f"{v:.2f}") for v in b] for *_, b in rows])
    plain = [(i.boxes, i.labels, i.difficult) for i in test.images]
    ref = classic_ap(plain, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), boxes, 20)
    scored = [a for a in ref if not math.isnan(a)]
    assert result["map_voc07"] == np.mean([100 * a for a in scored])
    assert_informative({k: result[k] for k in ("map_voc07", "map_area", "coco_ap", "coco_ap50", "coco_ap75")})
    for name, a in zip(CLASSES, ref):  # per-class AP in the metrics' unit (percent), and the record says so
        assert result["per_class"][name]["ap_voc07"] == (None if math.isnan(a) else 100 * a)
    assert result["per_class_unit"] == "%"
    coco = [{"image_id": test.images[k].image_id, "category_id": c + 1, "bbox": [b[0] - 1, b[1] - 1, b[2] - b[0] + 1, b[3] - b[1] + 1], "score": s}
            for (k, c, s, _), b in zip(rows, boxes)]
    (tmp_path / "dets.json").write_text(json.dumps(coco))
    code, text, err = run_bench("score", "voc", "--detections", tmp_path / "dets.json", "--devkit", root, "--split", "2007:test")
    assert code == 0, err
    assert json.loads(text)["map_voc07"] == pytest.approx(result["map_voc07"], abs=1e-9)  # same boxes up to x - 1 + 1


def test_perfect_detections_score_100(devkit, tmp_path, run_bench):
    root, _ = devkit
    test = read_voc(root, [("2007", "test")])
    coco = [{"image_id": i.image_id, "category_id": int(c) + 1, "bbox": [b[0] - 1, b[1] - 1, b[2] - b[0] + 1, b[3] - b[1] + 1], "score": 1.0}
            for i in test.images for b, c, d in zip(i.boxes.tolist(), i.labels, i.difficult) if not d]
    (tmp_path / "dets.json").write_text(json.dumps(coco))
    code, text, err = run_bench("score", "voc", "--detections", tmp_path / "dets.json", "--devkit", root)
    result = json.loads(text)
    assert code == 0 and result["map_voc07"] == pytest.approx(100.0) and result["map_area"] == 100.0 and result["coco_ap"] == pytest.approx(100.0)


@pytest.mark.parametrize("line,message", [("000013 0.5 1 2 3", "line 1 is malformed"), ("999999 0.5 1 2 3 4", "names image '999999', which the split does not list")])
def test_bad_detection_files_are_one_line(devkit, tmp_path, run_bench, line, message):
    root, _ = devkit
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "comp4_det_test_bird.txt").write_text(line + "\n")
    code, out, err = run_bench("score", "voc", "--detections", tmp_path / "r", "--devkit", root)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def _result_files(folder: Path, test, rows, split: str = "test", skip: tuple[str, ...] = ()) -> None:
    folder.mkdir(exist_ok=True)
    for c, name in enumerate(CLASSES):
        if name not in skip:
            (folder / f"comp4_det_{split}_{name}.txt").write_text("".join(f"{test.images[k].image_id} {s} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f}\n" for k, cc, s, b in rows if cc == c))


def test_score_voc_refuses_what_would_be_a_silent_wrong_number(devkit, tmp_path, run_bench):
    """Case 15: integer COCO image ids, other splits' files, missing classes, swapped corners, NaN."""
    root, _ = devkit
    test = read_voc(root, [("2007", "test")])
    rows = _detections(test, np.random.default_rng(1))
    out = tmp_path / "r"
    _result_files(out, test, rows)
    code, text, _ = run_bench("score", "voc", "--detections", out, "--devkit", root)
    reference = json.loads(text)["map_voc07"]
    # another split's files in the same folder are left out (and named), not merged into the test scoring
    _result_files(out, test, [(k, c, 0.99, np.array([1.0, 1.0, 9.0, 9.0])) for k, c, _, _ in rows], split="val")
    code, text, err = run_bench("score", "voc", "--detections", out, "--devkit", root)
    result = json.loads(text)
    assert code == 0 and result["map_voc07"] == reference and "20 result file(s) of other splits left out" in result["notes"]["ignored_files"]
    code, _, err = run_bench("score", "voc", "--detections", out, "--devkit", root, "--split", "2007:trainval")
    assert code == 2 and "no VOC result files for the trainval split" in err and "other splits" in err
    # a class without a file is refused (its AP would silently be 0), unless allowed
    (out / "comp4_det_test_dog.txt").unlink()
    code, _, err = run_bench("score", "voc", "--detections", out, "--devkit", root)
    assert code == 2 and "no test result file for 1 class(es): dog (their AP would be 0)" in err and "--allow-missing-classes" in err
    code, text, err = run_bench("score", "voc", "--detections", out, "--devkit", root, "--allow-missing-classes")
    assert code == 0 and json.loads(text)["notes"]["missing_classes"] == ["dog"]
    # swapped corners and NaN scores: one line naming the file and line
    bad = tmp_path / "bad"
    _result_files(bad, test, [])
    ident = test.images[0].image_id
    (bad / "comp4_det_test_cat.txt").write_text(f"{ident} 0.5 1 2 3 4\n{ident} 0.5 30 20 10 40\n")
    code, _, err = run_bench("score", "voc", "--detections", bad, "--devkit", root)
    assert code == 2 and "comp4_det_test_cat.txt line 2 has a box with swapped corners (x1 30, y1 20, x2 10, y2 40)" in err
    (bad / "comp4_det_test_cat.txt").write_text(f"{ident} nan 1 2 3 4\n")
    code, _, err = run_bench("score", "voc", "--detections", bad, "--devkit", root)
    assert code == 2 and "comp4_det_test_cat.txt line 1 has a score or coordinate that is not a finite number" in err
    # COCO JSON with integer image ids (COCO's usual form) reads VOC07's zero-padded ids, and says so
    coco = [{"image_id": int(test.images[k].image_id), "category_id": c + 1, "bbox": [float(b[0]) - 1, float(b[1]) - 1, float(b[2] - b[0]) + 1, float(b[3] - b[1]) + 1], "score": s}
            for k, c, s, b in rows]
    (tmp_path / "int.json").write_text(json.dumps(coco))
    code, text, err = run_bench("score", "voc", "--detections", tmp_path / "int.json", "--devkit", root)
    assert code == 0, err
    result = json.loads(text)
    assert result["map_voc07"] == pytest.approx(reference, abs=1e-9) and "integer image_id(s) read as VOC's zero-padded six-digit ids" in result["notes"]["image_ids"]
    (tmp_path / "neg.json").write_text(json.dumps([{**coco[0], "bbox": [10, 10, -5, 4]}]))
    code, _, err = run_bench("score", "voc", "--detections", tmp_path / "neg.json", "--devkit", root)
    assert code == 2 and "neg.json entry 0 has a box with swapped corners" in err
    (tmp_path / "far.json").write_text(json.dumps([{**coco[0], "image_id": 999999}]))
    code, _, err = run_bench("score", "voc", "--detections", tmp_path / "far.json", "--devkit", root)
    assert code == 2 and "integer image_id 999999" in err and "write image_id as that string" in err


def test_coco_numbers_equal_pycocotools_on_hand_written_files(devkit, tmp_path, run_bench):
    """The COCO-style numbers against pycocotools run on COCO JSON files written here from the XML:
    boxes [x1 - 1, y1 - 1, w, h], difficult objects as crowd regions."""
    import contextlib
    import io
    import xml.etree.ElementTree as ET

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root, _ = devkit
    ids = (root / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()
    images, anns = [], []
    for n, image_id in enumerate(ids):
        xml = ET.parse(root / "VOC2007" / "Annotations" / f"{image_id}.xml").getroot()
        images.append({"id": n, "file_name": image_id, "width": 96, "height": 96})
        for obj in xml.iter("object"):
            x1, y1, x2, y2 = (float(obj.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": CLASSES.index(obj.findtext("name")) + 1,
                         "bbox": [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1], "area": (x2 - x1 + 1) * (y2 - y1 + 1), "iscrowd": int(obj.findtext("difficult"))})
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": c + 1, "name": n} for c, n in enumerate(CLASSES)]}))
    test = read_voc(root, [("2007", "test")])
    rows = _detections(test, np.random.default_rng(1))
    results = [{"image_id": k, "category_id": c + 1, "bbox": [b[0] - 1, b[1] - 1, b[2] - b[0] + 1, b[3] - b[1] + 1], "score": s} for k, c, s, b in rows]
    (tmp_path / "res.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "res.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = [{**r, "image_id": ids[r["image_id"]]} for r in results]
    (tmp_path / "dets.json").write_text(json.dumps(ours))
    code, text, err = run_bench("score", "voc", "--detections", tmp_path / "dets.json", "--devkit", root)
    assert code == 0, err
    result = json.loads(text)
    assert (result["coco_ap"], result["coco_ap50"], result["coco_ap75"]) == (100 * ev.stats[0], 100 * ev.stats[1], 100 * ev.stats[2])
    assert_informative({k: result[k] for k in ("coco_ap", "coco_ap50", "coco_ap75")})


def test_score_voc_needs_no_images(devkit, tmp_path, run_bench):
    """Scoring reads Annotations and ImageSets/Main only: a devkit without JPEGImages scores the same."""
    import shutil

    root, _ = devkit
    test = read_voc(root, [("2007", "test")])
    coco = [{"image_id": i.image_id, "category_id": int(c) + 1, "bbox": [b[0] - 1 + 15 * (k % 2), b[1] - 1, b[2] - b[0] + 1, b[3] - b[1] + 1], "score": 0.1 + k % 3}
            for i in test.images for k, (b, c) in enumerate(zip(i.boxes.tolist(), i.labels))]  # every other box moved off its object
    (tmp_path / "dets.json").write_text(json.dumps(coco))
    code, with_images, err = run_bench("score", "voc", "--detections", tmp_path / "dets.json", "--devkit", root)
    assert code == 0, err
    shutil.rmtree(root / "VOC2007" / "JPEGImages")
    code, without, err = run_bench("score", "voc", "--detections", tmp_path / "dets.json", "--devkit", root)
    assert code == 0, err
    assert json.loads(without) == json.loads(with_images) and 0 < json.loads(without)["map_voc07"] < 100
