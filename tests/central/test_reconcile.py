"""python -m central reconcile against the real ClickHouse engine (chDB, or the server of
HEATMAP_TEST_CLICKHOUSE_URL: tests/central/conftest.py).

Every kind of drift is seeded into real tables, reported exactly, repaired, and found
pinned by a second run; the dashboard (real aiohttp app) keeps serving raw for a repaired
slot whatever the edge sends later; windows follow each site's time zone; exit codes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pwd
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from central.config import Config
from central.reconcile import EXIT_CONSISTENT, EXIT_DRIFT, EXIT_ERROR, add_arguments, run
from central.storage import schema
from central.storage.store import Store
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]

# 2026-01-05 local day of a Kolkata site (+5:30) is [2026-01-04T18:30Z, 2026-01-05T18:30Z).
DAY_START = 1767551400  # 2026-01-04T18:30:00Z
T = 1767600000  # 2026-01-05T08:00:00Z (13:30 in Kolkata), a slot start
NOW = T + 30 * 86400  # every slot of the day is long closed

SITES_TOML = """
[defaults]
timezone = "UTC"

[sites.HQ]
display_name = "Head office"
timezone = "Asia/Kolkata"

[sites.LONDON]
timezone = "Europe/London"
"""

RAW_COLS = ["site_name", "cam_name", "people_count", "event_timestamp", "event_triggers"]
STATE_COLS = ["site_name", "device_id", "cam_name", "slot", "peak", "events", "triggers", "rev",
              "received_at"]


@pytest.fixture
def env(tmp_path: Path, clickhouse_url: str):
    """A migrated store, a sites file, and the flags that point the CLI at them."""
    sites = tmp_path / "sites.toml"
    sites.write_text(SITES_TOML)
    store = Store(clickhouse_url)
    schema.migrate(store)
    flags = ["--clickhouse-url", clickhouse_url, "--sites-file", str(sites)]
    yield store, flags
    store.close()


def raw(store: Store, site: str, cam: str, ts: int, people: int, triggers=()) -> None:
    store.insert("camera_events", [[site, cam, people, ts, list(triggers)]], RAW_COLS)


def state(store: Store, site: str, device: str, cam: str, slot: int, peak: int, events: int,
          triggers: dict | None = None, rev: int = 1) -> None:
    store.insert("slot_states", [[site, device, cam, datetime.fromtimestamp(slot, timezone.utc), peak,
                                  events, triggers or {}, rev, datetime.now(timezone.utc)]], STATE_COLS)


def reconcile(flags: list[str], *extra: str, now: float = NOW) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([*extra, *flags])
    out, err = io.StringIO(), io.StringIO()
    code = run(args, now=now, stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


def report(flags: list[str], *extra: str, now: float = NOW) -> tuple[int, dict]:
    code, out, err = reconcile(flags, "--json", "--limit", "100", *extra, now=now)
    assert out, err
    return code, json.loads(out)


def seed_every_kind(store: Store) -> dict[str, int]:
    """One slot per case on camera(s) of HQ; returns slot per case name."""
    s = {name: T + i * 900 for i, name in enumerate(
        ["match", "missing_edge", "missing_raw", "lost", "peak", "trigger", "double", "revs"])}
    # Agrees: two events, a trigger given twice in one event counts twice (ARRAY JOIN).
    raw(store, "HQ", "EMPLOYEE_AREA", s["match"] + 5, 3, ["UNAUTHORIZED_STRANGER", "UNAUTHORIZED_STRANGER"])
    raw(store, "HQ", "EMPLOYEE_AREA", s["match"] + 60, 5)
    state(store, "HQ", "jetson-1", "EMPLOYEE_AREA", s["match"], 5, 2, {"UNAUTHORIZED_STRANGER": 2})
    # Raw only: the agent never sent this slot.
    raw(store, "HQ", "EMPLOYEE_AREA", s["missing_edge"] + 1, 4)
    # Edge only: raw has nothing in this slot.
    state(store, "HQ", "jetson-1", "EMPLOYEE_AREA", s["missing_raw"], 2, 3)
    # Lost events: raw 3, edge 2.
    for i in range(3):
        raw(store, "HQ", "EMPLOYEE_AREA", s["lost"] + i, 1)
    state(store, "HQ", "jetson-1", "EMPLOYEE_AREA", s["lost"], 1, 2)
    # Wrong peak.
    raw(store, "HQ", "EMPLOYEE_AREA", s["peak"] + 1, 6)
    state(store, "HQ", "jetson-1", "EMPLOYEE_AREA", s["peak"], 9, 1)
    # Extra trigger on the edge.
    raw(store, "HQ", "EMPLOYEE_AREA", s["trigger"] + 1, 2, ["RESTRICTED_ACCESS"])
    state(store, "HQ", "jetson-1", "EMPLOYEE_AREA", s["trigger"], 2, 1,
          {"RESTRICTED_ACCESS": 1, "CROWD_VIOLATION": 1})
    # Two devices both holding CAFETERIA's slot: the sum doubles events and triggers.
    raw(store, "HQ", "CAFETERIA", s["double"] + 1, 2, ["CROWD_VIOLATION"])
    raw(store, "HQ", "CAFETERIA", s["double"] + 2, 1)
    state(store, "HQ", "jetson-1", "CAFETERIA", s["double"], 2, 2, {"CROWD_VIOLATION": 1}, rev=7)
    state(store, "HQ", "jetson-2", "CAFETERIA", s["double"], 2, 2, {"CROWD_VIOLATION": 1}, rev=3)
    # Agrees only at the highest revision (an older, larger one must be ignored).
    raw(store, "HQ", "CAFETERIA", s["revs"] + 1, 1)
    state(store, "HQ", "jetson-1", "CAFETERIA", s["revs"], 9, 9, {"CROWD_VIOLATION": 4}, rev=10)
    state(store, "HQ", "jetson-1", "CAFETERIA", s["revs"], 1, 1, rev=11)
    return s


def test_every_kind_of_drift_is_reported_exactly_then_repaired_once(env):
    store, flags = env
    slots = seed_every_kind(store)
    code, doc = report(flags, "--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05")
    assert code == EXIT_DRIFT
    (site,) = doc["sites"]
    assert site["start"] == "2026-01-04T18:30:00Z" and site["end"] == "2026-01-05T18:30:00Z"
    assert site["slots"] == {"checked": 8, "matching": 2, "drifted": 4, "missing_on_edge": 1,
                             "missing_on_raw": 1, "pinned": 0, "open": 0, "repaired": 0}
    assert site["events"] == {"edge": 2 + 3 + 2 + 1 + 1 + 4 + 1, "raw": 2 + 1 + 3 + 1 + 1 + 2 + 1}
    by_slot = {d["slot"]: d for d in doc["worst"]}
    iso = {k: datetime.fromtimestamp(v, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in slots.items()}
    assert set(by_slot) == {iso[k] for k in ("missing_edge", "missing_raw", "lost", "peak", "trigger", "double")}
    assert by_slot[iso["missing_edge"]]["kind"] == "missing_on_edge"
    assert by_slot[iso["missing_edge"]]["raw"] == {"peak": 4, "events": 1, "triggers": {}}
    assert by_slot[iso["missing_raw"]]["kind"] == "missing_on_raw"
    assert by_slot[iso["missing_raw"]]["edge"]["events"] == 3
    lost = by_slot[iso["lost"]]
    assert (lost["kind"], lost["diff"], lost["reason"]) == (
        "drift", {"events": -1, "peak": 0, "triggers": {}}, "events 2 != 3")
    assert by_slot[iso["peak"]]["diff"] == {"events": 0, "peak": 3, "triggers": {}}
    assert by_slot[iso["trigger"]]["diff"] == {"events": 0, "peak": 0, "triggers": {"CROWD_VIOLATION": 1}}
    double = by_slot[iso["double"]]
    assert double["cam_name"] == "CAFETERIA" and double["edge"]["devices"] == 2
    assert double["edge"]["rev"] == 7
    assert double["diff"] == {"events": 2, "peak": 0, "triggers": {"CROWD_VIOLATION": 1}}
    assert double["local"] == "2026-01-05 15:00"  # 09:30Z in Kolkata

    code, doc = report(flags, "--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05",
                       "--repair", "--by", "alice")
    assert code == EXIT_DRIFT  # drift was found (and pinned)
    assert doc["sites"][0]["slots"]["repaired"] == 6
    rows = store.query(
        "SELECT cam_name, toUInt32(toUnixTimestamp(slot)), run_id, repaired_by, reason, edge_peak, "
        "edge_events, edge_triggers, edge_rev, raw_peak, raw_events, raw_triggers "
        "FROM slot_repairs FINAL ORDER BY slot")
    assert len(rows) == 6 and {r[2] for r in rows} == {doc["run_id"]} and {r[3] for r in rows} == {"alice"}
    pinned = {r[1]: r for r in rows}
    assert pinned[slots["double"]][4:] == (
        "events 4 != 2; triggers CROWD_VIOLATION +1; 2 devices", 2, 4, {"CROWD_VIOLATION": 2}, 7, 2, 2,
        {"CROWD_VIOLATION": 1})
    assert pinned[slots["missing_edge"]][4:8] == ("missing on edge: raw has 1 events", 0, 0, {})

    code, doc = report(flags, "--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05", "--repair")
    assert code == EXIT_CONSISTENT
    assert doc["sites"][0]["slots"] == {"checked": 8, "matching": 2, "drifted": 0, "missing_on_edge": 0,
                                        "missing_on_raw": 0, "pinned": 6, "open": 0, "repaired": 0}
    assert doc["worst"] == []
    assert store.query("SELECT count() FROM slot_repairs")[0][0] == 6


def test_table_output_names_the_site_and_the_worst_difference(env):
    store, flags = env
    seed_every_kind(store)
    code, out, _ = reconcile(flags, "--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05",
                             "--limit", "2")
    assert code == EXIT_DRIFT
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["site", "window", "(local)"]
    assert lines[1].split() == ["HQ", "2026-01-05", "8", "2", "4", "1", "1", "0", "0", "0"]
    assert "6 inconsistent slot(s) found" in out
    # Worst first: the missing slots (score 5: events and peak off), ties by camera and slot.
    head = lines.index("worst differences (edge vs raw):")
    assert lines[head + 2].split()[:5] == ["HQ", "EMPLOYEE_AREA", "2026-01-05", "13:45", "missing_on_edge"]
    assert lines[head + 3].split()[:5] == ["HQ", "EMPLOYEE_AREA", "2026-01-05", "14:00", "missing_on_raw"]
    assert "... and 4 more" in out


@pytest.mark.clock
def test_site_time_zones_bound_the_dates(env):
    store, flags = env
    # HQ (Kolkata): 18:15Z is Jan 4 23:45 local, 18:30Z is Jan 5 00:00 local; likewise at the end.
    for ts in (DAY_START - 900, DAY_START, DAY_START + 86400 - 900, DAY_START + 86400):
        raw(store, "HQ", "GATE", ts + 1, 1)
    # A site seen only in data gets the default zone (UTC).
    for ts in (1767571200 - 900, 1767571200, 1767657600 - 900, 1767657600):  # around 2026-01-05Z
        raw(store, "DEPOT", "GATE", ts + 1, 1)
    code, doc = report(flags, "--all-sites", "--from", "2026-01-05", "--to", "2026-01-05")
    assert code == EXIT_DRIFT
    got = {(d["site_name"], d["local"]) for d in doc["worst"]}
    assert got == {("HQ", "2026-01-05 00:00"), ("HQ", "2026-01-05 23:45"),
                   ("DEPOT", "2026-01-05 00:00"), ("DEPOT", "2026-01-05 23:45")}
    sites = {s["site_name"]: s for s in doc["sites"]}
    # Configured sites are checked even without data; LONDON is in its own zone.
    assert set(sites) == {"DEPOT", "HQ", "LONDON"}
    assert sites["LONDON"]["slots"]["checked"] == 0 and sites["LONDON"]["consistent"]
    assert (sites["HQ"]["timezone"], sites["DEPOT"]["timezone"]) == ("Asia/Kolkata", "UTC")
    # Two days from --days: Jan 4 and 5 local, so HQ's 23:45 of Jan 4 joins in.
    code, doc = report(flags, "--site", "HQ", "--to", "2026-01-05", "--days", "2")
    assert doc["sites"][0]["from"] == "2026-01-04" and doc["sites"][0]["slots"]["missing_on_edge"] == 3


@pytest.mark.clock
def test_open_slots_are_left_to_the_agents(env):
    store, flags = env
    raw(store, "HQ", "GATE", T + 1, 3)
    state(store, "HQ", "jetson-1", "GATE", T, 3, 2)
    args = ("--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05", "--repair")
    # One hour after the slot ended: within the default 2 h grace.
    code, doc = report(flags, *args, now=T + 900 + 3600)
    assert code == EXIT_CONSISTENT
    assert doc["sites"][0]["slots"]["open"] == 1 and doc["sites"][0]["slots"]["repaired"] == 0
    assert store.query("SELECT count() FROM slot_repairs")[0][0] == 0
    code, doc = report(flags, *args, "--grace", "1800", now=T + 900 + 3600)
    assert code == EXIT_DRIFT and doc["sites"][0]["slots"]["repaired"] == 1
    # Without --by the audit names the OS account that ran it.
    assert store.query("SELECT repaired_by FROM slot_repairs") == [(pwd.getpwuid(os.getuid()).pw_name,)]


@pytest.mark.clock
async def test_dashboard_honours_repairs_against_later_edge_updates(env, tmp_path, aiohttp_client):
    pytest.importorskip("central.app", reason="the dashboard app is not in this tree")
    from central.app import create_app

    store, flags = env
    raw(store, "HQ", "GATE", T + 1, 3, ["UNAUTHORIZED_STRANGER"])
    raw(store, "HQ", "GATE", T + 2, 4)
    state(store, "HQ", "jetson-1", "GATE", T, 9, 5, {"UNAUTHORIZED_STRANGER": 3}, rev=5)
    config = Config(data_dir=str(tmp_path), clickhouse_url=store.url,
                    sites_file=flags[-1], cache_ttl=0, cache_ttl_past=0)

    async def dashboard() -> dict:
        resp = await client.get("/api/v1/dashboard/HQ?date=2026-01-05")
        assert resp.status == 200
        return await resp.json()

    client = await aiohttp_client(create_app(config, store))
    before = await dashboard()
    assert before["zones"]["GATE"] == {"peak": 9, "events": 5, "intensity": "high"}  # the edge's word

    code, _, err = reconcile(flags, "--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05", "--repair")
    assert code == EXIT_DRIFT, err
    repaired = await dashboard()
    assert repaired["zones"]["GATE"] == {"peak": 4, "events": 2, "intensity": "medium"}
    assert repaired["critical_events"] == {"UNAUTHORIZED_STRANGER": 1, "total_events": 2}
    assert repaired["meta"]["slots"]["repaired"] == 1

    # The agent sends the slot again, later and bigger: the pin holds, nothing doubles.
    state(store, "HQ", "jetson-1", "GATE", T, 11, 8, {"UNAUTHORIZED_STRANGER": 6}, rev=6)
    state(store, "HQ", "jetson-9", "GATE", T, 2, 2, rev=1)
    after = await dashboard()
    for key in ("zones", "hourly", "critical_events", "zone_hourly"):
        assert after[key] == repaired[key]
    code, doc = report(flags, "--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-05")
    assert code == EXIT_CONSISTENT and doc["sites"][0]["slots"]["pinned"] == 1


def test_unix_seconds_event_timestamp(tmp_path, clickhouse_url):
    store = Store(clickhouse_url)
    try:
        store.command("CREATE TABLE camera_events (site_name LowCardinality(String), cam_name "
                      "LowCardinality(String), people_count UInt16, event_timestamp UInt32, "
                      "event_triggers Array(String)) ENGINE = MergeTree ORDER BY (site_name, event_timestamp)")
        schema.migrate(store)
        raw(store, "SHOP", "TILL", T + 10, 2, ["CROWD_VIOLATION"])
        raw(store, "SHOP", "TILL", T + 900, 1)
        state(store, "SHOP", "d", "TILL", T, 2, 1, {"CROWD_VIOLATION": 1})
        flags = ["--clickhouse-url", clickhouse_url]
        code, doc = report(flags, "--site", "SHOP", "--from", "2026-01-05", "--to", "2026-01-05")
    finally:
        store.close()
    assert code == EXIT_DRIFT
    assert doc["sites"][0]["slots"]["matching"] == 1 and doc["sites"][0]["slots"]["missing_on_edge"] == 1


@pytest.mark.parametrize("extra, message", [
    ((), "give --site SITE (repeatable) or --all-sites"),
    (("--site", "HQ", "--all-sites"), "give --site SITE (repeatable) or --all-sites"),
    (("--site", "bad site"), "is not a valid site name"),
    (("--site", "HQ", "--from", "2026-13-01"), "is not a date"),
    (("--site", "HQ", "--from", "2026-01-05", "--to", "2026-01-04"), "is after --to"),
    (("--site", "HQ", "--from", "2026-01-05", "--days", "3"), "exclude each other"),
    (("--site", "HQ", "--grace", "-1"), "--grace"),
    (("--site", "NOWHERE"), "unknown site NOWHERE"),
    (("--site", "HQ", "--to", "9999-12-31", "--days", "1"), "--to 9999-12-31 is outside 2000-01-01..2099-12-31"),
    (("--site", "HQ", "--from", "1999-12-31"), "--from 1999-12-31 is outside"),
    (("--site", "HQ", "--to", "2000-01-02", "--days", "5"), "before 2000-01-01"),
])
def test_bad_arguments_exit_2_with_one_line(env, extra, message):
    _, flags = env
    code, out, err = reconcile(flags, *extra)
    assert code == EXIT_ERROR and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_an_unexpected_failure_exits_2_with_one_line(env, monkeypatch):
    import central.reconcile.cli

    def broken(*args, **kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(central.reconcile.cli, "compare", broken)
    _, flags = env
    code, out, err = reconcile(flags, "--site", "HQ")
    assert code == EXIT_ERROR and out == ""
    assert err.strip().splitlines() == ["python -m central reconcile: internal error: OverflowError: date value out of range"]


def test_bad_flags_exit_2_with_one_line_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "central", "reconcile", "--site", "HQ", "--days", "many"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")})
    assert proc.returncode == EXIT_ERROR and proc.stdout == ""
    assert proc.stderr.splitlines() == ["python -m central reconcile: argument --days: invalid int value: 'many' (see --help)"]


def test_storage_down_exits_2_with_one_line():
    flags = ["--clickhouse-url", "http://127.0.0.1:%d/heatmap" % free_port()]
    code, out, err = reconcile(flags, "--site", "HQ")
    assert code == EXIT_ERROR and out == ""
    assert len(err.strip().splitlines()) == 1 and "ClickHouse unavailable" in err


def test_uint16_timestamp_is_refused(clickhouse_url):
    store = Store(clickhouse_url)
    try:
        store.command("CREATE TABLE camera_events (site_name LowCardinality(String), cam_name String, "
                      "people_count UInt16, event_timestamp UInt16, event_triggers Array(String)) "
                      "ENGINE = MergeTree ORDER BY site_name")
        schema.migrate(store)
        code, _, err = reconcile(["--clickhouse-url", clickhouse_url], "--site", "HQ")
    finally:
        store.close()
    assert code == EXIT_ERROR and "UInt16" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_real_subprocess_with_progress(tmp_path):
    # chDB allows one process per data directory and this test process keeps its engine
    # open for the other tests, so a child seeds a directory of its own first.
    sites = tmp_path / "sites.toml"
    sites.write_text(SITES_TOML)
    url = "chdb://%s" % (tmp_path / "chdb")
    flags = ["--clickhouse-url", url, "--sites-file", str(sites)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    seed = ("import sys; from central.storage import schema; from central.storage.store import Store; "
            "from tests.central.test_reconcile import seed_every_kind; "
            "s = Store(sys.argv[1]); schema.migrate(s); seed_every_kind(s); s.close()")
    subprocess.run([sys.executable, "-c", seed, url], cwd=ROOT, env=environ, check=True, timeout=120)
    base = [sys.executable, "-m", "central", "reconcile", "--site", "HQ", "--from", "2025-12-20",
            "--to", "2026-01-05", "--log-level", "WARNING", *flags]
    proc = subprocess.run([*base, "--progress"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_DRIFT, proc.stderr
    assert proc.stdout.splitlines()[1].split()[:3] == ["HQ", "2025-12-20..01-05", "8"]
    progress = [line for line in proc.stderr.splitlines() if line.startswith("reconcile [")]
    assert len(progress) == 3 and progress[-1].startswith("reconcile [" + "#" * 30 + "] 3/3 chunks")
    # Without --progress and with stderr not a terminal: nothing on stderr.
    quiet = subprocess.run(base, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == EXIT_DRIFT and quiet.stderr == ""
