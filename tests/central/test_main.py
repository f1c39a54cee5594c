"""``python -m central``'s command line: which import errors mean "reconcile is not installed"."""

from __future__ import annotations

import sys

import pytest

from central import __main__ as cli


def test_a_missing_reconcile_module_is_reported_as_not_installed(monkeypatch, capsys):
    # None in sys.modules is how the import system spells "no such module".
    monkeypatch.setitem(sys.modules, "central.reconcile", None)
    assert cli._reconcile_module() is None
    assert cli.main(["reconcile"]) == cli.EXIT_CONFIG
    assert "reconcile: not installed" in capsys.readouterr().err


def test_an_import_error_inside_reconcile_is_raised_not_hidden(monkeypatch):
    # central.reconcile is there, but a module it imports is not: a bug to show, not "not installed".
    monkeypatch.delitem(sys.modules, "central.reconcile", raising=False)
    monkeypatch.delitem(sys.modules, "central.reconcile.cli", raising=False)
    monkeypatch.setitem(sys.modules, "central.reconcile.report", None)
    with pytest.raises(ModuleNotFoundError) as info:
        cli.build_parser()
    assert info.value.name == "central.reconcile.report"


def test_reconcile_is_a_subcommand_when_installed(capsys):
    assert cli._reconcile_module() is sys.modules["central.reconcile"]
    with pytest.raises(SystemExit):
        cli.main(["reconcile", "--help"])
    assert "not installed" not in capsys.readouterr().out
