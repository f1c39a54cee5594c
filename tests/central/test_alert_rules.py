"""Alert rules from the sites TOML: what is accepted, every error reported at once, local hours."""

from __future__ import annotations

from datetime import datetime

import pytest
from zoneinfo import ZoneInfo

from central.alerts.rules import parse_rules
from central.exceptions import SitesFileError
from central.sites import Sites

SITES = """
[sites.HEAD_OFFICE]
timezone = "Asia/Kolkata"

[sites.HEAD_OFFICE.zones.CAFETERIA]
capacity = 40

[sites.HEAD_OFFICE.zones.LOBBY]
display_name = "Lobby"

[sites.LONDON]
timezone = "Europe/London"
"""


def load(tmp_path, alerts: str) -> Sites:
    path = tmp_path / "sites.toml"
    path.write_text(SITES + alerts)
    return Sites.load(path)


def test_every_kind_parses_with_its_defaults(tmp_path):
    rules = parse_rules(load(tmp_path, """
[[alerts]]
name = "after-hours"
kind = "trigger"
triggers = ["RESTRICTED_ACCESS"]
local_hours = "20:00-06:00"
webhook = "https://hooks.example/heatmap"

[[alerts]]
name = "crowded"
kind = "occupancy"
sites = ["HEAD_OFFICE"]
cameras = ["CAFETERIA"]
capacity_ratio = 0.9
cooldown_minutes = 30

[[alerts]]
name = "full"
kind = "occupancy"
threshold = 12

[[alerts]]
name = "offline"
kind = "device_offline"
minutes = 5

[[alerts]]
name = "quiet"
kind = "no_data"
minutes = 60
local_hours = "09:00-18:00"
"""))
    by_name = {r.name: r for r in rules}
    assert [r.kind for r in rules] == ["trigger", "occupancy", "occupancy", "device_offline", "no_data"]
    trig = by_name["after-hours"]
    assert trig.sites is None and trig.cameras is None and trig.cooldown_minutes == 10
    assert trig.triggers == ("RESTRICTED_ACCESS",) and trig.webhook == "https://hooks.example/heatmap"
    crowded = by_name["crowded"]
    assert crowded.watches("HEAD_OFFICE", "CAFETERIA") and not crowded.watches("HEAD_OFFICE", "LOBBY")
    assert not crowded.watches("LONDON")
    assert crowded.occupancy_threshold(40) == 36  # ceil(0.9 x 40)
    assert crowded.occupancy_threshold(None) is None  # a zone without capacity never alerts
    assert by_name["full"].occupancy_threshold(None) == 12
    assert by_name["offline"].minutes == 5.0


def test_all_errors_are_reported_one_line_each(tmp_path):
    with pytest.raises(SitesFileError) as info:
        parse_rules(load(tmp_path, """
[[alerts]]
name = "a"
kind = "trigger"
local_hours = "25:00-06:00"
webhook = "ftp://x"
colour = "red"

[[alerts]]
name = "a"
kind = "occupancy"
threshold = 5
capacity_ratio = 0.5

[[alerts]]
name = "b"
kind = "teleport"

[[alerts]]
name = "c"
kind = "no_data"
sites = ["NOWHERE"]

[[alerts]]
name = "d"
kind = "occupancy"
cameras = ["LOBBY"]
sites = ["HEAD_OFFICE"]
capacity_ratio = 0.8

[[alerts]]
name = "e"
kind = "device_offline"
minutes = -1
cameras = ["LOBBY"]
"""))
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid alert rules in the sites file:"
    text = "\n".join(lines)
    for needle in ('alerts[0] (a).local_hours must be "HH:MM-HH:MM"', "alerts[0] (a).webhook must be",
                   "alerts[0] (a): unknown key 'colour'", "a second rule named 'a'",
                   "exactly one of threshold, capacity_ratio", "alerts[2] (b).kind must be one of",
                   "alerts[3] (c).sites: 'NOWHERE' is not a site", "alerts[3] (c): a no_data rule needs minutes",
                   "capacity_ratio needs sites.HEAD_OFFICE.zones.LOBBY.capacity",
                   "alerts[5] (e).minutes must be a number", "cameras does not apply to device_offline"):
        assert needle in text, needle
    assert len(lines) == 12  # the heading and one line per error


