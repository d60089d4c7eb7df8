"""The backbone view: the one way tasks reach inside a model (head, pooled feature, CAM layer and
weights, stages with channels and strides), for torchvision's, timm's and ResNet-shaped models;
a head CAM cannot be read from is refused."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from bench.backbones.view import BackboneView, FeatureSpec
from bench.cards import BackboneCard
from bench.errors import BenchError
from bench.mini.model import MiniResNet

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


class NormHeadNet(MiniResNet):
    """A ResNet body with ConvNeXt's kind of head: pool -> LayerNorm -> linear."""

    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        self.norm = nn.LayerNorm(128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.norm(torch.flatten(self.avgpool(x), 1)))


def norm_head_net(num_classes: int = 10) -> NormHeadNet:
    torch.manual_seed(0)
    return NormHeadNet(num_classes)


def _view(model: nn.Module, **card: object) -> BackboneView:
    return BackboneView(model.eval(), BackboneCard(name="b", arch="x", **card))


def test_torchvision_resnet_parts():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7)
    view = _view(model)
    assert view.head() is model.fc and view.cam_layer() is model.layer4 and view.cam_norm() is None
    view.check_cam()
    with torch.no_grad():
        pooled, logits = view.pooled(X)
        ref = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(X))))))))), 1)
        torch.testing.assert_close(pooled, ref, rtol=0, atol=0)
        torch.testing.assert_close(logits, model(X), rtol=0, atol=0)
    assert view.feature_specs() == [FeatureSpec("layer1", 64, 4), FeatureSpec("layer2", 128, 8), FeatureSpec("layer3", 256, 16), FeatureSpec("layer4", 512, 32)]
    staged = view.staged()
    assert [n for n, _ in staged.named_children()] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    assert staged.layer3 is model.layer3  # shares the model's modules
    new = view.replace_head(3, seed=0)
    assert model.fc is new and new.out_features == 3 and view.head() is new
    assert view.set_stride("layer4", 1) == ["0.conv1", "0.downsample.0"] and view.feature_specs()[-1] == FeatureSpec("layer4", 512, 16)


def test_timm_resnet_parts():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False, num_classes=5)
    view = _view(model)
    view.check_cam()
    assert [s.channels for s in view.feature_specs()] == [64, 128, 256, 512] and [s.stride for s in view.feature_specs()] == [4, 8, 16, 32]
    assert view.stem()["relu"] is model.act1  # timm's names, seen under torchvision's


def test_feature_layers_come_from_the_card():
    class Renamed(nn.Module):
        def __init__(self):
            super().__init__()
            net = MiniResNet(4)
            self.conv1, self.bn1, self.relu = net.conv1, net.bn1, net.relu
            self.s1, self.s2, self.s3, self.s4 = net.layer1, net.layer2, net.layer3, net.layer4
            self.fc = net.fc

        def forward(self, x):
            x = self.s4(self.s3(self.s2(self.s1(self.relu(self.bn1(self.conv1(x)))))))
            return self.fc(x.mean((2, 3)))

    view = _view(Renamed(), feature_layers=("s1", "s2", "s3", "s4"), cam_layer="s4")
    assert [s.name for s in view.feature_specs()] == ["s1", "s2", "s3", "s4"] and view.feature_specs()[0].stride == 2
    view.check_cam()
    assert isinstance(view.staged().maxpool, nn.Identity)  # no maxpool in this stem
    with pytest.raises(BenchError, match="has no module 'layer1' \\(the card's feature_layers\\)"):
        _view(Renamed(), feature_layers=("layer1", "s2")).stages()
    assert _view(Renamed()).parts.stages == ("s2", "s4")  # derived when the card names none: the last module of each stride (4, 8)


def test_a_head_cam_cannot_read_is_refused():
    view = _view(norm_head_net())
    with pytest.raises(BenchError, match="CAM needs global average pooling of 'layer4' straight into the linear classifier 'fc'"):
        view.check_cam()
    timm = pytest.importorskip("timm")
    convnext = timm.create_model("convnext_atto", pretrained=False, num_classes=5)
    with pytest.raises(BenchError, match="CAM needs global average pooling of 'stages' straight into the linear classifier 'head.fc'"):
        _view(convnext, head=("head.fc",), cam_layer="stages", cam_norm="").check_cam()  # the card says there is no norm: refused
    _view(convnext, head=("head.fc",), cam_layer="stages").check_cam()  # derived: head.norm, folded into the weights


def test_wsol_refuses_a_norm_head_in_one_line(run_bench, tmp_path):
    from bench.mini.digits import make_scenes
    from conftest import save_cutmix_format
    from test_localization import write_mini_cub

    root = write_mini_cub(tmp_path / "data", make_scenes("train", 20, seed=1), make_scenes("val", 20, seed=1))
    ckpt = save_cutmix_format(norm_head_net(), tmp_path / "n.pth.tar")
    code, _, err = run_bench("run", "--backbone", ckpt, "--arch", "test_view:norm_head_net", "--num-classes", "10", "--task", "cub_loc", "--mini",
                             "--data-root", root, "--results", tmp_path / "r", "--workers", "0")
    assert code == 2 and "CAM needs global average pooling" in err and len(err.strip().splitlines()) == 1, err


def test_detection_needs_a_resnet_stem():
    class NoStem(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

    with pytest.raises(BenchError, match="has no 'conv1': its stem is not a ResNet's"):
        _view(NoStem()).staged()
