"""ImageNet-C's summary metrics (Hendrycks & Dietterich, ICLR 2019), as google-research/augmix's
`compute_mce` computes them: per corruption the error averaged over the five severities, divided
by AlexNet's (CE, in percent); mCE is the mean CE over the 15 benchmark corruptions. Relative CE
divides the rise over the clean error by AlexNet's rise; relative mCE is its mean. The four
extra corruptions are reported apart and never enter mCE."""

from __future__ import annotations

from typing import Any, Mapping

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
               "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)
# AlexNet's mean-over-severity error per corruption (fractions): google-research/augmix imagenet.py ALEXNET_ERR
ALEXNET_ERR = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880, "glass_blur": 0.826268,
    "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592,
    "contrast": 0.853204, "elastic_transform": 0.646056, "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
# AlexNet's clean top-1 error for relative mCE: torchvision's AlexNet (acc@1 56.522); the paper does not say which it used
ALEXNET_CLEAN_ERR = 1 - 0.56522


def corruption_metrics(errors: Mapping[str, Mapping[int, float]], clean_error: float | None = None, partial: bool = False) -> dict[str, Any]:
    """errors[corruption][severity] in percent -> per-corruption mean error and CE, mCE, relative
    CE and relative mCE (with the clean error, percent), and the extra corruptions' mean error.

    Strict (the default, `bench score mce`): every benchmark corruption needs all five severities.
    partial=True (a run on part of ImageNet-C): a corruption's mean error and CE only when it has
    all five severities, mCE and relative mCE only when all 15 have them, else left out."""
    unknown = sorted(set(errors) - set(CORRUPTIONS) - set(EXTRA_CORRUPTIONS))
    if unknown:
        raise ValueError(f"unknown corruption(s) {', '.join(unknown)}")
    missing = [c for c in CORRUPTIONS if c not in errors]
    if missing and not partial:
        raise ValueError(f"mCE needs all 15 benchmark corruptions; missing {', '.join(missing)}")
    complete = []
    for name, by_severity in errors.items():
        have = sorted(int(s) for s in by_severity)
        if have != list(SEVERITIES) and not partial:
            raise ValueError(f"{name} has severities {have}, not 1-5")
        bad = [v for v in by_severity.values() if not 0 <= float(v) <= 100]
        if bad:
            raise ValueError(f"{name} has an error of {bad[0]}, not a percentage in [0, 100]")
        if have == list(SEVERITIES):
            complete.append(name)
    mean_err = {c: sum(float(v) for v in errors[c].values()) / 5 for c in complete}
    bench_done = [c for c in CORRUPTIONS if c in mean_err]
    ce = {c: mean_err[c] / ALEXNET_ERR[c] for c in bench_done}  # percent / fraction = CE in percent
    out: dict[str, Any] = {"ce": ce, "mean_error": mean_err}
    if len(bench_done) == len(CORRUPTIONS):
        out["mce"] = sum(ce.values()) / len(CORRUPTIONS)
        out["mean_error_15"] = sum(mean_err[c] for c in CORRUPTIONS) / len(CORRUPTIONS)
    if clean_error is not None:
        rel = {c: (mean_err[c] - clean_error) / (100 * (ALEXNET_ERR[c] - ALEXNET_CLEAN_ERR)) * 100 for c in bench_done}
        out.update(relative_ce=rel, clean_error=clean_error)
        if len(bench_done) == len(CORRUPTIONS):
            out["relative_mce"] = sum(rel.values()) / len(CORRUPTIONS)
    extra = [c for c in EXTRA_CORRUPTIONS if c in mean_err]
    if extra:
        out["extra_mean_error"] = sum(mean_err[c] for c in extra) / len(extra)
        out["extra_corruptions"] = extra
    return out
