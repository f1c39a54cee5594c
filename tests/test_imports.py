"""The import contract: storage imports nothing from the HTTP layer or the views (issue 26),
and edge/ and shared/ nothing from central/. Checked on the source, so a lazy import inside
a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What central/storage/ may import from central (besides itself).
STORAGE_MAY = {"central.exceptions", "central.sites"}


def imports(path: Path) -> set[str]:
    """The absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
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
