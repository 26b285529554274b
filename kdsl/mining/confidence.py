"""How much a rule's precision can be trusted: the Wilson score lower bound.

A rule right 3 times out of 3 is less convincing than one right 30 times out of 30; the lower
bound of the Wilson interval says by how much, without the normal approximation's nonsense at
p = 1 and small n.

    >>> round(wilson_lower_bound(3, 3), 3), round(wilson_lower_bound(30, 30), 3)
    (0.75, 0.968)
"""

from __future__ import annotations

import math


def wilson_lower_bound(successes: float, trials: float, z: float = 1.0) -> float:
    """Lower end of the Wilson interval for ``successes / trials`` (0 when there are no trials).

    ``trials`` may be fractional: an effective sample size, when observations are correlated.
    ``z`` = 1 is a one-sided 84% bound, mild enough for labels with a handful of examples.
    """
    if trials <= 0:
        return 0.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, (centre - margin) / (1 + z2 / trials))
