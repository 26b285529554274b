"""The kdsl language: parse source into a syntax tree, check it, format it.

    >>> from kdsl.dsl import parse, check
    >>> program = parse('rule r: intent = "气泡" when user has "气泡"')
    >>> check([program]).rules[0].name
    'r'
"""

from kdsl.dsl.checker import BUILTIN_FIELDS, RuleSet, check
from kdsl.dsl.errors import Diagnostic
from kdsl.errors import KdslError, RuleError
from kdsl.dsl.loader import load_rules, parse_file
from kdsl.dsl.parser import parse
from kdsl.dsl.text import normalize_text

__all__ = ["BUILTIN_FIELDS", "Diagnostic", "KdslError", "RuleError", "RuleSet", "check", "load_rules",
           "normalize_text", "parse", "parse_file"]
