"""The ILSVRC2012 val reader in its three layouts, and the ways a val set can be broken."""

from __future__ import annotations

import os
import shutil

import pytest

from bench.data.imagenet import read_imagenet_val
from bench.errors import BenchError
from conftest import NUM_CLASSES, WNIDS, make_val


def labels_by_file(split):
    return {p.name: split.classes[t] for p, t in zip(split.images, split.targets)}


def test_three_layouts_agree(tmp_path):
    splits = {layout: read_imagenet_val(make_val(tmp_path / layout, layout) / "imagenet", NUM_CLASSES) for layout in ("class_folders", "kaggle", "devkit")}
    ref = labels_by_file(splits["class_folders"])
    assert len(ref) == 2 * NUM_CLASSES
    for layout, split in splits.items():
        assert split.classes == WNIDS, layout
        assert labels_by_file(split) == ref, layout
    assert splits["devkit"].layout == "flat+devkit" and splits["kaggle"].layout == "flat+LOC_val_solution.csv"
    # flat layouts keep file-name order (the order --limit takes)
    names = [p.name for p in splits["kaggle"].images]
    assert names == sorted(names)


def test_devkit_ids_are_mapped_through_meta_mat(tmp_path):
    """The devkit numbers classes by ILSVRC2012_ID, which is not the sorted-wnid index."""
    root = make_val(tmp_path, "devkit") / "imagenet"
    gt = (root / "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt").read_text().split()
    split = read_imagenet_val(root, NUM_CLASSES)
    assert any(int(i) - 1 != t for i, t in zip(gt, split.targets))  # the fixture really permutes ids
    assert labels_by_file(split) == labels_by_file(read_imagenet_val(make_val(tmp_path / "ref") / "imagenet"))


def test_missing_class_folder_is_an_error(tmp_path):
    root = make_val(tmp_path) / "imagenet"
    shutil.rmtree(root / "val" / WNIDS[3])
    with pytest.raises(BenchError, match=f"has {NUM_CLASSES - 1} classes but the backbone predicts {NUM_CLASSES}"):
        read_imagenet_val(root, NUM_CLASSES)
    (root / "train" / WNIDS[0]).mkdir(parents=True)
    for w in WNIDS:
        (root / "train" / w).mkdir(parents=True, exist_ok=True)
    with pytest.raises(BenchError, match=f"lacks 1 class\\(es\\) listed in .*train \\(e.g. {WNIDS[3]}\\)"):
        read_imagenet_val(root)


def test_empty_class_folder(tmp_path):
    root = make_val(tmp_path) / "imagenet"
    for f in (root / "val" / WNIDS[2]).iterdir():
        f.unlink()
    with pytest.raises(BenchError, match=f"class folder .*{WNIDS[2]} has no images"):
        read_imagenet_val(root, NUM_CLASSES)


def test_no_val_folder(tmp_path):
    (tmp_path / "imagenet").mkdir()
    with pytest.raises(BenchError, match="no ImageNet val folder under .*expected <root>/val/<wnid>"):
        read_imagenet_val(tmp_path / "imagenet")


def test_flat_without_labels(tmp_path):
    root = make_val(tmp_path, "kaggle") / "imagenet"
    os.unlink(root / "LOC_val_solution.csv")
    with pytest.raises(BenchError, match="flat folder with no labels"):
        read_imagenet_val(root)


def test_kaggle_csv_lists_a_missing_image(tmp_path):
    root = make_val(tmp_path, "kaggle") / "imagenet"
    os.unlink(root / "val" / "ILSVRC2012_val_00000004.JPEG")
    with pytest.raises(BenchError, match="1 image\\(s\\) listed in .*LOC_val_solution.csv are missing .*ILSVRC2012_val_00000004"):
        read_imagenet_val(root)


def test_kaggle_csv_malformed(tmp_path):
    root = make_val(tmp_path, "kaggle") / "imagenet"
    with open(root / "LOC_val_solution.csv", "a") as fh:
        fh.write("ILSVRC2012_val_00000099,\n")
    with pytest.raises(BenchError, match="line 26 is malformed"):
        read_imagenet_val(root)


def test_image_without_label(tmp_path):
    root = make_val(tmp_path, "devkit") / "imagenet"
    shutil.copy(root / "val" / "ILSVRC2012_val_00000001.JPEG", root / "val" / "extra.JPEG")
    with pytest.raises(BenchError, match="1 image\\(s\\) in .* have no label .*extra.JPEG"):
        read_imagenet_val(root)


def test_val_box_xmls(tmp_path):
    from bench.data.imagenet import read_val_boxes
    from bench.mini.layouts import VAL_XML_DIR, write_imagenet_val_xml

    root = tmp_path / "imagenet"
    with pytest.raises(BenchError, match="no ImageNet val boxes under"):
        read_val_boxes(root)
    write_imagenet_val_xml(root, [(64, 48), (64, 48)], [1, 2], WNIDS, [[(0, 1, 10, 11)], [(2, 3, 4, 5), (6, 7, 8, 9)]])
    boxes = read_val_boxes(root)
    assert [(b.wnid, b.x0, b.y0, b.x1, b.y1) for b in boxes["ILSVRC2012_val_00000002"]] == [(WNIDS[2], 2, 3, 4, 5), (WNIDS[2], 6, 7, 8, 9)]
    (root / VAL_XML_DIR / "ILSVRC2012_val_00000001.xml").write_text("<annotation><object><name>n1</name></object>")
    with pytest.raises(BenchError, match="malformed box file .*ILSVRC2012_val_00000001.xml"):
        read_val_boxes(root)
