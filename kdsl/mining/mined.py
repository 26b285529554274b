"""``MinedRule``: one rule found by the search, with the evidence the filters and the writer use."""

from __future__ import annotations

from dataclasses import dataclass, field

from kdsl.dsl import ast
from kdsl.dsl.formatter import format_condition


@dataclass(frozen=True)
class MinedRule:
    """A conjunction of ``predicates`` for ``label``.

    ``support`` counts the training rows of the label it matches; ``precision``, ``confidence``
    and ``reward`` are measured on the validation examples (``kdsl.mining.mcts``); ``bits`` and
    ``held_out_bits`` are the validation examples and held-out rows it matches; ``example`` is a
    training row of the label it matches; ``priority`` is set by ``filtering.rank``. The first
    predicate may be a literal set (``user has any(...)``), grown by the search's ``or`` action.
    """

    label: str
    predicates: tuple[ast.Condition, ...]
    support: int
    precision: float
    confidence: float
    reward: float
    bits: int = field(repr=False)
    held_out_bits: int = field(repr=False)
    example: dict = field(repr=False, default_factory=dict)
    priority: int = 0
    # With the model's predictions (model-aware mining): training rows fixed and broken, the
    # shrunk expected net rows fixed (kdsl.mining.confidence.ModelAwareObjective), None otherwise.
    net: float | None = None
    fixed: float | None = None
    broken: float | None = None

    @property
    def condition(self) -> ast.Condition:
        return self.predicates[0] if len(self.predicates) == 1 else ast.And(self.predicates)

    @property
    def text(self) -> str:
        return format_condition(self.condition)
