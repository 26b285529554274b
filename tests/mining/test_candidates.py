from kdsl.dsl import ast
from kdsl.mining.candidates import aligned, ngrams, propose

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


def test_aligned_keeps_whole_words_and_drops_ngrams_that_cut_one():
    found = aligned("买一份发几支")
    assert {"一份", "几支", "买一份"} <= found and "买一" not in found and "份发几" not in found
    assert {"排水", "排水管"} <= aligned("排水管在哪") and "管在" not in aligned("排水管在哪")
    assert "中华人民共和国" in aligned("我爱中华人民共和国")  # longer than any n-gram, still a candidate
    assert "中华人民共和国" not in ngrams("我爱中华人民共和国")


# 买一 is precise for 发货 on these rows, but it cuts 一份 and 一盒 in two: an accident of the wording.
ACCIDENT = ([{"user": f"买一份发几支{i}", "label": "发货"} for i in range(2)]
            + [{"user": f"买一盒发几个{i}", "label": "发货"} for i in range(2)]
            + [{"user": t, "label": "套装"} for t in ("有套装吗", "套装怎么卖", "套装多少钱")])


def literals(proposals, label):
    return {c.predicate.literals[0] for c in proposals[label] if isinstance(c.predicate, ast.Has)}


def test_segment_drops_ngrams_that_cut_words_in_most_rows():
    assert "买一" in literals(propose(ACCIDENT, top_k=100), "发货")
    words = literals(propose(ACCIDENT, top_k=100, segment=True), "发货")
    assert {"一份", "一盒"} <= words and "买一" not in words
    assert "套装" in literals(propose(ACCIDENT, top_k=100, segment=True), "套装")


def test_long_words_are_candidates_counted_in_every_row_that_contains_them():
    # Every n-gram of 中华人民共和国 is also in a row of b, so only the whole word marks label a.
    rows = ([{"user": "中华人民共和国万岁", "label": "a"}, {"user": "我爱中华人民共和国", "label": "a"}]
            + [{"user": t, "label": "b"} for t in ("中华人民共和国成立", "中华人民，人民共和国", "华人民共")])
    found = {c.predicate.literals[0]: c for c in propose(rows, top_k=100, segment=True, min_support=1)["a"]
             if isinstance(c.predicate, ast.Has)}
    assert (found["中华人民共和国"].support, found["中华人民共和国"].precision) == (2, 2 / 3)
    assert "中华人民共和国" not in literals(propose(rows, top_k=100, min_support=1), "a")


def test_segment_deterministic():
    assert propose(ACCIDENT, segment=True) == propose(list(ACCIDENT), segment=True)
