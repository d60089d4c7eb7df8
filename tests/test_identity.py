"""What makes two results the same cell (backbone name, weights, task, settings, seed, data), and
the mistakes that must be refused before any work: each test reproduces a case where bench
stored or showed a wrong or mislabelled number."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from bench.errors import BenchError
from conftest import CARD, NUM_CLASSES, assert_informative, own_weights, save_cutmix_format, tiny_model


def _export(run_bench, results: Path) -> list[dict]:
    code, out, err = run_bench("export", "--results", results)
    assert code == 0, err
    return json.loads(out)


def _value(out: str, metric: str = "top1_err") -> str:
    row = next(line for line in out.splitlines() if f"| {metric} " in line)
    return [c.strip() for c in row.strip("|").split("|")][4]


def test_the_data_is_part_of_the_cell(run_bench, cards, data_root, tmp_path):
    """Case 1: a cached number was printed for a missing data root, for a damaged copy of the
    val set, and a --force on a 12-image copy replaced the 24-image record."""
    results = tmp_path / "r"
    base = ["run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--results", results, "--workers", 0]
    code, out, err = run_bench(*base, "--data-root", data_root)
    assert code == 0, err
    full = _value(out)
    # the data checks run before the cache lookup: no data, no number
    code, out, err = run_bench(*base, "--data-root", tmp_path / "nonexistent")
    assert code == 2 and "cached" not in out and "nonexistent does not exist" in err
    code, out, err = run_bench(*base)  # no data root at all
    assert code == 2 and "cached" not in out
    damaged = tmp_path / "damaged"
    shutil.copytree(data_root, damaged)
    shutil.rmtree(sorted((damaged / "imagenet" / "val").iterdir())[3])
    code, out, err = run_bench(*base, "--data-root", damaged)
    assert code == 2 and "cached" not in out and "11 classes" in err
    # a smaller copy (one image per class) is another cell: validate says so, --force adds a record
    small = tmp_path / "small"
    shutil.copytree(data_root, small)
    for folder in (small / "imagenet" / "val").iterdir():
        sorted(folder.iterdir())[0].unlink()
    code, out, _ = run_bench("validate", "--backbone", "tiny_a", "--task", "imagenet_cls", "--results", results, "--data-root", small)
    assert code == 0 and "12 val images" in out and "[to run]" in out
    code, out, _ = run_bench("validate", "--backbone", "tiny_a", "--task", "imagenet_cls", "--results", results, "--data-root", data_root)
    assert code == 0 and "[cached]" in out
    code, out, err = run_bench(*base, "--data-root", small, "--force")
    assert code == 0 and "| new" in out and "|      12 |" in out, out
    # the full data's record is still there, and still the one its runs return
    code, out, _ = run_bench(*base, "--data-root", data_root)
    assert code == 0 and "cached" in out and _value(out) == full and "|      24 |" in out
    records = _export(run_bench, results)
    assert sorted(r["data"]["n_samples"] for r in records) == [12, 24]
    assert len({r["data"]["fingerprint"] for r in records}) == 2 and len({r["cell_key"] for r in records}) == 2
    # a file rewritten to another size is other data too
    image = sorted((small / "imagenet" / "val").rglob("*.JPEG"))[0]
    image.write_bytes(image.read_bytes() + b"\0")
    code, out, _ = run_bench(*base, "--data-root", small)
    assert code == 0 and "| new" in out
    # the report shows what each number was computed on
    code, out, _ = run_bench("report", "--results", results)
    assert "| imagenet_cls/n |" in out and "results under 3 configs or data; showing a complete run" in out


def test_fingerprint_reads_no_image_and_is_order_free(tmp_path):
    from bench.data.fingerprint import Fingerprint

    root = tmp_path / "d"
    root.mkdir()
    files = []
    for i in range(3):
        (root / f"{i}.jpg").write_bytes(b"x" * (i + 1))
        files.append(root / f"{i}.jpg")
    a = Fingerprint().files("val", root, files).values("labels", [0, 1, 2]).hexdigest()
    assert a == Fingerprint().files("val", root, files[::-1]).values("labels", [0, 1, 2]).hexdigest()
    assert a != Fingerprint().files("val", root, files).values("labels", [0, 1, 1]).hexdigest()
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)  # the same data in another folder is the same data
    assert a == Fingerprint().files("val", moved, [moved / f.name for f in files]).values("labels", [0, 1, 2]).hexdigest()


def test_one_file_name_two_checkpoints_are_two_rows(run_bench, data_root, tmp_path):
    """Case 3: two different files both called model.pth were merged into one row, '± std (n=2)'."""
    results = tmp_path / "r"
    for i, folder in enumerate(["a", "b"]):
        (tmp_path / folder).mkdir()
        path = save_cutmix_format(tiny_model(seed=30 + i), tmp_path / folder / "model.pth")
        code, _, err = run_bench("run", "--backbone", path, "--arch", "resnet18", "--num-classes", NUM_CLASSES, "--task", "imagenet_cls",
                                 "--data-root", data_root, "--results", results, "--workers", 0, "--resize", 64, "--crop", 56)
        assert code == 0, err
    records = _export(run_bench, results)
    shas = sorted(r["backbone"]["sha256"] for r in records)
    assert len(set(shas)) == 2
    code, out, _ = run_bench("report", "--results", results)
    assert "±" not in out
    for sha in shas:
        assert f"| model.pth@{sha[:8]} " in out
    # seeds are averaged only within one checkpoint and config (tables' own test, on records)
    from bench.tables import report_table

    seeded = [dict(records[0], seed=1, metrics={k: v + 2 for k, v in records[0]["metrics"].items()}, cell_key="x"), records[0], records[1]]
    table = report_table(seeded)
    n = len(records[0]["metrics"])
    assert table.count("(n=2 seeds)") == n and table.count("±") == n  # every one of records[0]'s metrics, none of records[1]'s


def test_two_cards_on_one_file_are_two_labelled_cells(run_bench, cards, data_root, tmp_path, monkeypatch):
    """Case 4: a new card with the same bytes as another printed the other's cached row, and its
    --force removed the other card's row."""
    folder = Path(str(tmp_path / "cards"))
    (folder / "tiny_c.yaml").write_text(CARD.format(name="tiny_c", n=NUM_CLASSES, file=cards["tiny_a"], sha="null").replace("12.5", "33.3"))
    results = tmp_path / "r"
    base = ["run", "--task", "imagenet_cls", "--data-root", data_root, "--results", results, "--workers", 0]
    assert run_bench(*base, "--backbone", "tiny_a")[0] == 0
    code, out, _ = run_bench(*base, "--backbone", "tiny_c")
    assert code == 0 and "| new" in out and "| tiny_c " in out and "33.30" in out and "12.50" not in out
    code, out, _ = run_bench(*base, "--backbone", "tiny_c", "--force")
    assert code == 0
    records = _export(run_bench, results)
    assert sorted(r["backbone"]["name"] for r in records) == ["tiny_a", "tiny_c"]
    assert len({r["backbone"]["sha256"] for r in records}) == 1
    code, out, _ = run_bench("report", "--results", results)
    assert "| tiny_a " in out and "[12.50]" in out and "| tiny_c " in out and "[33.30]" in out


