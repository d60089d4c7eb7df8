"""Detectors built on any backbone card: torchvision detection models, our training loop."""
