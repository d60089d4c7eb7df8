"""The backbone adapter's golden checks, family by family:

- the CAM equals the formula computed directly from the library's own feature call (torchvision's
  module calls, timm's forward_features), and its spatial mean gives back the logits: exactly
  (GAP + linear: logit = C * mean(CAM) + bias) or through the folded LayerNorm (ConvNeXt:
  logit = (C * mean(CAM) - mu * sum(W')) / sigma + W beta + bias);
- a ViT's map is the head applied to each patch token of the final normalised sequence;
- detectors build on every family with the expected strides and train with finite losses;
- every refusal is one line, a non-zero exit and nothing stored.
"""

from __future__ import annotations

import math
import sqlite3

import pytest
import torch
from torch import nn

from bench.backbones.view import BackboneView
from bench.cam import CamComputer
from bench.cards import BackboneCard, Preprocessing
from families import FAMILIES, build

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
CLASSES = torch.tensor([3, 7])


def _view(name: str, **card: object) -> BackboneView:
    arch, args = FAMILIES[name]
    return BackboneView(build(name), BackboneCard(name=name, arch=arch, arch_args=args, preprocessing=Preprocessing(resize=73, crop=64), **card))


def _ours(view: BackboneView) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, raw CAMs of CLASSES) through the adapter."""
    view.check_cam()
    cams = CamComputer.for_view(view, "cam")
    with torch.no_grad():
        logits = cams.extractor(X)
        raw = cams.extractor.cams(CLASSES)
    cams.close()
    return logits, raw


def _direct(name: str, m: nn.Module) -> tuple[torch.Tensor, nn.Linear, nn.LayerNorm | None]:
    """(feature map, classifier, norm between pool and classifier) from each library's own calls."""
    with torch.no_grad():
        if name == "tv_convnext":
            return m.features(X), m.classifier[2], m.classifier[0]
        if name == "tv_efficientnet":
            return m.features(X), m.classifier[1], None
        if name == "tv_regnet":
            return m.trunk_output(m.stem(X)), m.fc, None
        if name.startswith("timm_"):
            norm = m.head.norm if name == "timm_convnext" else None
            return m.forward_features(X), m.get_classifier(), norm
        if name == "vgg_gap":
            return m.relu(m.conv6(m.features(X))), m.fc, None
    raise KeyError(name)


@pytest.mark.parametrize("name", ["tv_convnext", "tv_efficientnet", "tv_regnet", "timm_convnext", "timm_efficientnet", "timm_regnet", "vgg_gap"])
def test_cam_equals_the_formula_and_gives_back_the_logits(name):
    view = _view(name)
    logits, raw = _ours(view)
    feats, fc, norm = _direct(name, view.model)
    c = feats.shape[1]
    weights = fc.weight[CLASSES] * (norm.weight[None] if norm is not None else 1)
    torch.testing.assert_close(raw, torch.einsum("bc,bchw->bhw", weights, feats) / c, rtol=1e-5, atol=1e-6)
    mean = raw.mean((1, 2)) * c
    got = logits[torch.arange(2), CLASSES]
    if norm is None:
        torch.testing.assert_close(mean + fc.bias[CLASSES], got, rtol=1e-4, atol=1e-5)
    else:  # the LayerNorm's per-image centring and scale: the same affine map at every location
        pooled = feats.mean((2, 3))
        mu, sigma = pooled.mean(1), (pooled.var(1, unbiased=False) + norm.eps).sqrt()
        expected = (mean - mu * weights.sum(1)) / sigma + (fc.weight[CLASSES] * norm.bias[None]).sum(1) + fc.bias[CLASSES]
        torch.testing.assert_close(expected, got, rtol=1e-4, atol=1e-5)
    assert view.parts.source["cam_layer"] == "probe" and view.cam_method.startswith("cam")


def test_inception_cam_gives_back_the_logits():
    view = _view("inception_cam")
    logits, raw = _ours(view)
    fc = view.model.fc
    torch.testing.assert_close(raw.mean((1, 2)) * 1024 + fc.bias[CLASSES], logits[torch.arange(2), CLASSES], rtol=1e-4, atol=1e-5)
    assert view.parts.cam_layer == "SPG_A3_2b" and tuple(raw.shape[1:]) == (4, 4)  # stride 16, as wsolevaluation's 14x14 at 224


