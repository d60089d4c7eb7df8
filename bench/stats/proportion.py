"""Per-image correctness: the Wilson interval of one proportion and the exact McNemar test of two
paired ones (a binomial test on the discordant pairs, exact at any count)."""

from __future__ import annotations

import math

from scipy import special  # not scipy.stats: importing it costs a second


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for successes / n (statsmodels' proportion_confint(method='wilson'))."""
    if n <= 0:
        raise ValueError("a proportion needs at least one sample")
    z = float(special.ndtri(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c are the discordant pairs (right only in one, right
    only in the other); under H0 b ~ Binomial(b + c, 1/2). Two times the smaller tail, at most 1
    (statsmodels' mcnemar(exact=True)); 1 when there is no discordant pair."""
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * special.bdtr(min(b, c), n, 0.5)))
