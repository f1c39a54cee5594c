"""The import contract: storage imports nothing from the HTTP layer or the views (issue 26),
and edge/ and shared/ nothing from central/; the derived tables are named and built inside
central/storage/ only. Checked on the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from central.storage.derived import NAMES

ROOT = Path(__file__).resolve().parent.parent

#: What central/storage/ may import from central (besides itself).
STORAGE_MAY = {"central.exceptions", "central.sites"}

#: The modules that name and build the derived tables; outside central/storage/ the entry
#: point is central.storage.derived.
DERIVED_MODULES = ("central.storage.rollup", "central.storage.answers", "central.storage.days")
#: Reads of the kept site-days that still name their table (through its constant), pending
#: the day fold that moves them: tolerated here, never required.
DERIVED_READERS = {("central/history.py", "central.storage.days.DAYS_TABLE")}

_NAME = "(?:%s)(?:_local)?" % "|".join(sorted(NAMES, key=len, reverse=True))
#: A derived table named in SQL: after a keyword that takes a table, in any case.
_IN_SQL = re.compile(r"\b(?:FROM|JOIN|INTO|TABLE|VIEW|EXISTS|TO|OPTIMIZE|UPDATE)\s+%s\b" % _NAME, re.I)
_ALONE = re.compile(r"\s*%s\s*" % _NAME)


def imports(path: Path, source: str | None = None) -> set[str]:
    """The absolute names of the modules ``path`` imports (relative imports resolved);
    ``source``: its text, if not the file's."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update("%s.%s" % (name, alias.name) for alias in node.names)
    return out


def test_storage_imports_nothing_from_the_http_layer_or_the_views():
    files = sorted((ROOT / "central" / "storage").glob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            if name.startswith("central.") and not name.startswith("central.storage"):
                assert any(name == m or name.startswith(m + ".") for m in STORAGE_MAY), (path.name, name)


def test_edge_and_shared_import_nothing_from_central():
    for top in ("edge", "shared"):
        for path in sorted((ROOT / top).rglob("*.py")):
            assert not any(n == "central" or n.startswith("central.") for n in imports(path)), path


def test_the_contract_can_fail():
    # The checker sees a relative import that leaves the package.
    bad = ROOT / "central" / "storage" / "keeper.py"
    assert "central.sites" in imports(bad) or "central.sites.Sites" in imports(bad)


def derived_names(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string constant of ``source`` that names a derived table: in SQL,
    or alone (a name to format into SQL). A dict key is a document's field (``/healthz``'s
    ``slot_answers``), not a table."""
    tree = ast.parse(source)
    keys = {id(k) for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in keys
            and (_IN_SQL.search(node.value) or _ALONE.fullmatch(node.value))]


def _outside_storage() -> list[Path]:
    files = [p for p in sorted((ROOT / "central").rglob("*.py")) if "storage" not in p.relative_to(ROOT).parts]
    assert len(files) > 20
    return files


def test_no_module_outside_storage_names_a_derived_table_in_sql():
    for path in _outside_storage():
        assert derived_names(path.read_text()) == [], path.relative_to(ROOT)


def past_the_entry_point(path: Path, source: str | None = None) -> list[str]:
    """What ``path`` imports from the modules of the derived tables (not tolerated)."""
    where = path.relative_to(ROOT).as_posix()
    names = imports(path, source)
    tolerated = {n for w, n in DERIVED_READERS if w == where}

    def reached(name: str) -> bool:
        if name in tolerated or not any(name == m or name.startswith(m + ".") for m in DERIVED_MODULES):
            return False
        members = {n for n in names if n.startswith(name + ".")}
        return not (members and members <= tolerated)  # a module imported for tolerated names only

    return sorted(filter(reached, names))


def test_no_module_outside_storage_reaches_past_its_entry_point_to_the_derived_tables():
    for path in _outside_storage():
        assert past_the_entry_point(path) == [], path.relative_to(ROOT)


def test_the_derived_tables_rule_can_fail():
    # What __main__.py held before the entry point: the rollup's target formatted into DDL.
    assert [t for _, t in derived_names(
        'ddl = "CREATE MATERIALIZED VIEW %s TO %s" % (v, "raw_slots_local" if c else "raw_slots")')] == [
        "raw_slots_local", "raw_slots"]
    assert derived_names('q = """\n  SELECT peak\n  from slot_answers FINAL WHERE x = {x:UInt8}"""')
    assert derived_names('q = "INSERT INTO day_answers_by_day (a) VALUES"')
    # Prose and document fields are not SQL; source tables are not derived.
    assert derived_names('"""Reads the kept ``slot_answers`` (see day_answers)."""') == []
    assert derived_names('doc = {"slot_answers": 1, "raw_rollup": 2}') == []
    assert derived_names('q = "SELECT 1 FROM slot_states FINAL"') == []
    assert {"raw_slots", "slot_answers", "slot_dirty", "day_answers", "day_answers_by_day",
            "raw_slots_mv", "slot_dirty_mv"} <= set(NAMES)
    # The import rule: what reconcile/cli.py imported before the entry point, a lazy import,
    # and a tolerated reader importing more than its table's name.
    cli = ROOT / "central" / "reconcile" / "cli.py"
    assert past_the_entry_point(cli, "from ..storage import answers, rollup, schema\n") == [
        "central.storage.answers", "central.storage.rollup"]
    assert past_the_entry_point(cli, "def f():\n    from central.storage.days import DayKeeper\n") == [
        "central.storage.days", "central.storage.days.DayKeeper"]
    assert past_the_entry_point(cli, "from ..storage.derived import derived_status\n") == []
    history = ROOT / "central" / "history.py"
    assert past_the_entry_point(history, "from .storage.days import DAYS_TABLE\n") == []
    assert past_the_entry_point(history, "from .storage.days import DAYS_TABLE, DayKeeper\n") == [
        "central.storage.days", "central.storage.days.DayKeeper"]
