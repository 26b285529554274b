"""The rows a mined rule is judged on.

As in the KDSL paper, a rule is scored on *validation examples*: the training rows together with
rephrased copies of them (``kdsl.data.augment.rephrase``: fillers moved, synonyms swapped, OCR
noise), so that a rule leaning on exact wording or on a filler turn loses precision or coverage,
plus real validation rows when there are some. Separately, *held-out* rows (a split of the
training rows, or the validation rows) check the survivors once the search is over.

    >>> rows = [{"id": str(i), "user": "你好\\n发货了吗", "label": "发货"} for i in range(10)]
    >>> mine, held_out = split_held_out(rows, seed=1, share=0.2)
    >>> len(mine), len(held_out)
    (8, 2)
    >>> examples = validation_examples(mine, seed=1, variants=2)
    >>> len(examples), examples[0]["source"], examples[1]["source"]
    (24, 0, 0)
"""

from __future__ import annotations

import random
from collections import defaultdict

from kdsl.data.augment import rephrase


def split_held_out(rows: list[dict], seed, share: float = 0.2) -> tuple[list[dict], list[dict]]:
    """(rows to mine, held-out rows): ``share`` of each label's rows held out, chosen by ``seed``;
    a label with fewer than three rows keeps them all for mining, and ``share`` 0 holds out
    nothing. Row order is kept."""
    if share <= 0:
        return list(rows), []
    by_label = defaultdict(list)
    for index, row in enumerate(rows):
        by_label[row["label"]].append(index)
    rng = random.Random(f"kdsl-held-out:{seed}")
    held = set()
    for label in sorted(by_label):
        indices = by_label[label]
        if len(indices) >= 3:
            held.update(rng.sample(indices, max(1, round(len(indices) * share))))
    return ([r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held])


def validation_examples(rows: list[dict], seed, variants: int = 2, extra: list[dict] = ()) -> list[dict]:
    """Each row followed by ``variants`` rephrasings of it, every one with ``source`` = the row's
    index in ``rows``; then the ``extra`` rows, with ``source`` None."""
    examples = []
    for index, row in enumerate(rows):
        for copy in [dict(row), *rephrase(row, seed=f"{seed}:{index}", n=variants)]:
            copy["source"] = index
            examples.append(copy)
    return examples + [{**row, "source": None} for row in extra]
