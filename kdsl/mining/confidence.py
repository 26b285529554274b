"""How good a rule is, from the rows it matches: estimators for few shots and the two objectives.

**Estimators of a precision.** A rule right 3 times out of 3 is less convincing than one right
30 times out of 30. ``wilson_lower_bound`` says by how much, without the normal approximation's
nonsense at p = 1 and small n. ``beta_mean`` is the posterior mean of a Beta prior centred on a
base rate ``prior`` with ``strength`` pseudo-rows: with 3–15 examples a label a Wilson bound at
z = 1.96 rejects nearly every rule, while the Beta mean moves from the base rate towards the
observed precision as support grows. Which one (and its threshold) a mining run uses is chosen
by cross-validation on training rows (docs/mining.md).

    >>> round(wilson_lower_bound(3, 3), 3), round(wilson_lower_bound(30, 30), 3)
    (0.75, 0.968)
    >>> round(beta_mean(3, 3, prior=0.5, strength=2), 3)
    0.8

**Objectives** score a rule's bitset over the validation examples:

- ``PrecisionObjective``: how often the rule's label is right where it fires (the miner without
  predictions): reward = the estimator of that precision, optionally times coverage.
- ``ModelAwareObjective``: the rule's effect on the final prediction when it overrides the model
  (out-of-fold predictions on the training rows). On the n rows where the rule fires, the final
  prediction is right as often as the rule is (precision p) instead of as often as the model is
  (accuracy a there), so the rule *fixes* minus *breaks* n·(p − a) rows: a rule helps exactly
  when it is more precise than the model is accurate where it fires, and one that fires where
  the model is already right (a ≈ 1) adds nothing. Class-weighted F1 weighs every class's F1 by
  its support, so one row's change moves it by about 1/N whatever its class: every row counts
  one. For few shots both rates are shrunk by Beta priors of ``strength`` pseudo-rows: p towards
  ``rule_prior`` (by default the label's base rate among the rows: a pessimist's prior), a
  towards the model's accuracy over all rows, so
  ``net = n × (p̂ − â)`` is the expected net rows fixed. Reward (for the search, in [0, 1]) =
  max(0, net) / the rows of the label the model gets wrong.

    >>> objective = ModelAwareObjective(positives=0b0111, model_right=0b1001, model_says_label=0b0001,
    ...                                 copies=1, prior=0.5, model_accuracy=0.5, strength=2)
    >>> value = objective.score(0b0111)   # agrees on row 0, fixes rows 1 and 2
    >>> value.fixed, value.broken, round(value.net, 2)    # 3 × ((3 + 1) / 5 − (1 + 1) / 5)
    (2.0, 0.0, 1.2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ESTIMATORS = ("wilson", "beta")


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


def beta_mean(successes: float, trials: float, prior: float, strength: float) -> float:
    """Posterior mean of a rate under a Beta(``strength`` × ``prior``, ``strength`` × (1 −
    ``prior``)) prior: (successes + strength·prior) / (trials + strength)."""
    return (successes + strength * prior) / (trials + strength) if trials + strength > 0 else prior


@dataclass(frozen=True)
class Estimator:
    """A precision estimator: ``wilson`` (lower bound at ``z``) or ``beta`` (mean under a prior of
    ``strength`` pseudo-rows at the label's base rate)."""

    name: str = "wilson"
    z: float = 1.0
    strength: float = 2.0

    def __post_init__(self):
        if self.name not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, not {self.name!r}")

    def __call__(self, successes: float, trials: float, prior: float) -> float:
        if self.name == "beta":
            return beta_mean(successes, trials, prior, self.strength)
        return wilson_lower_bound(successes, trials, self.z)


@dataclass(frozen=True)
class Value:
    """What an objective says of one rule's rows (counts in validation examples; ``fixed``,
    ``broken`` and ``net`` in training rows, None for a precision objective)."""

    tp: int
    fired: int
    precision: float
    confidence: float
    reward: float
    net: float | None = None
    fixed: float | None = None
    broken: float | None = None


class Objective:
    """Scores a rule from the bitset of the validation examples it matches."""

    def score(self, bits: int) -> Value:  # pragma: no cover - interface
        raise NotImplementedError


class PrecisionObjective(Objective):
    """The label's precision on the rows the rule matches, estimated with ``estimator`` in
    training rows (a rephrased copy is not new evidence: counts are divided by ``copies``);
    reward = estimate × (1 − w + w × coverage), w = ``coverage_weight`` (0 by default, since the
    estimate already favours the rule with more support)."""

    def __init__(self, positives: int, copies: int, estimator: Estimator = Estimator(), prior: float = 0.5,
                 coverage_weight: float = 0.0):
        self.positives, self.copies, self.estimator, self.prior = positives, copies, estimator, prior
        self.positive_count = positives.bit_count()
        self.coverage_weight = coverage_weight

    def score(self, bits: int) -> Value:
        fired = bits.bit_count()
        tp = (bits & self.positives).bit_count()
        precision = tp / fired if fired else 0.0
        confidence = self.estimator(tp / self.copies, fired / self.copies, self.prior) if fired else 0.0
        coverage = tp / self.positive_count if self.positive_count else 0.0
        w = self.coverage_weight
        return Value(tp, fired, precision, confidence, confidence * (1 - w + w * coverage))


class ModelAwareObjective(Objective):
    """The rule's effect on the final prediction (see the module docstring). ``positives``: the
    examples of the label; ``model_right``: those the model predicts correctly; ``model_says_label``:
    those it predicts as the label; ``prior``: the label's base rate; ``model_accuracy``: the
    model's accuracy over all rows; ``rule_prior``: the prior mean of the rule's precision (default
    ``prior``). ``confidence`` is ``estimator``'s precision estimate."""

    def __init__(self, positives: int, model_right: int, model_says_label: int, copies: int,
                 prior: float, model_accuracy: float, strength: float = 2.0, estimator: Estimator | None = None,
                 rule_prior: float | None = None):
        self.positives, self.model_right, self.agrees = positives, model_right, model_says_label
        self.copies, self.prior, self.model_accuracy, self.strength = copies, prior, model_accuracy, strength
        self.rule_prior = prior if rule_prior is None else rule_prior
        self.estimator = estimator or Estimator("beta", strength=strength)
        self.fixable = (positives & ~model_says_label).bit_count() / copies

    def score(self, bits: int) -> Value:
        fired = bits.bit_count()
        tp = (bits & self.positives).bit_count()
        precision = tp / fired if fired else 0.0
        n = fired / self.copies
        rule_right = beta_mean(tp / self.copies, n, self.rule_prior, self.strength)
        model_right = beta_mean((bits & self.model_right).bit_count() / self.copies, n, self.model_accuracy,
                                self.strength)
        net = n * (rule_right - model_right)
        changed = bits & ~self.agrees
        fixed = (changed & self.positives).bit_count() / self.copies
        broken = (changed & self.model_right).bit_count() / self.copies
        confidence = self.estimator(tp / self.copies, n, self.prior) if fired else 0.0
        reward = max(0.0, net) / self.fixable if self.fixable else 0.0
        return Value(tp, fired, precision, confidence, min(1.0, reward), net, fixed, broken)