def test_a_bare_checkpoint_says_its_preprocessing_and_takes_a_cards(run_bench, cards, data_root, tmp_path):
    """Case 5: a byte copy of a card's weights silently got 256/224 preprocessing."""
    copy = tmp_path / "copy.pth"
    shutil.copy(cards["tiny_a"], copy)
    common = ["--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    code, out, _ = run_bench("run", "--backbone", "tiny_a", *common)
    card_value = _value(out)
    bare = ["run", "--backbone", copy, "--arch", "resnet18", "--num-classes", NUM_CLASSES, *common]
    code, out, _ = run_bench(*bare)
    assert code == 0 and "preprocessing 256/224" in out
    assert "note: copy.pth is a checkpoint file with no card: evaluated with resize 256, crop 224, bilinear, mean 0.485, 0.456, 0.406" in out
    code, out, _ = run_bench(*bare, "--preprocessing-from", "tiny_a")
    assert code == 0 and "preprocessing 64/56" in out and _value(out) == card_value and "| new" in out
    code, out, _ = run_bench(*bare, "--resize", 64, "--crop", 56, "--mean", "0.485,0.456,0.406")
    assert code == 0 and "cached" in out and _value(out) == card_value  # the same preprocessing is the same cell
    code, _, err = run_bench(*bare, "--resize", 50, "--crop", 56)
    assert code == 2 and "crop 56 must be at most resize 50" in err
    code, _, err = run_bench(*bare, "--std", "0.2,0.2")
    assert code == 2 and "std needs 3 numbers" in err


def test_arch_never_relabels_a_card(run_bench, cards, data_root, tmp_path):
    """Case 6: --arch resnet34 on a card whose file held a ResNet-34 stored the ResNet-34 under the
    card's name."""
    common = ["--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    code, _, err = run_bench("run", "--backbone", "tiny_a", "--arch", "resnet34", *common)
    assert code == 2 and "--arch applies to a checkpoint file, and tiny_a is the card 'tiny_a' (resnet18)" in err
    save_cutmix_format(tiny_model(seed=3, arch="resnet34"), own_weights(cards, "tiny_a"))  # the wrong model at the card's path
    code, out, err = run_bench("run", "--backbone", "tiny_a", *common)
    assert code == 2 and "the weights of card 'tiny_a' do not fit its architecture (its keys look like resnet34)" in err
    assert "put tiny_a's own checkpoint at" in err and "pass --arch" not in err
    assert not (tmp_path / "r" / "bench.sqlite").exists() or _export(run_bench, tmp_path / "r") == []


@pytest.mark.parametrize("task, setting, accepts", [
    ("cub_loc", "cam_threshold=high", "cam_threshold takes a number in [0, 1)"),
    ("cub_loc", "epochs=1.5", "epochs takes an integer in [1, inf)"),
    ("cub_loc", "epochs=0", "epochs takes an integer in [1, inf)"),
    ("cub_loc", "protocols=[paper,foo]", "protocols takes a list of paper, wsoleval"),
    ("cub_loc", "split=val", "split takes one of test, train"),
    ("imagenet_loc", "split=train", "split takes one of val"),
    ("voc_det_ssd", "iterations=abc", "iterations takes an integer in [1, inf)"),
    ("voc_det_ssd", "iterations=4.7", "iterations takes an integer in [1, inf)"),
    ("voc_det_ssd", "prior_scales=big", "prior_scales takes one of voc, coco"),
    ("voc_det_frcnn", "rpn_top_n=[1,2]", "rpn_top_n takes a list of integers (4 items)"),
    ("voc_det_frcnn", "test_set=[2007,tset]", "test_set takes a [YEAR, SPLIT] pair"),
    ("voc_det", "ssd.amp=maybe", "ssd.amp takes true or false"),
])
def test_settings_are_typed(run_bench, tmp_path, task, setting, accepts):
    """Case 7: --set values reached the run untyped (TypeError at run time, 1.5 epochs stored)."""
    code, out, err = run_bench("validate", "--backbone", "mini_cutmix", "--task", task, "--set", setting, "--data-root", tmp_path)
    assert code == 1 and f"setting {setting.split('=')[0]}=" in out and accepts in out, out
    code, out, err = run_bench("run", "--backbone", "mini_cutmix", "--task", task, "--set", setting, "--data-root", tmp_path)
    assert code == 2 and accepts in err and "Traceback" not in err


def test_settings_normalise_and_unhonoured_ones_do_not_exist(run_bench, tmp_path):
    from bench.cards import find_card
    from bench.runner import RunOptions, resolve_config, select_tasks

    (task,) = select_tasks("voc_det_ssd")
    config = resolve_config(task, find_card("mini_cutmix"), RunOptions(overrides={"lr": "1e-3", "test_set": [2007, "test"], "weight_decay": 0}))
    assert config["lr"] == 0.001 and config["test_set"] == ["2007", "test"] and config["weight_decay"] == 0.0
    # imagenet_cls scores the val files whatever split said: it has no such setting
    code, out, _ = run_bench("validate", "--backbone", "mini_cutmix", "--task", "imagenet_cls", "--set", "split=train", "--data-root", tmp_path)
    assert code == 1 and "task imagenet_cls has no setting split" in out
    # every task declares a type for each of its settings, and no type for a setting it lacks
    from bench.settings import flat
    from tasks import TASKS

    for entry in TASKS.entries():
        t = entry.load()()
        assert set(t.settings()) == set(flat(t.default_config())), entry.name
        assert set(entry.mini or {}) <= set(t.settings()), entry.name
        resolve_config(t, find_card("mini_cutmix"), RunOptions(mini=entry.mini is not None))  # defaults and mini values pass their own types


def test_list_settings(run_bench):
    """Case 16: settings were discoverable only by triggering an error."""
    code, out, _ = run_bench("list", "settings", "cub_loc")
    assert code == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ") and "Setting" not in line}
    assert rows["epochs"][1:4] == ["an integer in [1, inf)", "600", "1"]
    assert rows["cam_threshold"][1:3] == ["a number in [0, 1)", "0.15"] and "fraction of its maximum" in rows["cam_threshold"][4]
    assert rows["protocols"][2] == '["paper", "wsoleval"]'
    code, out, _ = run_bench("list", "settings", "voc_det")
    assert code == 0 and "| frcnn.rpn_top_n " in out and "| ssd.prior_scales " in out
    code, _, err = run_bench("list", "settings", "cub_lok")
    assert code == 2 and "cub_loc" in err


def test_force_leaves_no_orphan_samples(run_bench, cards, data_root, tmp_path):
    args = ["run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r", "--workers", 0]
    assert run_bench(*args)[0] == 0
    time.sleep(1.1)  # run ids carry the second: the forced run's samples file has another name
    assert run_bench(*args, "--force")[0] == 0
    files = list((tmp_path / "r" / "samples").iterdir())
    (record,) = _export(run_bench, tmp_path / "r")
    assert [str(f) for f in files] == [record["artifacts"]["samples"]]
