"""Monte Carlo tree search for the rules of one label.

A state is a conjunction of candidate predicates (the root is the empty one); an action adds one
candidate. To visit each set once, a state only grows by candidates after its last one (a
set-enumeration tree). One iteration walks down by UCT to a state with untried actions, expands
one, extends it at random up to ``max_predicates`` (the rollout) and backs up the best reward met
on the way. Every conjunction evaluated is remembered with its score; the caller filters them.

The reward is computed exactly on the validation examples from the candidates' bitsets
(``kdsl.mining.bitsets``): a conjunction's rows are the AND of its predicates' rows.

- ``precision`` = examples of the label among those the rule matches;
- ``confidence`` = Wilson lower bound of that precision, with the support counted in training
  rows (a rephrased copy is not new evidence, so the example count is divided by the copies per
  row);
- ``reward`` = confidence × (1 − w + w × coverage of the label's examples), w =
  ``coverage_weight``: 0 by default, since confidence already favours the rule with more
  support, and any weight on coverage kept small labels from reaching ``--min-reward``.

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

from kdsl.mining.confidence import wilson_lower_bound


@dataclass(frozen=True)
class SearchConfig:
    iterations: int = 300
    max_predicates: int = 5
    min_support: int = 2  # true positives (validation examples) a conjunction must keep
    exploration: float = 0.5  # UCT constant; rewards lie in [0, 1]
    coverage_weight: float = 0.0


@dataclass(frozen=True, order=True)
class Scored:
    """A conjunction (candidate indices, ascending) and how it does on the validation examples."""

    indices: tuple[int, ...]
    tp: int
    fired: int
    precision: float
    confidence: float
    reward: float
    bits: int = field(repr=False, compare=False)


@dataclass
class _Node:
    indices: tuple[int, ...]
    bits: int
    untried: list[int]
    terminal: bool
    visits: int = 0
    value: float = 0.0
    exhausted: bool = False  # every state below has been expanded
    children: list[_Node] = field(default_factory=list)


class Search:
    """MCTS over conjunctions of candidates whose validation bitsets are ``bits``; ``positives``
    marks the examples of the label; ``copies`` is the number of examples per training row."""

    def __init__(self, bits: list[int], positives: int, copies: int, config: SearchConfig = SearchConfig()):
        self.bits = bits
        self.positives = positives
        self.positive_count = positives.bit_count()
        self.copies = copies
        self.config = config
        self.found: dict[tuple[int, ...], Scored] = {}
        self._everything = (1 << max((b.bit_length() for b in bits), default=0)) - 1 | positives

    def score(self, indices: tuple[int, ...], bits: int) -> Scored:
        """The score of the conjunction ``indices`` whose rows are ``bits`` (remembered)."""
        known = self.found.get(indices)
        if known is not None:
            return known
        fired = bits.bit_count()
        tp = (bits & self.positives).bit_count()
        precision = tp / fired if fired else 0.0
        confidence = wilson_lower_bound(tp / self.copies, fired / self.copies)
        coverage = tp / self.positive_count if self.positive_count else 0.0
        weight = self.config.coverage_weight
        scored = Scored(indices, tp, fired, precision, confidence,
                        confidence * (1 - weight + weight * coverage), bits)
        if indices:
            self.found[indices] = scored
        return scored

    def run(self, seed) -> dict[tuple[int, ...], Scored]:
        """Search for ``config.iterations`` iterations (fewer when the tree is exhausted); return
        every non-empty conjunction evaluated."""
        rng = random.Random(f"kdsl-mcts:{seed}")
        root = self._node((), self._everything)
        for _ in range(self.config.iterations):
            if root.exhausted or not root.untried and not root.children:
                break
            path = [root]
            node = root
            while not node.untried and node.children and not node.exhausted:
                node = self._select(node)
                path.append(node)
            if node.untried:
                index = node.untried.pop(rng.randrange(len(node.untried)))
                child = self._node(node.indices + (index,), node.bits & self.bits[index])
                node.children.append(child)
                path.append(child)
                node = child
            value = self._rollout(node, rng)
            for visited in reversed(path):
                visited.visits += 1
                visited.value += value
                visited.exhausted = not visited.untried and all(c.exhausted for c in visited.children)
        return self.found

    def _node(self, indices: tuple[int, ...], bits: int) -> _Node:
        scored = self.score(indices, bits)
        # A rule already exact cannot gain precision, only lose support: nothing to add.
        terminal = len(indices) >= self.config.max_predicates or (indices and scored.precision == 1.0)
        return _Node(indices, bits, [] if terminal else self._actions(indices, bits), bool(terminal))

    def _actions(self, indices: tuple[int, ...], bits: int) -> list[int]:
        """Candidates after the last one that change the rows matched yet keep enough support."""
        start = indices[-1] + 1 if indices else 0
        actions = []
        for j in range(start, len(self.bits)):
            narrowed = bits & self.bits[j]
            if narrowed != bits and (narrowed & self.positives).bit_count() >= self.config.min_support:
                actions.append(j)
        return actions

    def _select(self, node: _Node) -> _Node:
        log_visits = math.log(node.visits)
        c = self.config.exploration
        open_children = [n for n in node.children if not n.exhausted]
        return max(open_children,
                   key=lambda n: n.value / n.visits + c * math.sqrt(log_visits / n.visits) if n.visits else math.inf)

    def _rollout(self, node: _Node, rng: random.Random) -> float:
        """Extend ``node`` by random actions while allowed; the best reward met on the way."""
        indices, bits = node.indices, node.bits
        scored = self.score(indices, bits)
        best = scored.reward if indices else 0.0
        while len(indices) < self.config.max_predicates and scored.precision < 1.0:
            actions = self._actions(indices, bits)
            if not actions:
                break
            j = rng.choice(actions)
            indices, bits = indices + (j,), bits & self.bits[j]
            scored = self.score(indices, bits)
            best = max(best, scored.reward)
        return best
