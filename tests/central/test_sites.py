"""The sites file: valid settings, one clear error for each kind of mistake, local days."""

from __future__ import annotations

from datetime import date

import pytest
from zoneinfo import ZoneInfo

from central.exceptions import SitesFileError
from central.sites import Sites, Thresholds, intensity, local_day, utilisation
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
        ('[sites.A]\nworking_hours = "9:00-18:00"\n', "working_hours must be"),
        ('[sites.A]\nworking_hours = "09:30-18:00"\n', "working_hours must be"),
        ('[sites.A]\nworking_hours = "09:00-09:00"\n', "working_hours must be"),
        ('[sites.A]\nworking_hours = "\u0660\u0669:00-18:00"\n', "working_hours must be"),
        ('[sites.A]\nworking_days = ["mon", "funday"]\n', "working_days must be"),
        ('[sites.A]\nworking_days = []\n', "working_days must be"),
        ('[sites.A]\nworking_days = ["mon", "mon"]\n', "working_days must be"),
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


def test_capacity_and_capacity_relative_intensity(tmp_path):
    sites = Sites.load(write(tmp_path, """
[sites.A]
[sites.A.zones.HALL]
capacity = 15
[sites.B]
intensity = "capacity"
capacity_high = 80
[sites.B.zones.HALL]
capacity = 15
[sites.B.zones.OWN]
capacity = 20
high = 3
medium = 2
[sites.B.zones.NONE]
"""))
    a, b = sites.get("A"), sites.get("B")
    # Capacity alone changes nothing about intensity: the handoff's thresholds stay the default.
    assert a.zone("HALL").capacity == 15 and a.zone("HALL").thresholds == Thresholds(7, 4)
    assert a.intensity_mode == "fixed" and b.intensity_mode == "capacity"
    # 80 % of 15 = 12, 50 % of 15 = 7.5 -> 8 (whole people, rounded up).
    assert b.zone("HALL").thresholds == Thresholds(12, 8)
    assert b.zone("OWN").thresholds == Thresholds(3, 2)  # a zone's own thresholds win
    assert b.zone("NONE").thresholds == Thresholds(7, 4) and b.zone("NONE").capacity is None
    assert b.capacities == {"HALL": 15, "OWN": 20}
    # Where each zone's thresholds come from (the page says so instead of guessing).
    assert [b.zone(z).threshold_origin for z in ("HALL", "OWN", "NONE")] == ["capacity", "own", "site"]
    assert a.zone("HALL").threshold_origin == "site"
    assert (a.capacity_shares, b.capacity_shares) == (None, (80, 50))


def test_utilisation_is_the_busiest_zone_share():
    assert utilisation({"A": 9, "B": 10}, {"A": 10, "B": 20}) == 0.9
    assert utilisation({"A": 30}, {"A": 20, "B": 5}) == 1.5  # over capacity
    assert utilisation({"A": 3}, {}) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[sites.A.zones.Z]\ncapacity = 0\n", "capacity"),
        ('[sites.A.zones.Z]\ncapacity = "10"\n', "capacity"),
        ('[sites.A]\nintensity = "relative"\n', "intensity"),
        ("[sites.A]\ncapacity_high = 90\n", "capacity_high"),
        ('[sites.A]\nintensity = "capacity"\ncapacity_high = 40\ncapacity_medium = 60\n', "capacity_medium"),
    ],
)
def test_capacity_mistakes_are_named(tmp_path, text, needle):
    with pytest.raises(SitesFileError, match=needle):
        Sites.load(write(tmp_path, text))


def test_working_hours(tmp_path):
    sites = Sites.load(write(tmp_path, '[sites.A]\nworking_hours = "22:00-06:00"\nworking_days = ["sun", "sat"]\n'
                                       '[sites.B]\n'))
    assert (sites.get("A").working_hours, sites.get("A").working_days) == ("22:00-06:00", ("sat", "sun"))
    assert (sites.get("B").working_hours, sites.get("B").working_days) == ("09:00-18:00",
                                                                          ("mon", "tue", "wed", "thu", "fri"))