@pytest.mark.parametrize("name,pool", [("tv_vit", None), ("timm_vit", None), ("timm_vit", "avg")])
def test_vit_cam_is_the_head_on_each_patch_token(name, pool):
    if pool:  # a mean-pooled timm ViT: fc_norm between the pooling and the head, applied to each token
        import timm

        torch.manual_seed(0)
        model = timm.create_model("test_vit", img_size=64, global_pool=pool, num_classes=10).eval()
        view = BackboneView(model, BackboneCard(name=name, arch="timm:test_vit", preprocessing=Preprocessing(resize=73, crop=64)))
    else:
        view = _view(name)
    _, raw = _ours(view)
    m = view.model
    with torch.no_grad():
        if name == "tv_vit":
            tokens = m.encoder(torch.cat([m.class_token.expand(2, -1, -1), m._process_input(X)], 1))
            patches, head = tokens[:, 1:], m.heads.head
        else:
            tokens = m.forward_features(X)
            patches, head = tokens[:, m.num_prefix_tokens:], m.head
            if pool:
                patches = m.fc_norm(patches)
    expected = torch.einsum("bc,bnc->bn", head.weight[CLASSES], patches) / patches.shape[-1]
    torch.testing.assert_close(raw, expected.reshape(2, 4, 4), rtol=1e-5, atol=1e-6)
    assert view.parts.family == "vit" and view.cam_method.startswith("vit_patch_tokens")
    assert (view.parts.cam_norm == "fc_norm") == bool(pool)


@pytest.mark.parametrize("name,frcnn,ssd", [("tv_convnext", [4, 8, 16, 32], [8, 16]), ("timm_efficientnet", [4, 8, 16, 32], [8, 16]),
                                            ("vgg_gap", [4, 8, 16], [8, 16]), ("tv_vit", [4, 8, 16, 32], [8, 16])])
