from kdsl.dsl import ast
from kdsl.mining.candidates import ngrams, propose

ROWS = ([{"user": f"洗衣机漏水了{i}", "label": "漏水"} for i in range(4)]
        + [{"user": f"排水管在哪{i}", "label": "排水"} for i in range(4)]
        + [{"user": f"排水管漏水{i}", "agent": "排水", "label": "排水漏水"} for i in range(3)])


def test_ngrams_skip_punctuation_and_line_breaks():
    assert ngrams("漏水！\n好", sizes=(2,)) == {"漏水"}


def test_best_candidate_is_the_precise_frequent_ngram():
    proposals = propose(ROWS, top_k=3)
    best = proposals["漏水"][0].predicate
    assert best.field.name == "user" and best.literals[0] in "洗衣机漏水了" and len(best.literals[0]) == 2
    assert proposals["漏水"][0].precision == 1.0 and proposals["漏水"][0].support == 4


def test_confusable_labels_get_not_forms():
    negated = [c.predicate for c in propose(ROWS, top_k=8)["漏水"] if isinstance(c.predicate, ast.Not)]
    assert any(p.operand.literals[0].startswith("排水") for p in negated)


def test_deterministic():
    assert propose(ROWS) == propose(list(ROWS))
