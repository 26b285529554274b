"""From every conjunction the search scored to the rules worth writing.

In order: drop rules whose reward is below ``min_reward`` or that have no positive predicate
(only ``not`` forms: they would match every row lacking a few words, however precise they were
on the validation examples); drop a rule when another rule of the
same label uses a subset of its predicates with at least its reward (the extra predicates buy
nothing); drop rules that err on the held-out rows beyond ``tolerance``; per label keep at most
``max_rules``, best first, each adding validation examples the ones before it missed; give the
survivors priorities by reward, so that where rules of two labels both match, the better wins.

    >>> from kdsl.dsl import ast
    >>> a, b = (ast.Has(ast.Field("user"), "one", (w,)) for w in ("漏水", "底下"))
    >>> broad = MinedRule("漏水", (a,), 5, 1.0, 0.9, 0.9, bits=0b11, held_out_bits=0)
    >>> narrow = MinedRule("漏水", (a, b), 3, 1.0, 0.8, 0.8, bits=0b1, held_out_bits=0)
    >>> [r.text for r in drop_subsumed([narrow, broad])]
    ['user has "漏水"']
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from kdsl.dsl import ast
from kdsl.mining.mined import MinedRule


def filter_rules(rules: list[MinedRule], *, min_reward: float, positives: dict[str, int],
                 held_out_positives: dict[str, int], tolerance: float = 0.1,
                 max_rules: int = 8) -> list[MinedRule]:
    """Every filter of this module in order; the survivors ranked (see the module docstring).
    ``positives`` and ``held_out_positives`` are each label's bitsets over the validation
    examples and the held-out rows."""
    survivors = [r for r in rules if r.reward >= min_reward and has_positive(r)]
    survivors = drop_subsumed(survivors)
    survivors = drop_erring(survivors, held_out_positives, tolerance)
    survivors = keep_covering(survivors, positives, max_rules)
    return rank(survivors)


@dataclass(frozen=True)
class ModelAwareFilter:
    """What ``filter_model_aware`` kept, and the precise rules it dropped because they only
    agree with the model (``redundant``: they change no training row's prediction) or do more
    harm than good (``harmful``: expected net rows fixed ≤ 0)."""

    kept: list[MinedRule]
    redundant: list[MinedRule]
    harmful: list[MinedRule]


def filter_model_aware(rules: list[MinedRule], *, min_precision: float, min_net: float,
                       covered: dict[str, int], held_out_positives: dict[str, int],
                       held_out_effect, tolerance: float = 0.1, max_rules: int = 8) -> ModelAwareFilter:
    """The filters for rules scored by their effect on the model's predictions
    (``scoring.ModelAwareObjective``): rules with a text predicate whose precision estimate
    (``confidence``) reaches ``min_precision`` are screened; of those, the ones that change no
    prediction are redundant, the ones with net ≤ 0 harmful; the rest must reach ``min_net``, not
    be subsumed, not err on the held-out rows beyond ``tolerance`` nor break more held-out rows
    than they fix (``held_out_effect(rule)`` → (fixed, broken)), and each must match examples of
    ``covered`` (per label, its examples) the rules before it did not."""
    screened = drop_subsumed([r for r in rules if r.confidence >= min_precision and has_positive(r)])
    redundant = [r for r in screened if not r.fixed and not r.broken and r.net is not None and r.net <= 0]
    harmful = [r for r in screened if r not in redundant and (r.net or 0.0) <= 0]
    survivors = [r for r in screened if (r.net or 0.0) >= min_net and (r.net or 0.0) > 0]
    survivors = drop_erring(survivors, held_out_positives, tolerance)
    survivors = [r for r in survivors if _helps(held_out_effect(r))]
    survivors = keep_covering(survivors, covered, max_rules)
    return ModelAwareFilter(rank(survivors, by_confidence=True), redundant, harmful)


def _helps(effect: tuple[int, int]) -> bool:
    fixed, broken = effect
    return broken <= fixed


def has_positive(rule: MinedRule) -> bool:
    """Whether the rule tests some text positively: a rule of `not` forms and model guards alone
    would match every row lacking a few words."""
    return any(not isinstance(p, ast.Not) and not is_guard(p) for p in rule.predicates)


def is_guard(predicate: ast.Condition) -> bool:
    """A predicate on the model's prediction (``model.score < 0.7``, ``model.label in (...)``)."""
    fields = [predicate.field] if hasattr(predicate, "field") else []
    return any(f.name.startswith("model.") for f in fields)


def drop_subsumed(rules: list[MinedRule]) -> list[MinedRule]:
    """Drop each rule that has a same-label rule with a subset of its predicates and a reward at
    least as high. Taking rules best first (fewer predicates first on ties) makes it enough to
    compare with the rules already kept: subsets chain."""
    kept: dict[str, list[frozenset]] = defaultdict(list)
    survivors = []
    for rule in sorted(rules, key=_best_first):
        predicates = frozenset(rule.predicates)
        if not any(other <= predicates for other in kept[rule.label]):
            kept[rule.label].append(predicates)
            survivors.append(rule)
    return survivors


def drop_erring(rules: list[MinedRule], held_out_positives: dict[str, int], tolerance: float) -> list[MinedRule]:
    """Drop rules whose precision on the held-out rows they match is below ``1 - tolerance``
    (a rule that matches no held-out row stays: no evidence against it)."""
    survivors = []
    for rule in rules:
        fired = rule.held_out_bits.bit_count()
        wrong = fired - (rule.held_out_bits & held_out_positives.get(rule.label, 0)).bit_count()
        if wrong <= tolerance * fired:
            survivors.append(rule)
    return survivors


def keep_covering(rules: list[MinedRule], positives: dict[str, int], max_rules: int) -> list[MinedRule]:
    """Per label, best first, the rules that match validation examples of the label that the
    rules kept before them do not: at most ``max_rules``."""
    covered: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    survivors = []
    for rule in sorted(rules, key=_best_first):
        hits = rule.bits & positives.get(rule.label, 0)
        if count[rule.label] < max_rules and hits & ~covered[rule.label]:
            covered[rule.label] |= hits
            count[rule.label] += 1
            survivors.append(rule)
    return survivors


def rank(rules: list[MinedRule], by_confidence: bool = False) -> list[MinedRule]:
    """Best first, each with priority = its reward in hundredths (``by_confidence``: its precision
    estimate, when the reward is an effect on the model rather than a precision)."""
    return [replace(r, priority=round((r.confidence if by_confidence else r.reward) * 100))
            for r in sorted(rules, key=_best_first)]


def _best_first(rule: MinedRule):
    return (-rule.reward, len(rule.predicates), rule.label, rule.text)
