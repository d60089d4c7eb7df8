"""A detector with fixed outputs, for end-to-end detection tests that must score hits: the
task's own evaluation (loader, box and label conversion, gather across ranks, scoring, samples
file) runs on detections planned from the generator's records, so the expected metrics and
per-image rows are known exactly.

Run as a script it is `bench` with the voc_det tasks' trained detector replaced by the fixed one
(planned detections from the JSON file in $BENCH_TEST_DETECTIONS), e.g. under torchrun.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

VOC = tuple[int, float, int, int, int, int]  # (class index, score, x1, y1, x2, y2): VOC's 1-based inclusive corners


def plan_detections(objects: list[list[tuple]], seed: int = 0) -> list[list[VOC]]:
    """Per image, detections made from its GT objects (class, x0, y0, x1, y1 0-based inclusive,
    difficult): the box jittered by up to 2 px, some with a wrong class, some duplicated, some
    moved off the object, and one background box per image. Scores are distinct multiples of
    1/4096 (exact in float32), boxes whole pixels, so the round trip through float32 is exact."""
    rng = np.random.default_rng(seed)
    scores = iter(rng.permutation(np.arange(1, 4096))[:10_000] / 4096.0)
    plan: list[list[VOC]] = []
    for objs in objects:
        dets: list[VOC] = []
        for c, x0, y0, x1, y1, _ in objs:
            box = np.array([x0 + 1, y0 + 1, x1 + 1, y1 + 1]) + rng.integers(-2, 3, 4)
            label = c if rng.random() > 0.2 else (c + 1) % 20
            dets.append((int(label), float(next(scores)), *map(int, box)))
            if rng.random() < 0.3:  # a duplicate: a false positive wherever it ranks
                dets.append((int(label), float(next(scores)), *map(int, box + rng.integers(-1, 2, 4))))
            if rng.random() < 0.2:  # off the object: a miss
                w = x1 - x0
                dets.append((int(c), float(next(scores)), x0 + 1 + w, y0 + 1, x1 + 1 + w, y1 + 1))
        x, y = (int(v) for v in rng.integers(1, 60, 2))
        dets.append((int(rng.integers(0, 20)), float(next(scores)), x, y, x + 20, y + 20))
        plan.append(dets)
    return plan


def image_key(image: torch.Tensor) -> str:
    """An image's identity from its pixels (a float image in [0, 1] or a uint8 one, CHW)."""
    if image.dtype != torch.uint8:
        image = (image * 255).round().to(torch.uint8)
    return hashlib.sha1(image.cpu().contiguous().numpy().tobytes()).hexdigest()


class FixedDetector(torch.nn.Module):
    """Answers each image with its planned detections, in the detector's frame: 0-based
    continuous corners (x1 - 1, y1 - 1, x2, y2) and labels 1..20 (0 is the background)."""

    def __init__(self, by_key: dict[str, list[VOC]]):
        super().__init__()
        self.by_key = by_key

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            dets = self.by_key[image_key(image)]
            boxes = torch.tensor([[x1 - 1, y1 - 1, x2, y2] for _, _, x1, y1, x2, y2 in dets], dtype=torch.float32).reshape(-1, 4)
            out.append({"boxes": boxes, "labels": torch.tensor([d[0] + 1 for d in dets], dtype=torch.int64),
                        "scores": torch.tensor([d[1] for d in dets], dtype=torch.float32)})
        return out


def fixed_detector(devkit: Path, planned: dict[str, list[VOC]]) -> FixedDetector:
    """planned: image id -> detections; the images are read from VOC2007/JPEGImages."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    by_key = {}
    for image_id, dets in planned.items():
        with Image.open(devkit / "VOC2007" / "JPEGImages" / f"{image_id}.jpg") as im:
            by_key[image_key(pil_to_tensor(im.convert("RGB")))] = [tuple(d) for d in dets]
    return FixedDetector(by_key)


def use_fixed_detector(planned_file: Path, patch) -> None:
    """Replace the voc_det tasks' trained detector by the fixed one (`patch` is pytest's
    monkeypatch.setattr, or setattr itself in a script)."""
    from tasks.detection import VocDetection

    planned = json.loads(Path(planned_file).read_text())

    def trained(self, ctx, kind, cfg, train):
        return fixed_detector(ctx.data.dir("voc"), planned), {"cached": True, "stage_dir": None, "train_images": len(train.images), "fixed": True}, {"family": "fixed"}

    patch(VocDetection, "_trained", trained)


if __name__ == "__main__":
    from bench.cli import main

    use_fixed_detector(Path(os.environ["BENCH_TEST_DETECTIONS"]), setattr)
    sys.exit(main(sys.argv[1:]))
