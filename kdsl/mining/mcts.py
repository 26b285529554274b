"""Monte Carlo tree search for the rules of one label.

A state is a rule: a *literal set* (the first predicate, optionally OR-ed with more of the same
field: ``user has any("发布", "发行", "上市")``) AND-ed with further predicates (the root is the
empty rule). Two kinds of action: *or j* grows the literal set by candidate ``j`` (only while no
conjunct was added, only with positive ``has`` candidates of the anchor's field, at most
``max_alternatives``), *and j* adds candidate ``j`` as a conjunct. To visit each rule once, the
literal set grows in ascending index order from its anchor, and conjuncts are added in ascending
order after the anchor (a set-enumeration tree). One iteration walks down by UCT to a state with
untried actions, expands one, extends it at random up to ``max_predicates`` (the rollout) and
backs up the best reward met on the way. Every rule evaluated is remembered with its score; the
caller filters them.

Rewards are computed exactly on the validation examples from the candidates' bitsets
(``kdsl.mining.bitsets``): a literal set's rows are the OR of its literals' rows, a conjunction's
the AND of its predicates' rows. What the reward is depends on the objective
(``kdsl.mining.confidence``): ``PrecisionObjective`` (the label's precision, its calibrated
estimate — a Wilson lower bound or a Beta-prior mean — with the support counted in training rows,
optionally times coverage) or ``ModelAwareObjective`` (the rule's effect on the final prediction
when it overrides the model: rows fixed minus rows broken, shrunk for few shots).

Deterministic: the only randomness is ``random.Random(seed)``.

    >>> bits = [0b0111, 0b1101]          # candidate 0 holds on rows 0-2, candidate 1 on 0, 2, 3
    >>> search = Search(bits, positives=0b0101, copies=1, config=SearchConfig(iterations=20))
    >>> [(s.indices, s.tp, s.fired) for s in sorted(search.run(seed=1).values())]
    [((0,), 2, 3), ((0, 1), 2, 2), ((1,), 2, 3)]
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from kdsl.mining.confidence import Objective, PrecisionObjective


@dataclass(frozen=True)
class SearchConfig:
    iterations: int = 300
    max_predicates: int = 5
    min_support: int = 2  # true positives (validation examples) a rule must keep
    exploration: float = 0.5  # UCT constant; rewards lie in [0, 1]
    coverage_weight: float = 0.0  # of PrecisionObjective, when the search builds one
    max_alternatives: int = 0  # literals an `or` action may add to the first predicate (0: none)


@dataclass(frozen=True, order=True)
class Scored:
    """A rule — candidate ``indices`` AND-ed (ascending after the first), the first OR-ed with
    ``alternatives`` — and how it does on the validation examples. ``net`` is the objective's
    expected net rows fixed (None for a precision objective)."""

    indices: tuple[int, ...]
    tp: int
    fired: int
    precision: float
    confidence: float
    reward: float
    bits: int = field(repr=False, compare=False)
    alternatives: tuple[int, ...] = ()
    net: float | None = field(default=None, compare=False)


@dataclass
class _Node:
    indices: tuple[int, ...]
    alternatives: tuple[int, ...]
    group_bits: int  # rows of the literal set (the first predicate OR its alternatives)
    bits: int
    untried: list[tuple[str, int]]
    terminal: bool
    visits: int = 0
    value: float = 0.0
    exhausted: bool = False  # every state below has been expanded
    children: list[_Node] = field(default_factory=list)


class Search:
    """MCTS over rules built from candidates whose validation bitsets are ``bits``; ``positives``
    marks the examples of the label; ``copies`` is the number of examples per training row.
    ``objective`` scores a rule's rows (default: ``PrecisionObjective``). ``groups[j]`` is the key
    (a field name) under which candidate ``j`` may join a literal set, None when it may not."""

    def __init__(self, bits: list[int], positives: int, copies: int, config: SearchConfig = SearchConfig(),
                 objective: Objective | None = None, groups: list[str | None] | None = None):
        self.bits = bits
        self.positives = positives
        self.copies = copies
        self.config = config
        self.objective = objective or PrecisionObjective(positives, copies, coverage_weight=config.coverage_weight)
        self.groups = groups or [None] * len(bits)
        self.found: dict[tuple[tuple[int, ...], tuple[int, ...]], Scored] = {}
        self._everything = (1 << max((b.bit_length() for b in bits), default=0)) - 1 | positives

    def score(self, indices: tuple[int, ...], bits: int, alternatives: tuple[int, ...] = ()) -> Scored:
        """The score of the rule ``indices`` (+ ``alternatives``) whose rows are ``bits``
        (remembered)."""
        key = (indices, alternatives)
        known = self.found.get(key)
        if known is not None:
            return known
        value = self.objective.score(bits)
        scored = Scored(indices, value.tp, value.fired, value.precision, value.confidence, value.reward, bits,
                        alternatives, value.net)
        if indices:
            self.found[key] = scored
        return scored

    def run(self, seed) -> dict[tuple[tuple[int, ...], tuple[int, ...]], Scored]:
        """Search for ``config.iterations`` iterations (fewer when the tree is exhausted); return
        every non-empty rule evaluated, keyed by (indices, alternatives)."""
        rng = random.Random(f"kdsl-mcts:{seed}")
        root = self._node((), (), self._everything, self._everything)
        for _ in range(self.config.iterations):
            if root.exhausted or not root.untried and not root.children:
                break
            path = [root]
            node = root
            while not node.untried and node.children and not node.exhausted:
                node = self._select(node)
                path.append(node)
            if node.untried:
                action = node.untried.pop(rng.randrange(len(node.untried)))
                child = self._child(node, action)
                node.children.append(child)
                path.append(child)
                node = child
            value = self._rollout(node, rng)
            for visited in reversed(path):
                visited.visits += 1
                visited.value += value
                visited.exhausted = not visited.untried and all(c.exhausted for c in visited.children)
        return self.found

    def _apply(self, indices, alternatives, group_bits, bits, action):
        kind, j = action
        if kind == "or":
            group = group_bits | self.bits[j]
            return indices, alternatives + (j,), group, group
        if not indices:
            return (j,), (), self.bits[j], self.bits[j]
        return indices + (j,), alternatives, group_bits, bits & self.bits[j]

    def _child(self, node: _Node, action) -> _Node:
        return self._node(*self._apply(node.indices, node.alternatives, node.group_bits, node.bits, action))

    def _node(self, indices, alternatives, group_bits, bits) -> _Node:
        scored = self.score(indices, bits, alternatives)
        # A rule already exact cannot gain precision by a conjunct, only lose support; it may
        # still gain support by a wider literal set.
        terminal = len(indices) >= self.config.max_predicates
        actions = [] if terminal else self._actions(indices, alternatives, bits, scored.precision)
        return _Node(indices, alternatives, group_bits, bits, actions, bool(terminal))

    def _actions(self, indices, alternatives, bits: int, precision: float) -> list[tuple[str, int]]:
        """``or`` actions that widen the literal set by rows, ``and`` actions after the last
        conjunct that change the rows matched yet keep enough support."""
        actions = []
        if indices and len(indices) == 1 and len(alternatives) < self.config.max_alternatives:
            key = self.groups[indices[0]]
            start = (alternatives[-1] if alternatives else indices[0]) + 1
            if key is not None:
                for j in range(start, len(self.bits)):
                    if self.groups[j] == key and self.bits[j] & ~bits & self.positives:
                        actions.append(("or", j))
        if indices and precision == 1.0:
            return actions
        # Without alternatives, conjuncts follow the anchor in index order (the set {a, b} is
        # reached once); with them, the literal set is told apart already, so the first
        # conjunct may be any candidate outside it.
        if alternatives:
            start = indices[-1] + 1 if len(indices) > 1 else 0
        else:
            start = indices[-1] + 1 if indices else 0
        taken = set(indices) | set(alternatives)
        for j in range(start, len(self.bits)):
            if j in taken:
                continue
            narrowed = bits & self.bits[j]
            if narrowed != bits and (narrowed & self.positives).bit_count() >= self.config.min_support:
                actions.append(("and", j))
        return actions

    def _select(self, node: _Node) -> _Node:
        log_visits = math.log(node.visits)
        c = self.config.exploration
        open_children = [n for n in node.children if not n.exhausted]
        return max(open_children,
                   key=lambda n: n.value / n.visits + c * math.sqrt(log_visits / n.visits) if n.visits else math.inf)

    def _rollout(self, node: _Node, rng: random.Random) -> float:
        """Extend ``node`` by random actions while allowed; the best reward met on the way."""
        indices, alternatives, group_bits, bits = node.indices, node.alternatives, node.group_bits, node.bits
        scored = self.score(indices, bits, alternatives)
        best = scored.reward if indices else 0.0
        while len(indices) < self.config.max_predicates:
            actions = self._actions(indices, alternatives, bits, scored.precision)
            if not actions:
                break
            indices, alternatives, group_bits, bits = self._apply(indices, alternatives, group_bits, bits,
                                                                  rng.choice(actions))
            scored = self.score(indices, bits, alternatives)
            best = max(best, scored.reward)
        return best
