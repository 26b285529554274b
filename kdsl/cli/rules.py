"""Commands for rule writers: check, fmt, test."""

import sys

import click

from kdsl.cli.common import EXIT_FINDINGS, load_engine, main
from kdsl.dsl.loader import UnreadableInput, load_rules, parse_file, rule_files
from kdsl.errors import RuleError


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def check(paths):
    """Parse and validate rule files, then run their examples."""
    from kdsl.engine import Engine
    from kdsl.engine.examples import run_examples

    try:
        rules = load_rules(list(paths))
    except UnreadableInput:
        raise  # a path that cannot be read is bad input (exit 2), not a finding
    except RuleError as error:
        click.echo(str(error), err=True)
        click.echo(f"{len(error.diagnostics)} problem(s) found", err=True)
        sys.exit(EXIT_FINDINGS)
    failures = [r for r in run_examples(Engine(rules)) if not r.passed]
    for failure in failures:
        click.echo(str(failure), err=True)
    files = len(rule_files(list(paths)))
    if failures:
        click.echo(f"{len(failures)} example(s) failed", err=True)
        sys.exit(EXIT_FINDINGS)
    click.echo(f"ok: {len(rules.rules)} rules in {files} file(s); targets: {', '.join(rules.targets) or 'none'}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file would change.")
def fmt(paths, check_only):
    """Format rule files in place (canonical layout; comments kept)."""
    from kdsl.dsl.formatter import format_program
    from kdsl.io import write_text_atomically

    files = rule_files(list(paths))
    programs = [parse_file(f) for f in files]
    changed = []
    for file, program in zip(files, programs):
        formatted = format_program(program)
        if formatted != program.source:
            changed.append(file)
            if not check_only:
                write_text_atomically(file, formatted)
    verb = "would reformat" if check_only else "reformatted"
    for file in changed:
        click.echo(f"{verb} {file}")
    click.echo(f"{len(changed)} of {len(files)} file(s) {verb}" if changed else f"{len(files)} file(s) already formatted")
    if check_only and changed:
        sys.exit(EXIT_FINDINGS)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-v", "--verbose", is_flag=True, help="List passing examples too.")
def test(paths, verbose):
    """Run every rule's examples (it must match) and counterexamples (it must not)."""
    from kdsl.engine.examples import run_examples

    results = run_examples(load_engine(paths))
    failed = [r for r in results if not r.passed]
    for result in results:
        if verbose or not result.passed:
            status = "ok  " if result.passed else "FAIL"
            click.echo(f"{status} {result}" if not result.passed else f"{status} {result.record.span}: {result.rule.name}")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(EXIT_FINDINGS)
