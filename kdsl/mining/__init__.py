"""Rule mining: labelled rows of one task in, readable ``.kdsl`` rules out (``kdsl mine``).

``mine`` (``miner``) runs the steps in order: candidate predicates (``candidates``, or a local
LLM's proposals, ``llm_proposer``), validation examples (``validation``), Monte Carlo tree
search over conjunctions (``mcts``, rewards from ``bitsets`` and ``confidence``), filtering
(``filtering``); ``render`` and ``write`` turn the result into a checked, formatted rule file
(``writer``). ``labelled_rows`` picks a table's labelled rows of one task. ``docs/mining.md``
describes the method.

    >>> from kdsl.mining import MiningConfig, mine, render
    >>> rows = [{"id": str(i), "user": text, "label": label} for i, (text, label) in enumerate(
    ...     [("洗衣机漏水了", "漏水"), ("底下一直漏水", "漏水"), ("漏水怎么办", "漏水"),
    ...      ("怎么排水", "排水"), ("排水管在哪", "排水"), ("排水口堵了", "排水")] * 3)]
    >>> result = mine(rows, "intent", MiningConfig(min_reward=0.5))
    >>> print(render("intent", ("漏水", "排水"), result.rules).splitlines()[0])
    kdsl 1
"""

from kdsl.mining.llm_proposer import LlmConfig, LlmProposer
from kdsl.mining.miner import MiningConfig, MiningResult, labelled_rows, mine
from kdsl.mining.writer import render, write

__all__ = ["LlmConfig", "LlmProposer", "MiningConfig", "MiningResult", "labelled_rows", "mine",
           "render", "write"]
