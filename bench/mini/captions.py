"""Reference captions for the mini benchmark's scenes: several per scene, made from what the
scene holds (the digit, where it is, how large), in varied wording, so that a captioner that
recognises the digit and its place scores well and BLEU tells captioners apart."""

from __future__ import annotations

import random

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = (
    "a handwritten {word} in the {where} of the image",
    "the digit {digit} written at the {where}",
    "a {size} number {word} on a cluttered background",
    "a {size} {word} drawn near the {where}",
    "an image of the number {digit} on a textured background",
    "the handwritten digit {word} at the {where} of the picture",
    "a {size} handwritten {digit} with clutter around it",
    "a picture showing a {size} {word} in the {where}",
)


def where(box: tuple[float, float, float, float], width: int, height: int) -> str:
    """'top left' .. 'bottom right', or 'center', from the box's center."""
    cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    return " ".join(p for p in (row, col) if p) or "center"


def size(box: tuple[float, float, float, float], width: int, height: int) -> str:
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) / (width * height)
    return "small" if area < 0.08 else "large" if area > 0.25 else "medium sized"


def scene_captions(label: int, box: tuple[float, float, float, float], width: int, height: int, rng: random.Random, n: int = 5) -> list[str]:
    """n captions of one scene, from n different templates (sentence case, some with a full stop)."""
    fields = {"word": WORDS[label], "digit": str(label), "where": where(box, width, height), "size": size(box, width, height)}
    out = []
    for template in rng.sample(TEMPLATES, n):
        text = template.format(**fields)
        out.append(text[0].upper() + text[1:] + rng.choice(("", ".")))
    return out