def test_detectors_build_on_each_family_with_their_strides_and_train(name, frcnn, ssd):
    import tasks
    from bench.detection.models import build_on_adapter
    from tasks.detection import FRCNN, SSD

    for kind, cfg, strides in (("frcnn", {**FRCNN, **tasks.MINI_FRCNN, "design": "fpn"}, frcnn), ("ssd", {**SSD, **tasks.MINI_SSD}, ssd)):
        view = _view(name)
        torch.manual_seed(0)
        det, info = build_on_adapter(kind, view, 20, (0.5,) * 3, (0.25,) * 3, cfg)
        body = det.backbone.body if kind == "frcnn" and hasattr(det.backbone, "body") else (det.backbone.sources if kind == "ssd" else det.backbone)
        with torch.no_grad():
            maps = body(torch.zeros(1, 3, 64, 64))
        assert [64 // m.shape[-1] for k, m in maps.items() if k != "pool"] == strides, (name, kind)
        det.train()
        images = [torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(2)]
        targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([3])}] * 2
        opt = torch.optim.SGD([p for p in det.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
        for _ in range(3):
            losses = det(images, targets)
            assert all(math.isfinite(float(v)) for v in losses.values()), losses
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
        frozen = [p for n, p in det.named_parameters() if not p.requires_grad]
        assert frozen and info["frozen"], info  # the stem (a ViT: its patch embedding) does not train
        assert "BatchNorm2d" not in info["norm_layers"] or not info["norm_layers"]["BatchNorm2d"].get("trainable"), info


# --- bad input: one clear line, a non-zero exit, nothing stored ---


class FlatHead(nn.Module):
    """Features flattened into the classifier (no global pooling): no map for CAM to weigh."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class MlpHead(nn.Module):
    """Pooling, then an MLP: the logits are not linear in the pooled map."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=4, padding=1)
        self.hidden = nn.Linear(16, 16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.hidden(torch.relu(self.conv(x)).mean((2, 3)))))


def flat_head(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return FlatHead(num_classes)


def mlp_head(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return MlpHead(num_classes)


@pytest.fixture(scope="module")
def wsol_data(tmp_path_factory):
    from bench.mini.digits import make_scenes
    from test_localization import write_mini_cub

    return write_mini_cub(tmp_path_factory.mktemp("cub") / "data", make_scenes("train", 20, seed=1), make_scenes("val", 20, seed=1))


def _card(folder, name: str, arch: str, extra: str = "") -> None:
    import families

    model = build(name) if name in FAMILIES else families_build(arch)
    torch.save(model.state_dict(), folder / f"{name}.pth")
    (folder / f"{name}.yaml").write_text(families.CARD.format(name=name, arch=arch, args="{}", file=folder / f"{name}.pth") + extra)


def families_build(arch: str) -> nn.Module:
    from bench.backbones.build import build_model

    return build_model(arch, 10)


@pytest.mark.parametrize("arch,extra,task,message", [
    ("test_adapter:flat_head", "", "cub_loc", "has no map with its classifier's 2048 channels before the pooling, so no CAM. name the map the classifier pools as the card's cam_layer"),
    ("families:tv_regnet", "cam_layer: trunk_output.block9\n", "cub_loc", "has no module 'trunk_output.block9' (the card's cam_layer). set cam_layer in its card"),
    ("test_adapter:mlp_head", "", "cub_loc", "CAM needs global average pooling of 'conv' straight into the linear classifier 'fc'"),
    ("families:tv_regnet", "feature_layers: [trunk_output.block1, trunk_output.block4]\n", "voc_det_ssd",
     "SSD takes the stride-8 and stride-16 maps, and bad's stages are at strides 4, 32. list modules at strides 8 and 16 in the card's feature_layers"),
    ("families:tv_convnext", "", "voc_det_frcnn", "Faster R-CNN C4 runs layer4 of a ResNet as its box head, and bad is a non-ResNet backbone. --set design=fpn"),
])
def test_adapter_refusals_are_one_line_and_store_nothing(arch, extra, task, message, run_bench, mini_data, wsol_data, tmp_path, monkeypatch):
    from test_families import SPEC

    folder = tmp_path / "cards"
    folder.mkdir()
    _card(folder, "bad", arch, extra)
    monkeypatch.setenv("BENCH_CARDS", str(folder))
    data = wsol_data if task == "cub_loc" else mini_data(SPEC)
    code, out, err = run_bench("run", "--backbone", "bad", "--task", task, "--mini", "--data-root", data, "--results", tmp_path / "r", "--workers", 0, "--limit", 4)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    db = tmp_path / "r" / "bench.sqlite"
    assert not db.exists() or sqlite3.connect(db).execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_an_unknown_timm_name_says_did_you_mean(run_bench, tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    code, _, err = run_bench("run", "--backbone", weights, "--arch", "timm:convnext_tinyy", "--task", "imagenet_cls", "--results", tmp_path / "r")
    assert code == 2 and "unknown timm model 'convnext_tinyy'" in err and "did you mean convnext_tiny" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_bench("run", "--backbone", "timm:deit_smal_patch16_224", "--task", "imagenet_cls", "--results", tmp_path / "r")
    assert code == 2 and "unknown timm pretrained model 'deit_smal_patch16_224'" in err and "did you mean deit_small_patch16_224" in err, err
    assert not (tmp_path / "r" / "bench.sqlite").exists() or sqlite3.connect(tmp_path / "r" / "bench.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)


@pytest.mark.parametrize("arch,tv,unused", [("vgg16_gap", "vgg16", ("classifier",)),
                                            ("inception_v3_cam", "inception_v3", ("Mixed_7a", "Mixed_7b", "Mixed_7c", "AuxLogits", "fc"))])
def test_torchvisions_files_load_into_the_wsol_nets(arch, tv, unused, tmp_path):
    """Every key of torchvision's file outside weights.unused has a place of the same shape in
    bench's network, and every key of bench's network outside the head comes from the file."""
    import torchvision

    from bench.backbones.build import _is_head, build_model, strict_load
    from bench.backbones.checkpoint import read_checkpoint
    from bench.cards import Weights
    from bench.errors import BenchError

    with torch.device("meta"):
        ref = torchvision.models.get_model(tv, weights=None, **({"aux_logits": True, "init_weights": False} if tv == "inception_v3" else {}))
    ours = build_model(arch, 200)
    head = ours.bench_parts["head"]
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not _is_head(k, unused)}
    assert theirs == {k: tuple(v.shape) for k, v in ours.state_dict().items() if not _is_head(k, head)}
    # a file with torchvision's keys: the kept ones from bench's network, the unused ones tiny
    sd = {k: v for k, v in ours.state_dict().items() if not _is_head(k, head)}
    sd.update({k: torch.zeros(1) for k in ref.state_dict() if _is_head(k, unused)})
    torch.save(sd, tmp_path / "tv.pth")
    card = BackboneCard(name=arch, arch=arch, num_classes=200, weights=Weights(format="torchvision", unused=unused))
    report = strict_load(build_model(arch, 200), read_checkpoint(tmp_path / "tv.pth"), card, True, "tv.pth")
    assert report.dropped and all(_is_head(k, unused) for k in report.dropped) and {k.split(".")[0] for k in report.replaced} == set(head)
    with pytest.raises(BenchError, match="missing"):  # a task that keeps the classifier: the new layers are not in the file
        strict_load(build_model(arch, 200), read_checkpoint(tmp_path / "tv.pth"), card, False, "tv.pth")


def test_gradcam_on_a_vit_reads_the_patch_grid():
    """A Grad-CAM method on a ViT: the tokens laid out on the patch grid (row-major, class token
    left out), as a direct call of the grad-cam package with that layout written here gives."""
    import numpy as np
    import pytorch_grad_cam as gc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from bench.metrics.wsol import normalize_scoremap

    view = _view("tv_vit")
    ours = CamComputer.for_view(view, "gradcam")
    _, (maps,) = ours(X, [CLASSES], (64, 64))
    ours.close()

    def grid(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 1:].reshape(tokens.shape[0], 4, 4, tokens.shape[-1]).permute(0, 3, 1, 2)

    with gc.GradCAM(model=view.model, target_layers=[view.model.encoder], reshape_transform=grid) as cam:
        direct = cam(input_tensor=X.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in CLASSES])
    for mine, theirs in zip(maps, direct):
        np.testing.assert_allclose(mine, normalize_scoremap(theirs), atol=1e-5)
