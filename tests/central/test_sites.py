"""The sites file: valid settings, one clear error for each kind of mistake, local days."""

from __future__ import annotations

from datetime import date

import pytest
from zoneinfo import ZoneInfo

from central.exceptions import SitesFileError
from central.sites import Sites, Thresholds, intensity, local_day
from tests.central.conftest import SITES_TOML


def write(tmp_path, text):
    path = tmp_path / "sites.toml"
    path.write_text(text)
    return path


def test_configured_and_default_sites(tmp_path):
    sites = Sites.load(write(tmp_path, SITES_TOML))
    head = sites.get("HEAD_OFFICE")
    assert head.configured and head.display_name == "Head office"
    zone = head.zone("EMPLOYEE_AREA")
    assert zone.thresholds == Thresholds(10, 5) and zone.position == {"x": 0, "y": 0, "w": 2, "h": 1}
    assert head.zone("OTHER").display_name == "OTHER" and head.zone("OTHER").thresholds == Thresholds(7, 4)
    seen = sites.get("SEEN_ONLY")
    assert not seen.configured and seen.timezone == "UTC"
    assert Sites.load(None).get("X").thresholds == Thresholds()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[sites.A]\ntimezone = "Mars/Olympus"\n', "Mars/Olympus"),
        ("[sites.A]\ncolour = 1\n", "colour"),
        ("[sites.A]\nhigh = 3\nmedium = 5\n", "medium"),
        ('[sites."a b"]\n', "not a valid site name"),
        ("[sites.A.zones.Z]\nhigh = -1\n", "high"),
        ("[sites.A.zones.Z]\nx = true\n", "x"),
        ("[defaults]\ntimezone = 5\n", "timezone"),
        ("not toml [", "sites file"),
        ("[other]\n", "other"),
    ],
)
def test_mistakes_are_named(tmp_path, text, needle):
    with pytest.raises(SitesFileError, match=needle):
        Sites.load(write(tmp_path, text))


def test_intensity_rule():
    t = Thresholds(7, 4)
    assert [intensity(v, t) for v in (0, 3, 4, 6, 7, 100)] == ["low", "low", "medium", "medium", "high", "high"]


def test_local_days():
    assert local_day(date(2026, 3, 29), ZoneInfo("Europe/London")) == (1774742400, 1774742400 + 23 * 3600)
    start, end = local_day(date(2026, 10, 25), ZoneInfo("Europe/London"))
    assert end - start == 25 * 3600
    start, end = local_day(date(2026, 1, 5), ZoneInfo("Asia/Kathmandu"))
    assert start % 900 == 0 and end - start == 86400
