"""In-distribution scores of a classifier's outputs (higher = looks in-distribution).

- msp: max softmax probability (Hendrycks & Gimpel, ICLR 2017), the CutMix paper's detector.
- max_logit: the largest logit (Hendrycks et al., 2022).
- energy: T * logsumexp(logits / T) with T = 1, i.e. minus the free energy (Liu et al., NeurIPS 2020).
- odin: max softmax of logits / T after one input step that lowers the tempered loss (Liang et
  al., ICLR 2018): x' = x - epsilon * sign(grad_x CE(logits(x) / T, predicted class)), with
  sign(0) = +1 as ODIN's code has it, the step in [0, 1] pixel units (divided by the
  normalisation std).

Softmax and logsumexp are taken in float64, so that confident predictions do not all tie at
exactly 1.0 as they would in float32.
"""

from __future__ import annotations

from typing import Any

import torch

SCORES = ("msp", "max_logit", "energy", "odin")
DEFINITIONS = {
    "msp": "max softmax probability (Hendrycks & Gimpel 2017), float64 softmax",
    "max_logit": "largest logit",
    "energy": "T logsumexp(logits / T), T = 1 (minus the free energy, Liu et al. 2020)",
    "odin": "ODIN (Liang et al. 2018): max softmax(logits(x') / T), x' = x - eps * sign(grad_x CE(logits(x) / T, argmax)), sign(0) = +1, eps in [0, 1] pixel units",
}


def logit_scores(logits: torch.Tensor, names: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
    """The scores that need only the logits, each (N,) float64."""
    wide = logits.detach().double()
    out = {}
    if "msp" in names:
        out["msp"] = torch.softmax(wide, dim=1).max(1).values
    if "max_logit" in names:
        out["max_logit"] = wide.max(1).values
    if "energy" in names:
        out["energy"] = torch.logsumexp(wide, dim=1)
    return out


def odin_score(model: Any, x: torch.Tensor, std: torch.Tensor, temperature: float, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain logits, ODIN score) for a normalised batch x; std is the (1, C, 1, 1) normalisation std.
    The loss is summed over the batch so each image's gradient is its own (eval-mode BatchNorm)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits / temperature, logits.argmax(1), reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    step = (grad >= 0).to(x.dtype).mul_(2).sub_(1)  # ODIN: (grad >= 0 - 0.5) * 2
    with torch.no_grad():
        perturbed = model(x.detach() - epsilon * step / std)
        score = torch.softmax(perturbed.double() / temperature, dim=1).max(1).values
    return logits.detach(), score
