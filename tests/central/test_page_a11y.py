"""Accessibility audit of every view of the page: axe-core (vendored under tests/vendor) run in
real Chromium at desktop and phone width; no serious or critical violation is allowed."""

from __future__ import annotations

import json

import pytest

from tests.central import test_page as day
from tests.central.test_page import REPO

pytestmark = pytest.mark.slow

central = day.central
browser = day.browser
tab = day.tab

AXE = REPO / "tests" / "vendor" / "axe-core" / "axe.min.js"
VIEWS = {
    "day": "/?site=HEAD_OFFICE&date=2026-01-05",
    "portfolio": "/?view=portfolio&date=2026-01-05",
    "range": "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11&compare=previous",
}
PANELS = {"portfolio": "#shortlist-panel[data-state=ready]", "range": "#range-zones-panel[data-state=ready]"}


@pytest.mark.parametrize("width,height", [(1280, 900), (390, 844)])
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_no_serious_accessibility_violations(central, tab, view, width, height):
    t = tab(width=width, height=height)
    page = t.open(central + VIEWS[view], "ready")
    if view in PANELS:  # panels that load on their own are checked too
        page.wait_for_selector(PANELS[view])
    # Evaluated through the DevTools protocol: the page's CSP (script-src 'self') stays as it is.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})""")
    bad = [{"id": v["id"], "impact": v["impact"], "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5]}
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], json.dumps(bad, indent=1)
    assert result["passes"], "axe ran no checks"
    assert t.errors == []
