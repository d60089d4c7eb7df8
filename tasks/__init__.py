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
