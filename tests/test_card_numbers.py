"""The published numbers the cards carry: every metric a card reports is one its task emits, and
every paper-table metric of the ImageNet ResNet-50 tasks has its number in the four ResNet-50
cards, and every card's published numbers equal the paper's numbers as data
(checkpoints/published/cutmix-reference-numbers.yaml, a copy of the project's reference file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.cards import load_cards
from tasks import TASKS

R50 = ("r50_baseline", "r50_mixup", "r50_cutout", "r50_cutmix")
SOURCE = Path(__file__).resolve().parents[2] / "shared" / "paper" / "cutmix-reference-numbers.yaml"
PAPER = Path(__file__).resolve().parents[1] / "checkpoints" / "published" / "cutmix-reference-numbers.yaml"


def _tasks():
    return [entry.load()() for entry in TASKS.select("*")]


def test_every_reported_metric_is_one_its_task_emits():
    by_key: dict[str, list] = {}
    for task in _tasks():
        if task.reported_key:
            by_key.setdefault(task.reported_key, []).append(task)
    for card in load_cards().values():
        for key, numbers in (card.provenance.get("reported") or {}).items():
            assert key in by_key, f"{card.name} reports numbers for '{key}', which no task reads"
            for metric in numbers:
                for task in by_key[key]:
                    task.metric_spec(metric)  # KeyError names the metric no spec declares


def test_the_four_resnet50_cards_carry_every_paper_table_metric():
    cards = load_cards()
    checked = set()
    for task in _tasks():
        if task.name.startswith("cifar100") or not task.reported_key:
            continue  # CIFAR-100 tables are PyramidNet-200's (their own cards)
        table_metrics = [m.name for m in task.metrics if any(t.startswith("paper Table") and "(not in the paper)" not in t for t in m.tables) and "{" not in m.name]
        for name in R50:
            reported = cards[name].reported(task.reported_key)
            for metric in table_metrics:
                if task.name == "voc_det":
                    continue  # the combined task's columns are the two detectors' (checked through voc_det_frcnn / voc_det_ssd)
                assert metric in reported, f"{name} lacks {task.name}'s {metric} (a paper table's number)"
                checked.add(task.name)
    assert {"imagenet_cls", "imagenet_loc", "cub_loc", "voc_det_frcnn", "voc_det_ssd", "coco_cap", "imagenet_fgsm"} <= checked


@pytest.mark.skipif(not SOURCE.is_file(), reason="the reference file is beside a checkout in the project's workspace only")
def test_the_carried_copy_equals_its_source():
    assert yaml.safe_load(PAPER.read_text()) == yaml.safe_load(SOURCE.read_text())


def test_every_cards_published_numbers_equal_the_papers():
    """Each number a card reports, looked up in the paper's numbers by table: classification
    (Tables 3-5), WSOL Top-1 Loc (Table 9), VOC mAP (Table 10), NIC (Tables 10, A1), FGSM (Table 11),
    OOD (Tables 12, A2); the one exception, the released CIFAR-100 CutMix file, is its README's."""
    paper = yaml.safe_load(PAPER.read_text())
    captions = {"bleu_1": "bleu1", "bleu_2": "bleu2", "bleu_3": "bleu3", "bleu_4": "bleu4", "meteor": "meteor", "rouge_l": "rouge_l", "cider": "cider"}
    ood_index = {"msp_tnr_at_tpr95": 0, "msp_auroc": 1, "msp_detection_acc": 2}
    checked = 0
    elsewhere = []
    in_paper = {n for table in ("imagenet_classification", "cifar100_classification") for n in paper[table]} | {"pyramidnet200_cutmix"}
    for name, card in load_cards().items():
        recipe = name.split("_", 1)[1] if "_" in name else ""
        if name not in in_paper:  # models of other publications (DeiT-S, ConvNeXt-T, ...): their numbers are their sources'
            assert "Yun et al." not in str(card.provenance.get("paper", "")) and card.provenance.get("source"), name
            elsewhere.append(name)
            continue
        for key, numbers in (card.provenance.get("reported") or {}).items():
            for metric, value in numbers.items():
                if key == "imagenet_cls":
                    expected = paper["imagenet_classification"][name][metric]
                elif key == "cifar100_cls":
                    expected = 14.23 if name == "pyramidnet200_cutmix" else paper["cifar100_classification"][name][metric]
                elif key in ("cub_loc", "imagenet_loc"):
                    expected = paper["wsol_top1_loc"]["cub200" if key == "cub_loc" else "imagenet"][name]
                elif key in ("voc_det_frcnn", "voc_det_ssd", "voc_det"):
                    detector = "ssd300" if key == "voc_det_ssd" or metric.startswith("ssd_") else "faster_rcnn"
                    expected = paper["voc07_detection_map50"][detector][name]
                elif key == "coco_cap":
                    expected = paper["coco_captioning_nic"][name][captions[metric]]
                elif key == "imagenet_fgsm":
                    expected = paper["fgsm_top1_acc"][name]
                elif key == "cifar100_ood":
                    base, _, ood_set = metric.partition("@")
                    expected = (paper["ood_cifar100_pyramidnet200"]["per_set"][ood_set][recipe][ood_index[base]] if ood_set
                                else paper["ood_cifar100_pyramidnet200"]["mean"][recipe][base.removeprefix("msp_")])
                else:
                    raise AssertionError(f"{name} reports numbers for {key}, which this test does not look up")
                assert value == expected, (name, key, metric, value, expected)
                checked += 1
    assert checked > 150
    assert sorted(elsewhere) == sorted(["convnext_t_timm", "deit_s_timm", "inception_v3_cam", "timm_r50_a1", "tv_r50_v2", "vgg16_gap"]
                                       + [n for n in load_cards() if n.startswith("mini_")]), elsewhere


def test_caption_and_fgsm_numbers_equal_the_papers():
    paper = yaml.safe_load(PAPER.read_text())
    names = {"bleu1": "bleu_1", "bleu2": "bleu_2", "bleu3": "bleu_3", "bleu4": "bleu_4", "meteor": "meteor", "rouge_l": "rouge_l", "cider": "cider"}
    cards = load_cards()
    for name in R50:
        cap = cards[name].reported("coco_cap")
        assert {names[k]: v for k, v in paper["coco_captioning_nic"][name].items()} == cap
        assert cards[name].reported("imagenet_fgsm") == {"fgsm_top1_acc": paper["fgsm_top1_acc"][name]}
    # written out from the paper's Table 11 and Table A1 (CutMix row), not from the card or the yaml
    assert [cards[n].reported("imagenet_fgsm")["fgsm_top1_acc"] for n in R50] == [8.2, 24.4, 11.5, 31.0]
    assert list(cards["r50_cutmix"].reported("coco_cap").values()) == [64.2, 46.3, 33.6, 24.9, 23.1, 49.0, 77.6]


def test_the_released_cutmix_pyramidnet_card_pairs_no_sources():
    """The released file's README gives its top-1 alone; Table 5's top-5 (2.97) belongs to its mean of three runs."""
    assert load_cards()["pyramidnet200_cutmix"].reported("cifar100_cls") == {"top1_err": 14.23}
