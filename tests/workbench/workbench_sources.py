"""The rule files the workbench tests start from (shared by conftest and the tests)."""

LEAK = '''kdsl 1

labels intent = ["漏水", "排水", "好用"]

rule leak: intent = "漏水"
    when user has "漏水" and not user has "排水"
    priority 10

rule drain: intent = "排水"
    when user has "排水"
'''
OTHER = '''kdsl 1
rule good: intent = "好用" when user has "好用"
'''
