"""Each reader on lines in its real release's exact format, written here by hand (not by bench's
own writers, so that a convention bug cannot be shared by writer and reader), with the parsed
values asserted: an ILSVRC2012 val box XML, LOC_val_solution.csv rows with several boxes, a
VOC2007 annotation with difficult objects, CUB-200-2011's five files and wsolevaluation's
metadata (image_sizes.txt included)."""

from __future__ import annotations

from PIL import Image

# ILSVRC2012_bbox_val_v3.tgz: val/ILSVRC2012_val_00000001.xml, as released (tabs and all)
ILSVRC_VAL_XML = """<annotation>
\t<folder>val</folder>
\t<filename>ILSVRC2012_val_00000001</filename>
\t<source>
\t\t<database>ILSVRC_2012</database>
\t</source>
\t<size>
\t\t<width>500</width>
\t\t<height>375</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>n01751748</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>111</xmin>
\t\t\t<ymin>108</ymin>
\t\t\t<xmax>441</xmax>
\t\t\t<ymax>193</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""

# Kaggle's LOC_val_solution.csv: a header, then 'wnid x0 y0 x1 y1' groups, one per box
LOC_VAL_SOLUTION = """ImageId,PredictionString
ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295 
ILSVRC2012_val_00000001,n01751748 111 108 441 193 
"""

# VOC2007 Annotations/000005.xml (abridged to the fields the devkit's reader uses): five chairs, three difficult
VOC_XML = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000005.jpg</filename>
\t<size>
\t\t<width>500</width>
\t\t<height>375</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
\t<object><name>chair</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>165</xmin><ymin>264</ymin><xmax>253</xmax><ymax>372</ymax></bndbox></object>
\t<object><name>chair</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
\t\t<bndbox><xmin>5</xmin><ymin>244</ymin><xmax>67</xmax><ymax>374</ymax></bndbox></object>
\t<object><name>chair</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>241</xmin><ymin>194</ymin><xmax>295</xmax><ymax>299</ymax></bndbox></object>
\t<object><name>chair</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
\t\t<bndbox><xmin>277</xmin><ymin>186</ymin><xmax>312</xmax><ymax>220</ymax></bndbox></object>
</annotation>
"""

# CUB_200_2011's five files: "<id> <...>" lines; boxes "x y width height" in float pixels
CUB_FILES = {
    "images.txt": "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg\n2 001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg\n"
                  "3 002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg\n",
    "image_class_labels.txt": "1 1\n2 1\n3 2\n",
    "train_test_split.txt": "1 0\n2 1\n3 0\n",
    "bounding_boxes.txt": "1 60.0 27.0 325.0 304.0\n2 139.0 30.0 153.0 264.0\n3 14.0 112.0 388.0 186.0\n",
    "classes.txt": "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n",
}

# wsolevaluation metadata/ILSVRC/test/: one line per box for images with several
WSOL_METADATA = {
    "image_ids.txt": "val/ILSVRC2012_val_00000001.JPEG\nval/ILSVRC2012_val_00008726.JPEG\n",
    "class_labels.txt": "val/ILSVRC2012_val_00000001.JPEG,65\nval/ILSVRC2012_val_00008726.JPEG,278\n",
    "image_sizes.txt": "val/ILSVRC2012_val_00000001.JPEG,500,375\nval/ILSVRC2012_val_00008726.JPEG,500,334\n",
    "localization.txt": "val/ILSVRC2012_val_00000001.JPEG,111,108,441,193\nval/ILSVRC2012_val_00008726.JPEG,255,142,454,329\n"
                        "val/ILSVRC2012_val_00008726.JPEG,44,21,322,295\n",
}


def test_ilsvrc_val_xml(tmp_path):
    from bench.data.imagenet import read_val_box_table, read_val_boxes

    folder = tmp_path / "imagenet" / "ILSVRC" / "Annotations" / "CLS-LOC" / "val"
    folder.mkdir(parents=True)
    (folder / "ILSVRC2012_val_00000001.xml").write_text(ILSVRC_VAL_XML)
    boxes = read_val_boxes(tmp_path / "imagenet")
    assert [(b.wnid, b.x0, b.y0, b.x1, b.y1) for b in boxes["ILSVRC2012_val_00000001"]] == [("n01751748", 111, 108, 441, 193)]
    assert read_val_box_table(tmp_path / "imagenet") == {"ILSVRC2012_val_00000001": [(111, 108, 441, 193)]}


def test_loc_val_solution_csv_with_several_boxes(tmp_path):
    from bench.data.imagenet import read_val_box_table

    (tmp_path / "imagenet").mkdir()
    (tmp_path / "imagenet" / "LOC_val_solution.csv").write_text(LOC_VAL_SOLUTION)
    table = read_val_box_table(tmp_path / "imagenet")
    assert table == {"ILSVRC2012_val_00008726": [(255, 142, 454, 329), (44, 21, 322, 295)], "ILSVRC2012_val_00000001": [(111, 108, 441, 193)]}


def test_voc2007_annotation_with_difficult_objects(tmp_path):
    from bench.data.voc import CLASSES, read_voc

    voc = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    (voc / "Annotations" / "000005.xml").write_text(VOC_XML)
    Image.new("RGB", (500, 375)).save(voc / "JPEGImages" / "000005.jpg")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000005\n")
    image = read_voc(tmp_path / "VOCdevkit", [("2007", "test")]).images[0]
    assert (image.image_id, image.width, image.height) == ("000005", 500, 375)
    assert image.boxes.tolist() == [[263, 211, 324, 339], [165, 264, 253, 372], [5, 244, 67, 374], [241, 194, 295, 299], [277, 186, 312, 220]]
    assert image.labels.tolist() == [CLASSES.index("chair")] * 5 == [8] * 5
    assert image.difficult.tolist() == [False, False, True, False, True]


def test_cub_five_files(tmp_path):
    from bench.data.cub import read_cub

    root = tmp_path / "CUB_200_2011"
    for rel in CUB_FILES["images.txt"].split()[1::2]:
        (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (500, 400)).save(root / "images" / rel)
    for name, text in CUB_FILES.items():
        (root / name).write_text(text)
    test = read_cub(root, "test")
    assert test.image_ids == [1, 3] and test.targets == [0, 1]
    assert [p.relative_to(root / "images").as_posix() for p in test.images] == ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
                                                                                 "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg"]
    assert test.boxes == [(60.0, 27.0, 385.0, 331.0), (14.0, 112.0, 402.0, 298.0)]  # (x, y, x + width, y + height), as wsolevaluation
    assert test.classes == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    train = read_cub(root, "train")
    assert train.image_ids == [2] and train.boxes == [(139.0, 30.0, 292.0, 294.0)]


def test_wsolevaluation_metadata(tmp_path):
    from bench.data.wsol_metadata import read_wsol_metadata

    for name, text in WSOL_METADATA.items():
        (tmp_path / name).write_text(text)
    meta = read_wsol_metadata(tmp_path)
    first, second = "val/ILSVRC2012_val_00000001.JPEG", "val/ILSVRC2012_val_00008726.JPEG"
    assert meta.image_ids == [first, second]
    assert meta.labels == {first: 65, second: 278}
    assert meta.sizes == {first: (500, 375), second: (500, 334)}  # width, height
    assert meta.boxes == {first: [(111, 108, 441, 193)], second: [(255, 142, 454, 329), (44, 21, 322, 295)]}
