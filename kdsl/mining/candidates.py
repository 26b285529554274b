"""Candidate predicates per label: the building blocks the rule search combines.

For each label, character n-grams (2 to 4 characters; Chinese has no word boundaries) of the
text fields of its training rows are scored against the rows of every other label: ``support``
is how many of the label's rows contain the n-gram, ``precision`` the share of all rows
containing it that have the label, and the score is the Wilson lower bound of that precision, so
that a frequent, fairly precise n-gram beats one seen once. The rows counted against an n-gram
are those containing it in *any* text field, not only in the candidate's own: a word the agent
says in every dialogue (需要, 收到) is generic even when only one label's users happen to type it
(an IDF-like penalty). N-grams scoring below ``min_score`` are no candidates at all: a rule must
start from a word that points to its label, and not carve an accident of the training rows out
of a generic one with ``not`` forms. The best ``top_k`` per label become ``FIELD has "ngram"``
predicates.

Labels that share many n-grams are *confusable* (是否好用 and 功效功能 talk about the same
products); for those, ``not FIELD has "ngram"`` predicates exclude words typical of the
confusable label that the label itself rarely uses.

    >>> rows = [{"user": "洗衣机漏水了", "label": "漏水"}, {"user": "底下漏水", "label": "漏水"},
    ...         {"user": "怎么排水", "label": "排水"}, {"user": "排水管在哪", "label": "排水"}]
    >>> [c.text for c in propose(rows, top_k=2)["漏水"]]
    ['user has "漏水"']

N-grams found in exactly the same rows (会有, 会有货, 会有货吗) are one candidate, the shortest:
they cannot be told apart on the training rows, and the shortest generalises best.

With ``segment`` (what ``kdsl mine`` does unless ``--no-words``), the text is also cut into words
by jieba (``rjieba``): an n-gram is a candidate only where it cuts no word in two (it is whole
words, or part of one, as 排水 of 排水管) in most of the label's rows that contain it, and words
longer than any n-gram are candidates too. An n-gram that cuts a word (买一 in 买|一份, 天穿 in
秋天|穿) is precise on training rows by accident of their wording; the words carry the meaning. Scoring is unchanged: a candidate is
counted in every row that contains it, however jieba cut that row, since the engine matches
substrings.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

import rjieba

from kdsl.dsl import ast
from kdsl.dsl.formatter import format_condition
from kdsl.dsl.text import normalize_text
from kdsl.mining.confidence import wilson_lower_bound
from kdsl.record import TEXT_FIELDS

NGRAM_SIZES = (2, 3, 4)
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class Candidate:
    """A predicate proposed for ``label``, with how it did on the training rows.

    For a ``not`` form, ``support`` counts the confusable rows it excludes and ``precision`` is
    the share of the label's own rows it keeps.
    """

    label: str
    predicate: ast.Condition
    support: int
    precision: float
    score: float
    source: str = "ngram"  # ngram | word | thesaurus | lexicon | llm | guard (kdsl mine reports per source)

    @property
    def text(self) -> str:
        return format_condition(self.predicate)


def ngrams(text: str | None, sizes=NGRAM_SIZES) -> set[str]:
    """The distinct character n-grams of the normalised ``text`` made only of letters and digits
    (CJK characters count as letters): punctuation and line breaks separate words and turns.

    >>> sorted(ngrams("漏水！", sizes=(2,)))
    ['漏水']
    """
    text = normalize_text(text)
    found = set()
    for n in sizes:
        for i in range(len(text) - n + 1):
            gram = text[i : i + n]
            if gram.isalnum():
                found.add(gram)
    return found


def words(text: str | None) -> list[str]:
    """The jieba words (``rjieba``) of the normalised ``text``.

    >>> words("买一份发几支")
    ['买', '一份', '发', '几支']
    """
    text = normalize_text(text)
    return rjieba.cut(text) if text else []


def aligned(text: str | None, sizes=NGRAM_SIZES) -> set[str]:
    """The n-grams of ``ngrams(text)`` that cut no jieba word in two: whole words, runs of whole
    words, and parts of one word (排水 of 排水管); plus every word longer than them. 买一份 gives
    一份 and 买一份, never 买一, which cuts 一份.

    >>> sorted(aligned("买一份发几支", sizes=(2, 3)))
    ['一份', '一份发', '买一份', '几支', '发几支']
    """
    text = normalize_text(text)
    tokens = words(text)
    boundaries = set(itertools.accumulate(map(len, tokens), initial=0))
    found = {w for w in tokens if len(w) > max(sizes) and w.isalnum()}
    for n in sizes:
        for i in range(len(text) - n + 1):
            gram = text[i : i + n]
            whole = i in boundaries and i + n in boundaries
            if gram.isalnum() and (whole or not any(k in boundaries for k in range(i + 1, i + n))):
                found.add(gram)
    return found


def row_features(row: dict, fields=TEXT_FIELDS) -> set[tuple[str, str]]:
    """(field, n-gram) pairs of one row."""
    return {(field, gram) for field in fields for gram in ngrams(row.get(field))}


def propose(rows: list[dict], top_k: int = 40, min_support: int = 2, confusable: int = 3,
            negations: int | None = None, fields=TEXT_FIELDS, min_score: float = 0.0,
            segment: bool = False) -> dict[str, list[Candidate]]:
    """The best ``top_k`` positive candidates of every label of ``rows`` (dicts with ``label``
    and text fields) scoring at least ``min_score``, then up to ``negations`` (default
    ``top_k // 4``) ``not`` forms drawn from its ``confusable`` most similar labels. N-grams are
    taken from ``fields``, but counted against in every text field. With ``segment``, only
    n-grams that cut no jieba word in most of the label's rows that contain them, and longer
    jieba words, are candidates (``aligned``). Deterministic: ties break on the predicate's text."""
    negations = top_k // 4 if negations is None else negations
    label_rows: Counter = Counter(r["label"] for r in rows)
    per_label: dict[str, Counter] = defaultdict(Counter)
    uncut: dict[str, Counter] = defaultdict(Counter)
    anywhere: Counter = Counter()  # rows containing the n-gram in any text field
    # The sum of random 64-bit keys of the rows containing a feature: equal sums mean (but for
    # a 2^-64 chance) equal row sets, without keeping the sets.
    rows_signature: dict[tuple[str, str], int] = defaultdict(int)
    keys = random.Random("kdsl-candidates")
    row_keys = []
    for row in rows:
        features = row_features(row, fields)
        per_label[row["label"]].update(features)
        anywhere.update({gram for field in TEXT_FIELDS for gram in ngrams(row.get(field))})
        if segment:
            uncut[row["label"]].update((f, g) for f in fields for g in aligned(row.get(f)))
        key = keys.getrandbits(64)
        row_keys.append(key)
        for feature in features:
            rows_signature[feature] = (rows_signature[feature] + key) & _MASK
    if segment:
        _count_long_words(rows, row_keys, uncut, per_label, anywhere, rows_signature, fields,
                          {label: min(min_support, n) for label, n in label_rows.items()})

    def eligible(label: str):
        if not segment:
            return per_label[label].items()
        # An n-gram that cuts a word in most of the label's rows is an accident of their
        # wording: 买一 of 买|一份 and 买|一盒, where 一份 and 一盒 are what was said.
        return [(f, n) for f, n in per_label[label].items() if 2 * uncut[label][f] >= n]

    def precise(label: str) -> list[Candidate]:
        scored = []
        for (field, gram), support in eligible(label):
            if support >= min(min_support, label_rows[label]):
                total = anywhere[gram]
                scored.append(Candidate(label, _has(field, gram), support, support / total,
                                        wilson_lower_bound(support, total),
                                        "word" if len(gram) > max(NGRAM_SIZES) else "ngram"))
        distinct, seen = [], set()
        for candidate in sorted(scored, key=_rank):
            has = candidate.predicate
            signature = rows_signature[has.field.name, has.literals[0]]
            if signature not in seen:
                seen.add(signature)
                distinct.append(candidate)
        return distinct

    positives = {label: precise(label) for label in sorted(label_rows)}
    proposals = {}
    for label, ranked in positives.items():
        chosen = [c for c in ranked if c.score >= min_score][:top_k]
        for other in _confusable(label, per_label, label_rows, confusable):
            chosen += _negations(label, positives[other], per_label[label], label_rows[label],
                                 negations, chosen)
        proposals[label] = chosen
    return proposals


def _count_long_words(rows, row_keys, uncut, per_label, anywhere, rows_signature, fields,
                      min_support: dict[str, int]) -> None:
    """Count the words longer than any n-gram as ``ngrams`` counts n-grams: every row that
    contains one, wherever jieba cut that row, since the engine will match it there. Only words
    with a label's support are counted (OCR text is full of one-off order numbers)."""
    longest = max(NGRAM_SIZES)
    long_words = sorted({g for label, counts in uncut.items() for (f, g), n in counts.items()
                         if len(g) > longest and n >= min_support[label]})
    for row, key in zip(rows, row_keys):
        texts = {f: normalize_text(row.get(f)) for f in TEXT_FIELDS}
        for word in long_words:
            found = {f for f, text in texts.items() if word in text}
            if found:
                anywhere[word] += 1
                for field in found & set(fields):
                    per_label[row["label"]][field, word] += 1
                    rows_signature[field, word] = (rows_signature[field, word] + key) & _MASK


def _negations(label, typical: list[Candidate], own: Counter, own_rows: int, limit: int,
               taken: list[Candidate]) -> list[Candidate]:
    """``not`` forms of the n-grams typical of a confusable label that ``label``'s rows rarely
    contain (at most one in ten), best first."""
    seen = {c.predicate for c in taken}
    found = []
    for candidate in typical:
        if len(found) >= limit:
            break
        has = candidate.predicate
        inside = own[has.field.name, has.literals[0]]
        negation = ast.Not(has)
        if inside * 10 <= own_rows and negation not in seen:
            kept = 1 - inside / own_rows
            found.append(Candidate(label, negation, candidate.support, kept, candidate.score * kept, candidate.source))
    return found


def _confusable(label: str, per_label: dict[str, Counter], label_rows: Counter, count: int) -> list[str]:
    """The ``count`` labels whose frequent n-grams overlap most with ``label``'s (Jaccard)."""
    def frequent(name):  # n-grams in at least a fifth of the label's rows: its usual wording
        return {f for f, n in per_label[name].items() if n * 5 >= label_rows[name]}

    mine = frequent(label)
    overlaps = []
    for other in sorted(per_label):
        if other != label:
            theirs = frequent(other)
            union = len(mine | theirs)
            overlaps.append((-(len(mine & theirs) / union if union else 0.0), other))
    return [other for overlap, other in sorted(overlaps)[:count] if overlap < 0]


def _has(field: str, gram: str) -> ast.Has:
    return ast.Has(ast.Field(field), "one", (gram,))


def _rank(candidate: Candidate):
    return (-candidate.score, -candidate.support, len(candidate.text), candidate.text)
