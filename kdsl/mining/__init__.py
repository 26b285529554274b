"""Rule mining: candidate predicates (``candidates``), validation examples (``validation``),
Monte Carlo tree search over conjunctions (``mcts``), filtering (``filtering``) and writing the
rule base (``writer``); ``miner.mine`` runs them in order."""
