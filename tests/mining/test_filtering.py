from kdsl.dsl import ast
from kdsl.mining.filtering import (
    drop_erring,
    drop_subsumed,
    filter_rules,
    keep_covering,
)
from kdsl.mining.mined import MinedRule

A, B, C = (ast.Has(ast.Field("user"), "one", (w,)) for w in ("漏水", "底下", "洗衣机"))


def _rule(predicates, reward, bits=0b1, held_out=0, label="漏水"):
    return MinedRule(label, predicates, 1, 1.0, reward, reward, bits, held_out)


def test_subset_with_higher_or_equal_reward_drops_the_superset():
    kept = drop_subsumed([_rule((A, B), 0.9), _rule((A,), 0.9), _rule((A, C), 0.8)])
    assert [r.predicates for r in kept] == [(A,)]


def test_superset_with_higher_reward_stays():
    kept = drop_subsumed([_rule((A, B), 0.95), _rule((A,), 0.9)])
    assert [r.predicates for r in kept] == [(A, B), (A,)]


def test_subsets_only_compare_within_a_label():
    assert len(drop_subsumed([_rule((A,), 0.9), _rule((A, B), 0.8, label="排水")])) == 2


def test_held_out_errors_beyond_tolerance_drop_a_rule():
    positives = {"漏水": 0b0111}
    rules = [_rule((A,), 0.9, held_out=0b1111), _rule((B,), 0.9, held_out=0b0011), _rule((C,), 0.9)]
    assert [r.predicates for r in drop_erring(rules, positives, tolerance=0.1)] == [(B,), (C,)]
    assert len(drop_erring(rules, positives, tolerance=0.25)) == 3


def test_keep_covering_skips_rules_that_add_nothing():
    rules = [_rule((A,), 0.9, bits=0b11), _rule((B,), 0.8, bits=0b01), _rule((C,), 0.7, bits=0b100)]
    assert [r.predicates for r in keep_covering(rules, {"漏水": 0b111}, max_rules=8)] == [(A,), (C,)]


def test_filter_rules_ranks_and_drops_weak_and_negation_only_rules():
    rules = [_rule((A,), 0.85, bits=0b1), _rule((B,), 0.95, bits=0b10), _rule((C,), 0.5, bits=0b100),
             _rule((ast.Not(A),), 0.99, bits=0b1000)]
    kept = filter_rules(rules, min_reward=0.8, positives={"漏水": 0b1111}, held_out_positives={})
    assert [(r.predicates, r.priority) for r in kept] == [((B,), 95), ((A,), 85)]
