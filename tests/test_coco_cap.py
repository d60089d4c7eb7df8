"""coco_cap end to end on the mini COCO (the real layout): its metrics equal coco-caption's on the
captions it stored, training resumes to the same decoder, and bad data is one line with nothing
stored."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from bench.mini.build import MiniSpec, ensure_data
from bench.mini.model import mini_resnet
from conftest import assert_informative, assert_stats_reproduce, save_cutmix_format

FAST = ["--set", "epochs=2", "--set", "beam=2"]


COCO = MiniSpec(seed=2, train=80, val=24, datasets=("coco",))


@pytest.fixture
def coco_root(mini_data):
    return mini_data(COCO)  # shared: read only


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save_cutmix_format(mini_resnet(10), tmp_path / "mini.pth.tar")


def args(ckpt, root, results, *extra):
    return ["run", "--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "coco_cap", "--mini",
            "--preprocessing-from", "mini_cutmix", "--data-root", root, "--results", results, "--workers", "0", *FAST, *extra]


def test_coco_cap_scores_its_own_captions_as_coco_caption_does(run_bench, tmp_path, coco_root, ckpt):
    from bench.data.coco import read_captions
    from bench.metrics.captions import caption_metrics

    code, out, err = run_bench(*args(ckpt, coco_root, tmp_path / "r"))
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    refs = read_captions(coco_root / "coco" / "annotations" / "captions_val2014.json")
    assert len(rows) == 24 and {r["image_id"] for r in rows} == set(refs.captions)
    assert assert_stats_reproduce(record) == 6  # BLEU-1..4 from summed per-image counts, ROUGE-L and CIDEr as per-image means
    expected, info = caption_metrics(refs.captions, {r["image_id"]: r["caption"] for r in rows})
    for name, value in record["metrics"].items():
        assert value == pytest.approx(expected[name], abs=1e-9), name
    assert_informative({k: v for k, v in record["metrics"].items() if k.startswith("bleu")})
    assert record["details"]["tokenizer"] == info["tokenizer"] and record["details"]["decoder"]["optimizer"] == "adam"
    assert record["metric_meta"]["bleu_4"]["tables"] == ["paper Table 10: NIC BLEU-4", "paper Table A1: BLEU-4", "transfer: Image Captioning (BLEU-4)"]
    # --limit captions N evenly spaced val images; the decoder stage is reused
    code, out, err = run_bench(*args(ckpt, coco_root, tmp_path / "r", "--limit", "6"))
    assert code == 0 and "6/24" in out, err
    limited = json.loads(run_bench("export", "--results", tmp_path / "r")[1])[-1]
    assert limited["details"]["decoder"]["cached"] and limited["n_samples"] == {"total": 24, "evaluated": 6}


def test_decoder_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import bench.captioning.train as train

    torch.manual_seed(1)
    features = torch.randn(12, 16)
    captions = [[[1, 4 + (i % 5), 4 + (i % 3), 2], [1, 4 + (i % 4), 2]] for i in range(12)]
    cfg = train.DecoderConfig(embed=8, hidden=12, dropout=0.1, epochs=3, batch_size=5, lr=0.01)
    whole, _ = train.train_decoder(features, captions, 10, cfg, tmp_path / "a", "cpu", seed=3)
    saves = []
    real = train.save_atomic

    def crash_after_first_epoch(obj, path):
        real(obj, path)
        saves.append(path)
        if len(saves) == 1:
            raise KeyboardInterrupt  # killed right after epoch 1's checkpoint
    monkeypatch.setattr(train, "save_atomic", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.train_decoder(features, captions, 10, cfg, tmp_path / "b", "cpu", seed=3)
    monkeypatch.setattr(train, "save_atomic", real)
    resumed, info = train.train_decoder(features, captions, 10, cfg, tmp_path / "b", "cpu", seed=3)
    assert info["resumed_from_epoch"] == 1
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("damage, message", [
    (lambda root: next((root / "coco" / "val2014").iterdir()).unlink(), "image(s) listed in"),
    (lambda root: (root / "coco" / "annotations" / "captions_train2014.json").write_text("[]"), "lacks its 'images' and 'annotations' lists"),
    (lambda root: None, "the vocabulary would be empty"),
])
def test_bad_data_is_one_line_and_stores_nothing(run_bench, tmp_path, coco_root, ckpt, damage, message):
    shutil.copytree(coco_root / "coco", tmp_path / "data" / "coco")  # the shared data stays whole
    coco_root = tmp_path / "data"
    damage(coco_root)
    extra = ["--set", "min_count=100000"] if "vocabulary" in message else []
    code, _, err = run_bench(*args(ckpt, coco_root, tmp_path / "r", *extra))
    assert code == 2 and message in err and len([l for l in err.splitlines() if l.startswith("bench: error")]) == 1, err
    assert sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_karpathy_split_trains_on_train_and_restval_and_scores_test(run_bench, tmp_path, coco_root, ckpt):
    code, out, err = run_bench(*args(ckpt, coco_root, tmp_path / "r", "--set", "split=karpathy"))
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    karpathy = json.loads((coco_root / "coco" / "dataset_coco.json").read_text())["images"]
    test_ids = {i["cocoid"] for i in karpathy if i["split"] == "test"}
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    assert {r["image_id"] for r in rows} == test_ids and record["n_samples"]["total"] == len(test_ids) == 8
    assert record["details"]["decoder"]["images"] == 80 + 8 and record["details"]["split"] == "Karpathy train + restval -> test"
    # a split file that disagrees with the annotations is one line
    first = karpathy[0]
    first["filename"] = "COCO_train2014_999999999999.jpg"
    (coco_root / "coco" / "dataset_coco.json").write_text(json.dumps({"images": karpathy}))
    code, _, err = run_bench(*args(ckpt, coco_root, tmp_path / "r2", "--set", "split=karpathy"))
    assert code == 2 and "disagrees with captions_train2014.json (it names COCO_train2014_000000000001.jpg)" in err, err


def test_end_to_end_training_moves_the_backbone_and_resumes(run_bench, tmp_path, coco_root, ckpt, monkeypatch):
    """encoder=finetune: the backbone trains with the decoder; the stage keeps its weights; a run
    stopped after its first epoch resumes to the same decoder and backbone."""
    import bench.captioning.train as train
    from bench.backbones.view import BackboneView
    from bench.cards import find_card

    code, out, err = run_bench(*args(ckpt, coco_root, tmp_path / "r", "--set", "encoder=finetune", "--set", "epochs=1", "--limit", "6"))
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    info = record["details"]["decoder"]
    assert info["encoder"] == "finetune" and info["encoder_lr"] == 1e-4 and record["details"]["encoder"] == "finetune"
    trained = torch.load(Path(info["stage_dir"]) / "decoder.pt", weights_only=True)["backbone"]
    original = {k.removeprefix("module."): v for k, v in torch.load(ckpt, weights_only=True)["state_dict"].items()}
    assert not torch.equal(trained["layer4.0.conv1.weight"], original["layer4.0.conv1.weight"])
    assert torch.equal(trained["bn1.running_mean"], original["bn1.running_mean"])  # BatchNorm statistics stay the checkpoint's

    card = find_card("mini_cutmix")
    paths = sorted((coco_root / "coco" / "train2014").iterdir())[:6]
    captions = [[[1, 4 + (i % 5), 4 + (i % 3), 2]] for i in range(6)]
    cfg = train.DecoderConfig(embed=8, hidden=12, dropout=0.1, epochs=2, batch_size=4, lr=0.01)

    def encoder() -> train.Encoder:
        torch.manual_seed(0)
        return train.Encoder(BackboneView(mini_resnet(10).eval(), card), paths, lr=1e-3)
    whole_enc = encoder()
    whole, _ = train.train_decoder(None, captions, 10, cfg, tmp_path / "a", "cpu", seed=3, encoder=whole_enc)
    real = train.save_atomic

    def crash(obj, path):
        real(obj, path)
        raise KeyboardInterrupt  # killed right after epoch 1's checkpoint
    monkeypatch.setattr(train, "save_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        train.train_decoder(None, captions, 10, cfg, tmp_path / "b", "cpu", seed=3, encoder=encoder())
    monkeypatch.setattr(train, "save_atomic", real)
    resumed_enc = encoder()
    resumed, info = train.train_decoder(None, captions, 10, cfg, tmp_path / "b", "cpu", seed=3, encoder=resumed_enc)
    assert info["resumed_from_epoch"] == 1
    for a, b in zip(list(whole.state_dict().values()) + list(whole_enc.view.model.state_dict().values()),
                    list(resumed.state_dict().values()) + list(resumed_enc.view.model.state_dict().values())):
        assert torch.equal(a, b)


def test_a_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    import bench.captioning.train as train
    from bench.errors import BenchError

    features = torch.randn(6, 16)
    captions = [[[1, 4, 5, 2]] for _ in range(6)]
    cfg = train.DecoderConfig(embed=8, hidden=12, dropout=0.0, epochs=3, batch_size=6, lr=0.01)
    real = train.save_atomic

    def poison_after_first_epoch(obj, path):  # epoch 2 then sees a NaN feature
        real(obj, path)
        features[0, 0] = float("nan")
    monkeypatch.setattr(train, "save_atomic", poison_after_first_epoch)
    with pytest.raises(BenchError, match="decoder training diverged at epoch 2 .*the last good checkpoint \\(epoch 1\\) is kept in"):
        train.train_decoder(features, captions, 8, cfg, tmp_path / "s", "cpu", seed=0)
    assert torch.load(tmp_path / "s" / "state.pt", weights_only=True)["epoch"] == 1 and not (tmp_path / "s" / "decoder.pt").exists()


def test_encoder_lr_needs_a_training_encoder(run_bench, tmp_path):
    code, out, _ = run_bench("validate", "--backbone", "mini_cutmix", "--task", "coco_cap", "--set", "encoder_lr=0.01", "--data-root", tmp_path)
    assert code == 1 and "encoder_lr applies to encoder=finetune only" in out


def test_the_paper_code_preset_trains_with_the_backbone_in_the_loop(run_bench, tmp_path, coco_root, ckpt):
    """preset=paper_code: every value of the NIC code in the record (--mini and --set still win),
    BatchNorm statistics drifted by the training batches and kept by the stage, scores equal to
    coco-caption's on the stored captions."""
    from bench.data.coco import read_captions
    from bench.metrics.captions import caption_metrics
    from tasks.captioning import PRESETS

    code, out, err = run_bench(*args(ckpt, coco_root, tmp_path / "r", "--set", "preset=paper_code", "--set", "epochs=1"))
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    config = record["task"]["config"]
    mini_or_set = {"epochs", "beam", "batch_size", "lr", "min_count", "max_length"}
    assert all(config[k] == v for k, v in PRESETS["paper_code"].items() if k not in mini_or_set) and config["preset"] == "paper_code"
    assert config["epochs"] == 1 and config["beam"] == 2  # --set wins over the preset
    info = record["details"]["decoder"]
    assert info["encoder_batchnorm"].startswith("training mode") and info["transform"] == "squash_crop_flip" and info["config"]["loss_norm"] == "positions"
    stage = torch.load(Path(info["stage_dir"]) / "decoder.pt", weights_only=True)
    original = {k.removeprefix("module."): v for k, v in torch.load(ckpt, weights_only=True)["state_dict"].items()}
    drifted = [k for k in stage["backbone"] if k.endswith("running_mean") and not torch.equal(stage["backbone"][k], original[k])]
    assert drifted  # the statistics moved with the training batches
    assert all(torch.equal(stage["backbone"][k], original[k]) for k in original
               if (k.endswith("weight") or k.endswith("bias")) and not k.startswith("fc."))  # weights frozen (the classifier is not used)
    rows = [json.loads(line) for line in Path(record["artifacts"]["samples"]).read_text().splitlines()]
    refs = read_captions(coco_root / "coco" / "annotations" / "captions_val2014.json")
    expected, _ = caption_metrics(refs.captions, {r["image_id"]: r["caption"] for r in rows})
    for name, value in record["metrics"].items():
        assert value == pytest.approx(expected[name], abs=1e-9), name
