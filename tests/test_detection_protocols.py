"""Detection settings against the paper codebases' configurations, value by value: jwyang's
faster-rcnn.pytorch (lib/model/utils/config.py with cfgs/res50.yml) and amdegroot's ssd.pytorch
(data/config.py, ssd.py, layers/functions/detection.py). The expected values are written here from
those files, not read from bench."""

from __future__ import annotations

import pytest
import torch
import torchvision

from bench.cards import find_card
from bench.detection.models import build_detector
from bench.detection.train import Schedule, param_groups
from bench.errors import BenchError
from bench.runner import RunOptions, resolve_config
from tasks.detection import VocBoth, VocFasterRCNN, VocSSD

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# jwyang's configuration: ANCHOR_SCALES [8, 16, 32] x FEAT_STRIDE 16; res50.yml TRAIN.BATCH_SIZE 256 RoIs;
# TRAIN.RPN_PRE/POST_NMS_TOP_N 12000/2000, TEST 6000/300; TEST.NMS 0.3; test_net.py thresh 0.0;
# RPN_MIN_SIZE 8 (train) / 16 (test); BIAS_DECAY False; CROP_RESIZE_WITH_MAX_POOL with POOLING_SIZE 7;
# the RPN's 3x3 conv has 512 channels; no warm-up; pascal_voc.py keeps difficult objects
JWYANG = {"anchor_sizes": [8 * 16, 16 * 16, 32 * 16], "rois_per_image": 256, "rpn_top_n": [12000, 2000, 6000, 300], "box_nms_thresh": 0.3,
          "box_score_thresh": 0.0, "rpn_min_size": [8, 16], "bias_weight_decay": False, "roi_max_pool": True, "rpn_channels": 512,
          "warmup_iters": 0, "train_difficult": True}
# ssd.pytorch: voc min_sizes 30, 60, 111, 162, 213, 264 of 300; L2Norm(512, 20) on conv4_3; Detect(top_k=200 per class,
# conf 0.01, nms 0.45) with no cap per image (20 classes x 200); extras 5 -> 3 and 3 -> 1 by valid 3x3 convs;
# VOCAnnotationTransform(keep_difficult=False)
SSD_PYTORCH = {"prior_scales": "voc", "l2norm_scale": 20, "topk_candidates": 200, "detections_per_img": 20 * 200, "extras": "ssd_pytorch",
               "train_difficult": False}


def resolved(task, **overrides):
    return resolve_config(task, find_card("mini_cutmix"), RunOptions(overrides=overrides))


def test_jwyang_preset_is_faster_rcnn_pytorchs_configuration():
    config = resolved(VocFasterRCNN(), preset="jwyang")
    assert {k: config[k] for k in JWYANG} == JWYANG and config["preset"] == "jwyang"
    assert (config["batch_size"], config["lr"], config["iterations"], config["steps"]) == (8, 0.01, 120_000, [100_000])  # the paper's schedule stays
    assert resolved(VocFasterRCNN(), preset="jwyang", box_nms_thresh=0.4)["box_nms_thresh"] == 0.4  # --set wins over a preset
    both = resolved(VocBoth(), **{"frcnn.preset": "jwyang", "ssd.preset": "ssd_pytorch"})
    assert {k: both["frcnn"][k] for k in JWYANG} == JWYANG and {k: both["ssd"][k] for k in SSD_PYTORCH} == SSD_PYTORCH
    defaults = resolved(VocFasterRCNN())
    assert (defaults["box_nms_thresh"], defaults["box_score_thresh"], defaults["rpn_channels"], defaults["train_difficult"]) == (0.5, 0.05, None, True)
    assert resolved(VocSSD())["train_difficult"] is False and resolved(VocSSD())["prior_scales"] == "voc"
    with pytest.raises(BenchError, match="unknown frcnn preset 'detectron'"):
        resolved(VocFasterRCNN(), preset="detectron")


