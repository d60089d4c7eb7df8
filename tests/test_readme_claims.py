"""Claims the README makes that no other test reaches, each checked on the real thing: ResNet-50's
14x14 CAM with layer4 at stride 1, SSD300's boxes and maps and the C4 RoIAlign size on a
ResNet-50, ImageNet val boxes from every supported layout, and `train_difficult`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision

from conftest import save_cutmix_format


def test_layer4_stride_1_gives_a_14x14_cam_on_resnet50():
    from bench.cam import CamExtractor
    from bench.cards import BackboneCard
    from tasks.localization import Localization

    x = torch.randn(1, 3, 224, 224)
    for stride, side, changed in ((1, 14, ["0.conv2", "0.downsample.0"]), (2, 7, [])):
        card = BackboneCard(name="r50", arch="resnet50", head=("fc",), cam_layer="layer4")
        net = torchvision.models.resnet50(weights=None).eval()
        view, built = Localization.build(SimpleNamespace(card=card, model=net), {"layer4_stride": stride}, 0, 200)
        model = view.model
        assert built["strided_convs_changed"] == changed and model.fc.out_features == 200
        extractor = CamExtractor(model.eval(), "layer4", "fc")
        with torch.no_grad():
            extractor(x)
        assert tuple(extractor.cams(torch.tensor([3])).shape) == (1, side, side)
        extractor.remove()


def test_ssd300_and_c4_on_a_resnet50():
    from bench.detection.models import build_detector
    from tasks.detection import FRCNN, SSD

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ssd = build_detector("ssd", torchvision.models.resnet50(weights=None), 20, mean, std, dict(SSD)).eval()
    with torch.no_grad():
        maps = ssd.backbone(torch.zeros(1, 3, 300, 300))
    assert [tuple(m.shape[-2:]) for m in maps.values()] == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert [m.shape[1] for m in maps.values()] == [512, 1024, 512, 256, 256, 256]
    per_location = ssd.anchor_generator.num_anchors_per_location()
    assert per_location == [4, 6, 6, 6, 4, 4]
    assert sum(n * m.shape[-1] * m.shape[-2] for n, m in zip(per_location, maps.values())) == 8732
    frcnn = build_detector("frcnn", torchvision.models.resnet50(weights=None), 20, mean, std, dict(FRCNN))
    assert frcnn.roi_heads.box_roi_pool.output_size == (14, 14)  # layer4 halves it: the head sees 7x7, as detectron2's R50-C4
    assert frcnn.roi_heads.box_predictor.cls_score.out_features == 21 and frcnn.roi_heads.box_predictor.cls_score.in_features == 2048


def test_imagenet_boxes_from_every_layout_give_identical_metrics(run_bench, tmp_path, monkeypatch):
    """The same boxes as val box XMLs under ILSVRC/Annotations/CLS-LOC/val/, under val_boxes/, and
    as LOC_val_solution.csv with Kaggle's flat ILSVRC/Data/CLS-LOC/val/ folder: one set of metrics
    and per-image rows (on the known-CAM classifier, so that hits and misses both happen)."""
    import bench.finetune
    from bench.mini.digits import make_scenes
    from bench.mini.layouts import VAL_XML_DIR, write_imagenet_train, write_imagenet_val, write_imagenet_val_xml
    from known_cam import known_cam_net, set_known_head
    from test_localization import SETTINGS, WNIDS, known_cam_scenes

    train, val = known_cam_scenes((make_scenes("train", 20, seed=1), make_scenes("val", 30, seed=1)))
    boxes = [[tuple(b), (1, 2, 9, 12)] for b in val.boxes]  # and a second box per image
    roots = {}
    for layout in ("xml", "val_boxes", "kaggle"):
        folder = roots[layout] = tmp_path / layout / "imagenet"
        write_imagenet_train(folder, train.images, train.labels, WNIDS)
        if layout == "kaggle":
            write_imagenet_val(folder, val.images, val.labels, WNIDS, "kaggle", boxes=boxes)
            (folder / "ILSVRC" / "Data" / "CLS-LOC").mkdir(parents=True)
            shutil.move(folder / "val", folder / "ILSVRC" / "Data" / "CLS-LOC" / "val")
        else:
            write_imagenet_val(folder, val.images, val.labels, WNIDS, "class_folders")
            write_imagenet_val_xml(folder, [(64, 64)] * len(val.labels), val.labels, WNIDS, boxes)
            if layout == "val_boxes":
                shutil.move(folder / VAL_XML_DIR, folder / "val_boxes")
                shutil.rmtree(folder / "ILSVRC")
    monkeypatch.setattr(bench.finetune, "finetune", lambda model, head, *a, **k: set_known_head(model.get_submodule(head)) or {"cached": False})
    ckpt = save_cutmix_format(known_cam_net(), tmp_path / "known.pth.tar")
    results = {}
    for layout, folder in roots.items():
        args = ["run", "--backbone", ckpt, "--arch", "known_cam:known_cam_net", "--num-classes", "10", "--task", "imagenet_loc",
                "--data-root", folder.parent, "--results", tmp_path / f"r-{layout}", "--workers", "0"]
        for s in SETTINGS:
            args += ["--set", s]
        code, _, err = run_bench(*args)
        assert code == 0, err
        record = json.loads(run_bench("export", "--results", tmp_path / f"r-{layout}")[1])[0]
        rows = sorted((json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()), key=lambda r: r["id"])
        rows = [{k: v for k, v in r.items() if k != "index"} for r in rows]  # the split's order differs between layouts
        results[layout] = (record["metrics"], rows)
    assert results["xml"] == results["val_boxes"] == results["kaggle"]
    assert 0 < results["xml"][0]["gt_known_loc"] < 100


@pytest.mark.parametrize("train_difficult", [False, True])
def test_train_difficult_keeps_or_drops_difficult_objects(tmp_path, train_difficult):
    from bench.data.voc import CLASSES, read_voc
    from bench.mini.layouts import write_voc
    from tasks.detection import VocTrainSet

    image = np.zeros((64, 64, 3), np.uint8)
    objects = [[(3, 2, 2, 30, 30, False), (7, 40, 40, 50, 50, True)], [(1, 5, 5, 25, 25, True)]]
    write_voc(tmp_path / "VOCdevkit", "2007", ["a", "b"], [image, image], objects, {"trainval": ["a", "b"]}, CLASSES)
    train = read_voc(tmp_path / "VOCdevkit", [("2007", "trainval")])
    data = VocTrainSet(train.images, "frcnn", train_difficult)
    (_, first), (_, second) = data.sample(0, 0), data.sample(1, 0)
    if train_difficult:
        assert sorted(first["labels"].tolist()) == [4, 8] and second["labels"].tolist() == [2]
    else:
        assert first["labels"].tolist() == [4] and second["labels"].tolist() == []
    boxes = first["boxes"][first["labels"] == 4][0].tolist()  # VOC's (3, 3, 31, 31) to 0-based corners, maybe flipped
    assert boxes in ([2, 2, 31, 31], [64 - 31, 2, 64 - 2, 31])


@pytest.mark.parametrize("scales,min_size,max_size", [("voc", 30, 60), ("coco", 21, 45)])
def test_ssd300_priors_of_the_38x38_map_are_ssd_pytorchs(scales, min_size, max_size):
    """ssd.pytorch's config: on the 38x38 map (step 8) every location has a min_size box, a
    sqrt(min_size * max_size) box and min_size boxes of ratio 2 and 1/2, centred at (j + 0.5) * 8."""
    from torchvision.models.detection.image_list import ImageList

    from bench.detection.models import build_detector
    from tasks.detection import SSD

    model = build_detector("ssd", torchvision.models.resnet50(weights=None), 20, [0.5] * 3, [0.25] * 3, {**SSD, "prior_scales": scales}).eval()
    with torch.no_grad():
        maps = list(model.backbone(torch.zeros(1, 3, 300, 300)).values())
    anchors = model.anchor_generator(ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), maps)[0]
    assert anchors.shape == (8732, 4)
    big = (min_size * max_size) ** 0.5
    for (row, col) in [(0, 0), (0, 1), (5, 17)]:
        cx, cy = (col + 0.5) * 8, (row + 0.5) * 8
        first = anchors[4 * (row * 38 + col):4 * (row * 38 + col) + 4]
        sizes = [(min_size, min_size), (big, big), (min_size * 2**0.5, min_size / 2**0.5), (min_size / 2**0.5, min_size * 2**0.5)]
        expected = torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for w, h in sizes])
        torch.testing.assert_close(first, expected.float(), atol=1e-3, rtol=0)


REPO = Path(__file__).resolve().parents[1]


def _readme() -> str:
    return (REPO / "README.md").read_text()


def _doc(page: str) -> str:
    return (REPO / "docs" / page).read_text()


def test_the_nic_table_matches_the_settings_and_the_preset():
    """Each row of the README's coco_cap table names a setting; its 'paper code' value is what
    preset=paper_code sets and its 'bench default' value is the task's default."""
    import re

    from tasks.captioning import PRESETS, CocoCaptioning

    text = _doc("tasks/captioning.md")
    start = text.index("| choice | the paper's NIC code | bench default | why |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    task = CocoCaptioning()
    defaults, preset = task.default_config(), PRESETS["paper_code"]
    seen = set()
    for row in rows:
        choice, code, default, why = [c.strip() for c in row.strip("|").split("|")]
        name = re.search(r"`(\w+)`", choice).group(1)
        def first(cell: str) -> str:
            return re.search(r"`([^`]+)`|(\d+)", cell).group(0).strip("`")
        show = lambda v: str(v).lower() if isinstance(v, bool) else str(v)
        assert first(code) == show(preset[name]), (name, code)
        assert first(default) == show(defaults[name]), (name, default)
        assert ("defect" in why) == (preset[name] != defaults[name]), name  # a default departs from the code only for a defect
        seen.add(name)
    assert {"encoder_bn", "transform", "image_embed", "init", "dropout_at", "tokenizer", "min_count", "cut_train_captions", "max_length",
            "beam_end", "loss_norm"} <= seen
    assert set(preset) <= set(task.settings())


def test_cider_is_described_as_cider_d_which_pycocoevalcap_computes():
    import inspect

    from pycocoevalcap.cider import cider_scorer

    source = inspect.getsource(cider_scorer)
    assert "sigma=6.0" in source.replace(" ", "") and "min(" in source and "*= 10.0" in source  # Gaussian length penalty, clipping, x10
    text = _readme() + _doc("tasks/captioning.md")
    assert "not CIDEr-D" not in text and "which is CIDEr-D" in text


def test_odin_epsilon_defaults_are_odins_per_data_set():
    from tasks.ood import Cifar100Ood, ImageNetOod

    assert Cifar100Ood().default_config()["odin"]["epsilon"] == 0.0028 and ImageNetOod().default_config()["odin"]["epsilon"] == 0.0014
    assert "0.0028 for DenseNet on CIFAR-100" in _doc("tasks/ood.md")
    preset = Cifar100Ood().preset("", "odin_code")
    assert preset["skip_first"] == 1000 and preset["odin.epsilon"] == 0.0028


def _tables(text: str) -> list[list[str]]:
    """Markdown tables as lists of their lines; a blank line ends a table (as GitHub renders it)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_the_tasks_tables_list_every_task_and_no_table_is_broken():
    import re

    from tasks import TASKS

    pages = {"README.md": _readme(), **{str(p.relative_to(REPO)): p.read_text() for p in sorted((REPO / "docs").rglob("*.md"))}}
    for name, text in pages.items():
        for table in _tables(text):
            assert len(table) >= 3 and re.fullmatch(r"\|( ?:?-+:? ?\|)+", table[1].replace(" ", "")), (name, table[0])  # header, rule, rows
            width = table[0].count("|")
            for line in table:  # a | inside a code span still splits the cell on GitHub
                assert line.count("|") == width, (name, line[:80])
        # a row right after a blank line would be a table without a header: the break this test guards
        assert not re.search(r"\|\n\n\| `", text), name
    for name in ("README.md", "docs/tasks/README.md"):
        table = next(t for t in _tables(pages[name]) if t[0].startswith("| task |") and "verdict" not in t[0])  # not bench check's example output
        listed = [n for row in table[2:] for n in re.findall(r"`(\w+)`", row.split("|")[1])]
        assert sorted(listed) == sorted(TASKS.names()), name
    for link in re.findall(r"\]\((docs/[^)#]+)\)", pages["README.md"]):
        assert (REPO / link).is_file(), link
    for page in (REPO / "docs").rglob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / link).is_file(), (page, link)


def test_the_python_version_claimed_is_the_one_required_and_tested():
    import re
    import sys

    claimed = re.search(r"Python (3\.\d+)", _readme()).group(1)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'requires-python = ">={claimed}"' in pyproject
    assert f"python={claimed}" in (REPO / "environment.yml").read_text()
    assert sys.version_info[:2] >= tuple(int(v) for v in claimed.split("."))
