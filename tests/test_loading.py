"""Checkpoint loading in every supported format, strictness, and every bad checkpoint we know of."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from bench.backbones.build import load_backbone
from bench.backbones.checkpoint import read_checkpoint
from bench.cards import resolve_backbone
from bench.errors import BenchError
from conftest import NUM_CLASSES, save_cutmix_format, tiny_model

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def direct_logits(model: torch.nn.Module) -> torch.Tensor:
    """Reference: the same weights loaded straight into torchvision, strictly."""
    ref = torchvision.models.resnet18(weights=None, num_classes=NUM_CLASSES)
    ref.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        return ref.eval()(X)


def bench_logits(path: Path, arch: str = "resnet18", **kw) -> tuple[torch.Tensor, object]:
    loaded = load_backbone(resolve_backbone(str(path), arch=arch, num_classes=NUM_CLASSES), **kw)
    with torch.no_grad():
        return loaded.model(X), loaded


def write(model: torch.nn.Module, path: Path, fmt: str) -> Path:
    sd = model.state_dict()
    if fmt == "cutmix":
        return save_cutmix_format(model, path)
    if fmt == "state_dict":
        torch.save(sd, path)
    elif fmt == "module_state_dict":
        torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    elif fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    elif fmt == "model_key":
        torch.save({"model": sd, "epoch": 3}, path)
    elif fmt in ("state_dict_ema", "model_ema"):  # EMA weights alone under their key (timm, DeiT)
        torch.save({fmt: {f"module.{k}": v for k, v in sd.items()} if fmt == "model_ema" else sd, "epoch": 3}, path)
    return path


@pytest.mark.parametrize(
    "fmt,suffix,expected",
    [
        ("cutmix", ".pth.tar", "cutmix"),
        ("state_dict", ".pth", "state_dict"),
        ("module_state_dict", ".pth", "module_state_dict"),
        ("safetensors", ".safetensors", "safetensors"),
        ("model_key", ".pth", "dict['model']"),
        ("state_dict_ema", ".pth", "dict['state_dict_ema']"),
        ("model_ema", ".pth", "dict['model_ema']"),
    ],
)
def test_every_format_gives_torchvision_logits(tmp_path, fmt, suffix, expected):
    model = tiny_model(seed=1)
    path = write(model, tmp_path / f"ckpt{suffix}", fmt)
    logits, loaded = bench_logits(path)
    torch.testing.assert_close(logits, direct_logits(model), rtol=0, atol=1e-6)
    assert loaded.report.format == expected
    assert loaded.report.stripped_prefix == ("module." if fmt in ("cutmix", "module_state_dict", "model_ema") else None)
    assert loaded.report.missing == loaded.report.unexpected == loaded.report.replaced == []
    assert len(loaded.sha256) == 64


def test_cutmix_meta_is_kept(checkpoint):
    ckpt = read_checkpoint(checkpoint)
    assert ckpt.format == "cutmix" and ckpt.stripped_prefix == "module."
    assert ckpt.meta == {"epoch": 300, "arch": "resnet", "best_err1": 21.4, "best_err5": 5.92}


def test_timm_arch_with_local_file(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    model = timm.create_model("resnet18", pretrained=False, num_classes=NUM_CLASSES).eval()
    path = write(model, tmp_path / "timm.pth", "module_state_dict")
    logits, _ = bench_logits(path, arch="timm:resnet18")
    with torch.no_grad():
        torch.testing.assert_close(logits, model(X), rtol=0, atol=1e-6)


def test_timm_pretrained_offline_is_one_clear_error(monkeypatch):
    """Case 13: offline, timm:NAME spent ~50 s of hub retries and 44 warning lines before failing."""
    pytest.importorskip("timm")
    from bench.backbones import timm_weights

    card = resolve_backbone("timm:resnet18.a1_in1k")
    assert card.preprocessing.crop == 224 and card.preprocessing.interpolation == "bicubic"
    asked = []
    monkeypatch.setattr(timm_weights, "reachable", lambda host: asked.append(host) or False)
    with pytest.raises(BenchError, match="timm weights for 'resnet18.a1_in1k' are not in the cache .* and HF_HUB_OFFLINE is set") as err:
        load_backbone(card)
    assert asked == [] and "--arch timm:resnet18.a1_in1k" in str(err.value)  # HF_HUB_OFFLINE: the network is never asked
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(BenchError, match="not in the cache .* and huggingface.co cannot be reached"):
        load_backbone(card)
    assert asked == ["huggingface.co"]  # one quick check, then the one line; no hub retries


def test_timm_pretrained_loads_from_the_hub_cache_offline(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(5)
    model = timm.create_model("resnet18", pretrained=False).eval()
    snap = tmp_path / "hf" / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snap / "model.safetensors"))
    loaded = load_backbone(resolve_backbone("timm:resnet18.a1_in1k"))  # HF_HUB_OFFLINE=1 (isolated_env)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(X), model(X), rtol=0, atol=0)


def test_torchvision_spec_reads_weights_metadata():
    card = resolve_backbone("torchvision:resnet50.IMAGENET1K_V1")
    assert (card.arch, card.preprocessing.resize, card.preprocessing.crop) == ("resnet50", 256, 224)
    assert card.weights.sha256 == "0676ba61" and card.weights.format == "torchvision"
    assert card.reported("imagenet_cls") == {"top1_err": pytest.approx(23.87), "top5_err": pytest.approx(7.138)}
    v2 = resolve_backbone("torchvision:resnet50")  # DEFAULT
    assert v2.name == "torchvision:resnet50.IMAGENET1K_V2" and v2.preprocessing.resize == 232
    with pytest.raises(BenchError, match="has no weights 'V9'"):
        resolve_backbone("torchvision:resnet50.V9")


def test_torchvision_weights_found_in_torch_hub_cache_and_hash_checked(tmp_path, monkeypatch):
    card = resolve_backbone("torchvision:resnet18.IMAGENET1K_V1")
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(tiny_model().state_dict(), hub / card.weights.file)  # right name, wrong bytes
    with pytest.raises(BenchError, match="sha256 mismatch .*expected f37072fd"):
        load_backbone(card)


# --- bad checkpoints: one clear BenchError each --------------------------------------------

def test_truncated_file(tmp_path, checkpoint):
    data = checkpoint.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError, match="is a truncated or damaged PyTorch checkpoint") as err:
        bench_logits(bad)
    detail = err.value.message.split("(", 1)[1]
    assert len(err.value.message.splitlines()) == 1 and (detail.endswith(" ...)") or len(detail) < 160)  # never cut mid-word


@pytest.mark.parametrize("content", [b"", b"<html>quota exceeded</html>", b"\x00" * 100, b"hello world, this is text", b"e"])
def test_not_a_checkpoint(tmp_path, content):
    """Text (torch's unpickler raised KeyError: 101 on it), an HTML page, zeros, a single byte: one line each."""
    bad = tmp_path / "model.pth"
    bad.write_bytes(content)
    with pytest.raises(BenchError, match="is empty|is not a PyTorch checkpoint \\(it starts with") as err:
        bench_logits(bad)
    assert "point --backbone at the .pth" in err.value.hint or not content


def test_bad_safetensors(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(BenchError, match="not a readable safetensors file"):
        bench_logits(bad)


def test_other_architecture_names_the_likely_one(tmp_path):
    path = write(tiny_model(arch="resnet50"), tmp_path / "r50.pth", "cutmix")
    with pytest.raises(BenchError, match=r"does not fit resnet18: 198 unexpected .*; 24 of another shape \(layer1.0.conv1.weight: .*look like resnet50: pass --arch resnet50"):
        bench_logits(path)


def test_missing_keys_are_named(tmp_path):
    sd = tiny_model().state_dict()
    del sd["layer4.1.conv2.weight"]
    torch.save(sd, tmp_path / "m.pth")
    with pytest.raises(BenchError, match=r"1 missing \(layer4.1.conv2.weight\)"):
        bench_logits(tmp_path / "m.pth")


def test_extra_keys_are_named(tmp_path):
    sd = tiny_model().state_dict()
    sd["projector.0.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "m.pth")
    with pytest.raises(BenchError, match=r"1 unexpected \(projector.0.weight\)"):
        bench_logits(tmp_path / "m.pth")


def test_other_head_size_says_num_classes(tmp_path):
    torch.save(tiny_model(num_classes=7).state_dict(), tmp_path / "m.pth")
    with pytest.raises(BenchError, match="classifier has 7 outputs: pass --num-classes 7"):
        bench_logits(tmp_path / "m.pth")


def test_head_may_differ_only_when_the_task_replaces_it(tmp_path):
    model = tiny_model(num_classes=7)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    logits, loaded = bench_logits(tmp_path / "m.pth", replace_head=True)
    assert loaded.report.replaced == ["fc.bias", "fc.weight"]
    # the whole backbone before the head is the file's
    feats = torch.nn.Sequential(*list(loaded.model.children())[:-1])
    ref = torch.nn.Sequential(*list(model.children())[:-1])
    with torch.no_grad():
        torch.testing.assert_close(feats(X), ref(X), rtol=0, atol=0)
    # a headless checkpoint is fine for such tasks, and the report says what was missing
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, tmp_path / "headless.pth")
    _, loaded = bench_logits(tmp_path / "headless.pth", replace_head=True)
    assert loaded.report.missing == ["fc.bias", "fc.weight"]
    with pytest.raises(BenchError, match=r"2 missing \(fc.bias, fc.weight\)"):
        bench_logits(tmp_path / "headless.pth")


def test_old_checkpoint_without_num_batches_tracked(tmp_path):
    model = tiny_model()
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    logits, loaded = bench_logits(tmp_path / "old.pth")
    torch.testing.assert_close(logits, direct_logits(model), rtol=0, atol=1e-6)
    assert "bn1.num_batches_tracked" in loaded.report.filled


class NeedsCode:
    def __init__(self, sd):
        self.sd = sd


def test_pickle_that_needs_code_is_refused_unless_trusted(tmp_path):
    model = tiny_model()
    path = tmp_path / "code.pth"
    torch.save({"state_dict": model.state_dict(), "extra": NeedsCode(1)}, path)
    with pytest.raises(BenchError, match="needs code to load.*--trust-checkpoint"):
        bench_logits(path)
    logits, loaded = bench_logits(path, trust=True)
    torch.testing.assert_close(logits, direct_logits(model), rtol=0, atol=1e-6)


def test_no_state_dict_inside(tmp_path):
    torch.save({"epoch": 3, "notes": "nothing"}, tmp_path / "m.pth")
    with pytest.raises(BenchError, match=r"holds no state_dict \(found: epoch, notes\)"):
        bench_logits(tmp_path / "m.pth")


def test_local_file_needs_arch(checkpoint):
    with pytest.raises(BenchError, match="needs its architecture.*--arch"):
        resolve_backbone(str(checkpoint))


def test_unknown_arch_did_you_mean(checkpoint):
    with pytest.raises(BenchError, match="unknown architecture 'resnet5'.*did you mean"):
        load_backbone(resolve_backbone(str(checkpoint), arch="resnet5"))
