"""Task modules. Each named task is registered here lazily ('module:Class'), so that listing
tasks never imports torch; the module is imported when a task is run or validated.

`mini` gives a task's settings on the embedded mini benchmark (`bench demo`), which runs every
task that has one on the four mini backbones; None means the task has no mini variant."""

from bench.registry import Registry

TASKS = Registry("task", "bench list tasks")
TASKS.add(
    "imagenet_cls",
    "tasks.classification:ImageNetClassification",
    "ImageNet-1k val top-1/top-5 error with the card's eval preprocessing (paper Tables 3-4)",
    mini={},  # the mini benchmark's ImageNet-layout digits, same protocol
)
TASKS.add(
    "cub_loc",
    "tasks.localization:CubLocalization",
    "CUB-200-2011 WSOL with CAM: top-1/GT-known Loc (paper Table 9) and MaxBoxAcc/V2 (wsolevaluation)",
    # the paper's learning rates scaled linearly to batch 64, one epoch; 64x64 scenes (73 -> crop 64)
    mini={"epochs": 1, "batch_size": 64, "lr_head": 0.02, "lr_body": 0.002, "step": 1, "resize": 73, "crop": 64, "wsoleval_size": 64, "interval": 0.01},
)
TASKS.add(
    "imagenet_loc",
    "tasks.localization:ImageNetLocalization",
    "ImageNet WSOL with CAM: top-1/GT-known Loc (paper Table 9) and MaxBoxAcc/V2 (wsolevaluation)",
    mini={"epochs": 1, "batch_size": 64, "lr_head": 0.025, "lr_body": 0.0025, "step": 1, "resize": 73, "crop": 64, "wsoleval_size": 64, "interval": 0.01},
)
# mini detection: 96x96 scenes, scaled anchors and proposal counts, a few hundred images' worth of steps
MINI_FRCNN = {"iterations": 300, "batch_size": 8, "lr": 0.02, "steps": [240], "warmup_iters": 20, "checkpoint_every": 100, "min_size": 96, "max_size": 96,
              "anchor_sizes": [16, 32, 64], "rois_per_image": 64, "rpn_top_n": [300, 100, 300, 50]}
MINI_SSD = {"iterations": 80, "batch_size": 8, "lr": 0.01, "steps": [64], "warmup_iters": 20, "checkpoint_every": 40, "size": 96}
TASKS.add(
    "voc_det_frcnn",
    "tasks.detection:VocFasterRCNN",
    "Pascal VOC07 test mAP, Faster R-CNN (ResNet C4) fine-tuned on VOC07+12 trainval (paper Table 10)",
    mini=MINI_FRCNN,
    demo=False,  # minutes per backbone on a CPU
)
TASKS.add(
    "voc_det_ssd",
    "tasks.detection:VocSSD",
    "Pascal VOC07 test mAP, SSD300 (ResNet layer2/3 sources) fine-tuned on VOC07+12 trainval (paper Table 10)",
    mini=MINI_SSD,
)
TASKS.add(
    "voc_det",
    "tasks.detection:VocBoth",
    "Pascal VOC07 test mAP of both Faster R-CNN and SSD (the paper's two detection columns)",
    mini={**{f"frcnn.{k}": v for k, v in MINI_FRCNN.items()}, **{f"ssd.{k}": v for k, v in MINI_SSD.items()}},
    demo=False,
)
TASKS.add(
    "coco_cap",
    "tasks.captioning:CocoCaptioning",
    "MS-COCO captioning, NIC on the backbone's pooled feature: BLEU-1..4, METEOR, ROUGE-L, CIDEr (paper Table 10's NIC column)",
    # the mini COCO's scenes: a small vocabulary learnt in two epochs; beam 3; METEOR left out for the demo's time
    mini={"epochs": 2, "batch_size": 100, "lr": 0.01, "min_count": 2, "max_length": 12, "beam": 3, "meteor": False},
)
TASKS.add(
    "imagenet_fgsm",
    "tasks.adversarial:ImageNetFgsm",
    "ImageNet val top-1 accuracy under white-box FGSM, eps 8/255 (paper Table 11)",
    mini={},  # the mini benchmark's ImageNet-layout digits, same protocol
)
TASKS.add(
    "imagenet_c",
    "tasks.corruption:ImageNetC",
    "ImageNet-C top-1 error per corruption x severity, mCE and relative mCE (AlexNet-normalised), ECE; released or generated",
    mini={},  # the mini ImageNet-C the generator writes: every corruption at 5 severities on part of the mini val scenes
)
TASKS.add(
    "imagenet_occlusion",
    "tasks.sweeps:ImageNetOcclusion",
    "ImageNet val top-1 error under centre and boundary occlusion, side 0-224 (paper Figure 5a)",
    mini={"sizes": [0, 8, 16, 24, 32, 40, 48, 56, 64]},  # the mini crop is 64
    demo=False,  # a figure, not a demo column: bench run --mini and bench report --figure robustness
)
TASKS.add(
    "imagenet_inbetween",
    "tasks.sweeps:ImageNetInBetween",
    "In-between-class Mixup and CutMix samples of ImageNet val pairs: share predicted as neither class (paper Figure 5b)",
    mini={"pairs": 1000, "sizes": [0, 8, 16, 24, 32, 40, 48, 56, 64]},
    demo=False,
)
TASKS.add(
    "imagenet_shift",
    "tasks.shift:ImageNetShift",
    "Top-1 error on ImageNetV2, ImageNet-Sketch, ImageNet-R and ImageNet-A (200-class logits), and the change from clean",
    mini=None,  # no mini variant: its fixtures in the released layouts are in the tests
)
TASKS.add(
    "cifar100_cls",
    "tasks.cifar:Cifar100Classification",
    "CIFAR-100 test top-1/top-5 error with the card's preprocessing (paper Table 5)",
    mini=None,  # no mini variant: the tests score a fixture in the exact pickle layout
)
TASKS.add(
    "cifar100_ood",
    "tasks.ood:Cifar100Ood",
    "OOD detection, CIFAR-100 test vs TinyImageNet/LSUN crop and resize, iSUN, uniform and Gaussian noise: TNR@TPR95, AUROC, detection acc. (paper Table 12)",
    mini=None,  # the tests score fixtures in ODIN's folder layout
)
TASKS.add(
    "imagenet_ood",
    "tasks.ood:ImageNetOod",
    "OOD detection, ImageNet val vs image folders you name (--set ood_sets=[...]): AUROC, FPR/TNR at TPR 95%, AUPR, MSP/ODIN/energy/max logit",
    mini={},  # the mini val scenes vs the generator's noise, photo crops and digit-free scenes
)
