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


def test_bad_alert_rules_stop_serve_with_exit_2_and_one_line_each(tmp_path, monkeypatch, capsys):
    """Every rule's error, the unparseable URL among them, on one line each; no traceback."""
    sites = tmp_path / "sites.toml"
    sites.write_text('[sites.S]\ntimezone = "UTC"\n\n'
                     '[[alerts]]\nname = "a"\nkind = "trigger"\nwebhook = "http://[::1"\n\n'
                     '[[alerts]]\nname = "b"\nkind = "trigger"\nwebhook = "http://127.0.0.1:99999/x"\n\n'
                     '[[alerts]]\nname = "c"\nkind = "no_data"\nminutes = 5\nlocal_hours = "09:00-18:00\\n"\n')
    for name in [k for k in __import__("os").environ if k.startswith("HEATMAP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HEATMAP_SITES_FILE", str(sites))
    monkeypatch.setenv("HEATMAP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HEATMAP_HTTP_ADDR", "127.0.0.1:0")
    assert cli.main(["serve"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "python -m central serve: invalid alert rules in the sites file:", err
    assert [line.split()[1] for line in err[1:]] == ["(a).webhook", "(b).webhook", "(c).local_hours"], err
    assert "Traceback" not in "\n".join(err)