def test_jwyang_model():
    cfg = resolved(VocFasterRCNN(), preset="jwyang")
    model = build_detector("frcnn", torchvision.models.resnet50(weights=None), 20, MEAN, STD, cfg)
    assert model.rpn.head.conv.out_channels == 512 and model.rpn.head.cls_logits.out_channels == 9  # 3 sizes x 3 ratios
    assert model.rpn._pre_nms_top_n == {"training": 12000, "testing": 6000} and model.rpn._post_nms_top_n == {"training": 2000, "testing": 300}
    assert (model.roi_heads.nms_thresh, model.roi_heads.score_thresh, model.roi_heads.detections_per_img) == (0.3, 0.0, 100)
    assert model.roi_heads.box_roi_pool.output_size == (14, 14) and model.roi_heads.fg_bg_sampler.batch_size_per_image == 256
    seen = []
    hook = model.roi_heads.box_head.layer4.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape[-2:]), tuple(o.shape[-2:]))))
    with torch.no_grad():
        model.roi_heads.box_head.eval()(torch.zeros(2, 1024, 14, 14))
    hook.remove()
    assert seen == [((7, 7), (4, 4))]  # crop 14, max-pool to 7, layer4 to 4x4
    for mode, size in ((True, 8), (False, 16)):
        model.rpn.train(mode)
        for pre_hook in model.rpn._forward_pre_hooks.values():
            pre_hook(model.rpn, ())
        assert model.rpn.min_size == size
    groups = param_groups(model, Schedule(1, 8, 0.01, (1,), bias_weight_decay=False))
    names = {id(p): n for n, p in model.named_parameters()}
    assert groups[1]["weight_decay"] == 0.0 and all(names[id(p)].endswith(".bias") for p in groups[1]["params"])
    assert not any(names[id(p)].endswith(".bias") for p in groups[0]["params"]) and len(groups[0]["params"]) + len(groups[1]["params"]) == sum(
        p.requires_grad for p in model.parameters())
    default = build_detector("frcnn", torchvision.models.resnet50(weights=None), 20, MEAN, STD, resolved(VocFasterRCNN()))
    assert default.rpn.head.conv[0][0].out_channels == 1024 and default.rpn.min_size == 1e-3 and len(param_groups(default, Schedule(1, 8, 0.01, (1,)))) == 1


def test_ssd_pytorch_preset_model():
    cfg = resolved(VocSSD(), preset="ssd_pytorch")
    assert {k: cfg[k] for k in SSD_PYTORCH} == SSD_PYTORCH
    model = build_detector("ssd", torchvision.models.resnet50(weights=None), 20, MEAN, STD, cfg).eval()
    x = torch.randn(1, 3, 300, 300)
    with torch.no_grad():
        maps = list(model.backbone(x).values())
        c2 = model.backbone.layer2(model.backbone.stem(x))
    assert [tuple(m.shape[-2:]) for m in maps] == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    five_to_three = model.backbone.extras[2][2]
    assert (five_to_three.kernel_size, five_to_three.stride, five_to_three.padding) == ((3, 3), (1, 1), (0, 0))  # ssd.pytorch's valid conv
    torch.testing.assert_close(maps[0].pow(2).sum(1).sqrt(), torch.full((1, 38, 38), 20.0), rtol=1e-4, atol=1e-4)  # L2Norm(512, 20) at init
    torch.testing.assert_close(maps[0], c2 / c2.pow(2).sum(1, keepdim=True).sqrt() * 20, rtol=1e-5, atol=1e-5)
    assert (model.topk_candidates, model.detections_per_img, model.nms_thresh, model.score_thresh) == (200, 4000, 0.45, 0.01)
    default = build_detector("ssd", torchvision.models.resnet50(weights=None), 20, MEAN, STD, resolved(VocSSD())).eval()
    conv = default.backbone.extras[2][2]
    assert (conv.stride, conv.padding) == ((2, 2), (1, 1)) and default.backbone.l2norm is None
    assert (default.topk_candidates, default.detections_per_img) == (400, 200)


@pytest.mark.parametrize("task,setting,message", [("voc_det_ssd", "prior_scales=ade", "prior_scales='ade' is not valid; prior_scales takes one of voc, coco"),
                                                  ("voc_det_ssd", "extras=vgg", "extras takes one of strided, ssd_pytorch"),
                                                  ("voc_det_frcnn", "rpn_min_size=16", "rpn_min_size takes a list of numbers (2 items) each in [0, inf)"),
                                                  ("voc_det_frcnn", "box_nms_thresh=high", "box_nms_thresh takes a number in [0, 1]"),
                                                  ("voc_det_frcnn", "min_size=900", "min_size 900 is larger than max_size 96")])
def test_bad_detection_settings_are_one_line(run_bench, tmp_path, task, setting, message):
    from conftest import save_cutmix_format
    from bench.mini.model import mini_resnet
    from test_detection import write_tiny_voc

    root = write_tiny_voc(tmp_path / "data")
    ckpt = save_cutmix_format(mini_resnet(10), tmp_path / "m.pth.tar")
    code, _, err = run_bench("run", "--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", task,
                             "--mini", "--data-root", root, "--results", tmp_path / "r", "--set", setting)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