def test_zone_capacity_must_be_a_positive_whole_number(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text('[sites.S.zones.Z]\ncapacity = 0\n')
    with pytest.raises(SitesFileError, match="capacity must be a whole number"):
        Sites.load(path)


def test_alerts_must_be_an_array_of_tables(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text('[alerts]\nname = "x"\n')
    with pytest.raises(SitesFileError, match=r"array of tables: \[\[alerts\]\]"):
        Sites.load(path)


@pytest.mark.parametrize(("hours", "clock", "inside"), [
    ("09:00-18:00", "08:59", False), ("09:00-18:00", "09:00", True), ("09:00-18:00", "17:59", True),
    ("09:00-18:00", "18:00", False), ("20:00-06:00", "19:59", False), ("20:00-06:00", "20:00", True),
    ("20:00-06:00", "00:30", True), ("20:00-06:00", "05:59", True), ("20:00-06:00", "06:00", False),
    ("00:00-00:00", "13:37", True),
])
def test_local_hours_wrap_midnight(tmp_path, hours, clock, inside):
    rule = parse_rules(load(tmp_path, '[[alerts]]\nname = "r"\nkind = "trigger"\nlocal_hours = "%s"\n' % hours))[0]
    hour, minute = map(int, clock.split(":"))
    moment = datetime(2026, 3, 29, hour, minute, 30, tzinfo=ZoneInfo("Europe/London"))
    assert rule.in_hours(moment) is inside


def test_window_start_of_a_wrapping_window_is_the_evening_before(tmp_path):
    rule = parse_rules(load(tmp_path, '[[alerts]]\nname = "r"\nkind = "no_data"\nminutes = 5\n'
                                      'local_hours = "20:00-06:00"\n'))[0]
    tz = ZoneInfo("Asia/Kolkata")
    assert rule.local_hours.window_start(datetime(2026, 1, 6, 2, 0, tzinfo=tz)) == datetime(2026, 1, 5, 20, 0, tzinfo=tz)
    assert rule.local_hours.window_start(datetime(2026, 1, 5, 21, 0, tzinfo=tz)) == datetime(2026, 1, 5, 20, 0, tzinfo=tz)


BAD_WEBHOOKS = [
    ("http://[::1", "is not a valid URL"),
    ("http://127.0.0.1:99999/x", "is not a valid URL (Port out of range"),
    ("http://127.0.0.1:0/x", "port must be in 1..65535"),
    ("http://exa mple.com/x", "must not hold spaces or control characters"),
    ("http://example.com/x\r\nX-Evil: 1", "must not hold spaces or control characters"),
    ("http://example.com/x\n", "must not hold spaces or control characters"),
    ("http://exa..mple.com/x", "is not a valid host name"),
    ("http://-exa.mple.com/x", "is not a valid host name"),
    ("http://169.254.169.254/latest/meta-data", "link-local or a metadata address"),
    ("http://[fe80::1]/x", "link-local or a metadata address"),
    ("http://[::ffff:169.254.169.254]/x", "link-local or a metadata address"),
    ("http://[fd00:ec2::254]/x", "link-local or a metadata address"),
    ("http://0.0.0.0:8080/x", "not a unicast address"),
    ("http://224.0.0.1/x", "not a unicast address"),
]


def _rules_text(webhooks) -> str:
    return "".join('[[alerts]]\nname = "r%d"\nkind = "trigger"\nwebhook = %s\n\n' % (i, _toml_string(url))
                   for i, url in enumerate(webhooks))


def _toml_string(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")


def test_bad_webhooks_are_each_refused_on_one_line(tmp_path):
    with pytest.raises(SitesFileError) as info:
        parse_rules(load(tmp_path, _rules_text([url for url, _ in BAD_WEBHOOKS])))
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + len(BAD_WEBHOOKS), lines
    for i, (_url, needle) in enumerate(BAD_WEBHOOKS):
        assert lines[1 + i].startswith("  alerts[%d] (r%d).webhook " % (i, i)) and needle in lines[1 + i], lines[1 + i]


def test_webhook_policy_decides_loopback_private_and_link_local(tmp_path):
    urls = ["http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://[::1]:9/hook", "http://100.64.0.7/h",
            "https://hooks.example.com/heatmap?token=x", "http://receiver_1.local:8080/h", "http://93.184.216.34/h"]
    assert len(parse_rules(load(tmp_path, _rules_text(urls)))) == len(urls)  # the default: "private"
    with pytest.raises(SitesFileError) as info:
        parse_rules(load(tmp_path, _rules_text(urls)), "public")
    refused = [line for line in str(info.value).splitlines()[1:]]
    assert len(refused) == 4 and all("private or loopback" in line for line in refused), refused
    meta = _rules_text(["http://169.254.169.254/x"])
    assert parse_rules(load(tmp_path, meta), "any")[0].webhook == "http://169.254.169.254/x"


@pytest.mark.parametrize("hours", ["09:00-18:00\n", "09:00-18:00 ", " 09:00-18:00", "9:00-18:00"])
def test_local_hours_with_anything_around_them_are_refused(tmp_path, hours):
    with pytest.raises(SitesFileError, match=r'alerts\[0\] \(r\).local_hours must be "HH:MM-HH:MM"'):
        parse_rules(load(tmp_path, '[[alerts]]\nname = "r"\nkind = "trigger"\nlocal_hours = %s\n' % _toml_string(hours)))


def test_a_trigger_name_with_a_final_newline_is_refused(tmp_path):
    with pytest.raises(SitesFileError, match=r"triggers: 'A\\n' is not a valid name"):
        parse_rules(load(tmp_path, '[[alerts]]\nname = "r"\nkind = "trigger"\ntriggers = ["A\\n"]\n'))


def test_no_data_minutes_have_a_floor_above_the_publish_interval(tmp_path):
    for minutes in ("1", "2.5"):
        with pytest.raises(SitesFileError, match=r"alerts\[0\] \(q\).minutes must be a number in 3\.\."):
            parse_rules(load(tmp_path, '[[alerts]]\nname = "q"\nkind = "no_data"\nminutes = %s\n' % minutes))
    assert parse_rules(load(tmp_path, '[[alerts]]\nname = "q"\nkind = "no_data"\nminutes = 3\n'))[0].minutes == 3


def test_max_per_minute_has_a_default_and_a_range(tmp_path):
    rules = parse_rules(load(tmp_path, '[[alerts]]\nname = "a"\nkind = "trigger"\n\n'
                                       '[[alerts]]\nname = "b"\nkind = "trigger"\nmax_per_minute = 5\n'))
    assert [r.max_per_minute for r in rules] == [20, 5]
    with pytest.raises(SitesFileError, match=r"alerts\[0\] \(a\).max_per_minute must be a whole number in 1\.\.10000"):
        parse_rules(load(tmp_path, '[[alerts]]\nname = "a"\nkind = "trigger"\nmax_per_minute = 0\n'))
