"""CUB-200-2011 reader: the released layout, and the ways its files can disagree."""

from __future__ import annotations

import pytest

from bench.data.cub import read_cub
from bench.errors import BenchError
from bench.mini.layouts import write_cub
from conftest import random_images


@pytest.fixture
def cub(tmp_path):
    images = random_images(6)
    boxes = [(2, 3, 20, 30), (0, 0, 39, 39), (5, 5, 6, 7), (1, 2, 3, 4), (10, 11, 12, 13), (4, 4, 30, 25)]
    return write_cub(tmp_path / "CUB_200_2011", images, [0, 1, 2, 0, 1, 2], boxes, [True, False, True, False, True, False], ["A", "B", "C"])


def test_reads_both_splits(cub):
    test = read_cub(cub, "test")
    assert test.image_ids == [2, 4, 6] and test.targets == [1, 0, 2]
    assert test.boxes == [(0.0, 0.0, 39.0, 39.0), (1.0, 2.0, 3.0, 4.0), (4.0, 4.0, 30.0, 25.0)]
    assert test.classes == ["001.A", "002.B", "003.C"] and test.images[0].name == "B_00002.jpg"
    assert read_cub(cub, "train").image_ids == [1, 3, 5]


@pytest.mark.parametrize(
    "file,edit,message",
    [
        ("image_class_labels.txt", lambda t: t.replace("6 3\n", ""), "list different image ids \\(e.g. 6"),
        ("bounding_boxes.txt", lambda t: t.replace("4 1.0 2.0", "4 1.0"), "line 4 is malformed"),
        ("bounding_boxes.txt", lambda t: t.replace("4 1.0 2.0 2.0 2.0", "4 1.0 2.0 -2.0 2.0"), "empty or negative box for image 4"),
        ("image_class_labels.txt", lambda t: t.replace("6 3", "6 9"), "gives image 6 class 9"),
        ("images.txt", lambda t: t + "x y\n", "does not start with an integer id"),
        ("train_test_split.txt", lambda t: t.replace("2 0", "2 7"), "gives image 2 the flag '7'"),
    ],
)
def test_inconsistent_files(cub, file, edit, message):
    path = cub / file
    path.write_text(edit(path.read_text()))
    with pytest.raises(BenchError, match=message):
        read_cub(cub, "test")


def test_missing_file_and_image(cub):
    (cub / "images" / "002.B" / "B_00002.jpg").unlink()
    with pytest.raises(BenchError, match="image .*B_00002.jpg \\(id 2\\) is missing"):
        read_cub(cub, "test")
    (cub / "classes.txt").unlink()
    with pytest.raises(BenchError, match="lacks classes.txt"):
        read_cub(cub, "test")
