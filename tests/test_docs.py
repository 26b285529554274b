"""The examples in the documentation run: every module's doctests (found by walking the
package, so a new or moved module is picked up without editing this file), the ``>>>``
examples in ``docs/*.md``, and the public faces of the packages."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import kdsl

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
MODULES = sorted(info.name for info in pkgutil.walk_packages(kdsl.__path__, "kdsl."))


def doc_examples(path: Path) -> doctest.DocTest:
    """The ``>>>`` examples of a Markdown page (a closing code fence ends an example's expected
    output, as a blank line would)."""
    text = "\n".join("" if line.strip() == "```" else line
                     for line in path.read_text(encoding="utf-8").splitlines())
    return doctest.DocTestParser().get_doctest(text, {}, path.name, str(path), 0)


DOCS = [path for path in sorted((ROOT / "docs").glob("*.md")) if doc_examples(path).examples]


def import_or_skip(name: str):
    """The module, or a skip naming the optional dependency it needs (a missing kdsl module is
    a failure, not a skip)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] == "kdsl":
            raise
        pytest.skip(f"{name} needs {error.name}, not installed (an optional extra)")


def run_doctests(tests) -> doctest.TestResults:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test)
    return runner.summarize(verbose=False)


def test_the_walk_finds_every_package():
    assert {"kdsl.dsl.parser", "kdsl.engine.engine", "kdsl.mining", "kdsl.data.tianchi",
            "kdsl.adapters.baseline", "kdsl.cli"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name, tmp_path, monkeypatch):
    module = import_or_skip(name)
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    failed, _ = run_doctests(doctest.DocTestFinder().find(module))
    assert failed == 0, f"{failed} doctest example(s) of {name} failed; see the captured output"


def test_the_doctests_are_there():
    """Guards the walk above against finding nothing (a broken finder passes every module)."""
    attempted = 0
    for name in ("kdsl.dsl.parser", "kdsl.dsl.formatter", "kdsl.metrics", "kdsl.data.augment"):
        attempted += run_doctests(doctest.DocTestFinder().find(importlib.import_module(name))).attempted
    assert attempted >= 15


def test_the_spec_has_examples():
    assert {"language.md", "record-table.md"} <= {path.name for path in DOCS}


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_doc_examples(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failed, _ = run_doctests([doc_examples(path)])
    assert failed == 0, f"{failed} example(s) in {path.name} failed; see the captured output"


@pytest.mark.parametrize("package", ["kdsl.dsl", "kdsl.engine", "kdsl.data", "kdsl.mining"])
def test_each_public_name_imports(package):
    module = importlib.import_module(package)
    assert module.__doc__ and module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    namespace = {}
    exec(f"from {package} import *", namespace)
    assert set(module.__all__) <= namespace.keys()


def test_version_is_the_installed_distributions():
    assert kdsl.__version__ == metadata.version("kdsl")
    with open(ROOT / "pyproject.toml", "rb") as file:
        assert kdsl.__version__ == tomllib.load(file)["project"]["version"]


def test_version_without_an_installed_distribution(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert kdsl._installed_version() == "0+unknown"


def test_every_command_and_option_is_in_the_cli_reference():
    import click

    from kdsl.cli import main

    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []

    def walk(group, prefix, parent):
        for name in group.list_commands(parent):
            command = group.get_command(parent, name)
            context = click.Context(command, info_name=name, parent=parent)
            path = f"{prefix} {name}"
            if f"`{path}" not in reference:
                missing.append(path)
            for param in command.params:
                if isinstance(param, click.Option):
                    missing.extend(f"{path} {flag}" for flag in param.opts + param.secondary_opts
                                   if flag.startswith("--") and flag != "--help" and flag not in reference)
            if isinstance(command, click.Group):
                walk(command, path, context)

    walk(main, "kdsl", click.Context(main, info_name="kdsl"))
    assert not missing, f"docs/cli.md does not mention: {', '.join(missing)}"
