"""Benchmark of ``python -m central reconcile``: 100 sites x 30 days over 50 million raw rows.

The dataset lives outside the repository (``--data-dir``, default
``/tmp/heatmap-reconcile-bench``; its own chDB directory, not the one of
``bench/central_bench.py``) and is generated once with ``INSERT ... SELECT FROM numbers()``:
raw ``camera_events`` for 100 sites in five time zones, 10 cameras each, 30 days; edge
``slot_states`` derived from the raw rows (two revisions per slot, so argMax matters), then
drift seeded on a known fraction of slots: a missing edge slot, lost events, a wrong peak, an
extra trigger, a second device double-reporting, and edge slots with no raw events.

The timed part is the real command in a subprocess, ``python -m central reconcile
--all-sites --from 2026-01-01 --to 2026-01-30 --json``; its report must find exactly the
seeded drift. Then (unless ``--no-repair``) the same with ``--repair``, and once more, which
must find every difference pinned and nothing else; the pins are removed afterwards so the
dataset stays reusable. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from central.storage import schema  # noqa: E402
from central.storage.store import Store  # noqa: E402

SITES = 100
CAMERAS = 10
DAYS = 30
T0 = 1767225600  # 2026-01-01T00:00:00Z
# Raw events start 6 h later and end before 2026-01-30T18:15Z, so that they lie inside the
# local window 2026-01-01..2026-01-30 of every zone below (New York -5:00 .. Kathmandu +5:45).
RAW_START = T0 + 6 * 3600
RAW_SPAN = 29 * 86400
ZONES = ("UTC", "Asia/Kolkata", "America/New_York", "Europe/London", "Asia/Kathmandu")
GHOSTS = 500  # edge slots of a camera raw never heard of

RAW_SQL = """
INSERT INTO camera_events (site_name, cam_name, people_count, event_timestamp, event_triggers)
SELECT
    concat('SITE_', leftPad(toString(number % {sites:UInt32}), 3, '0')) AS site_name,
    concat('CAM_', toString(intDiv(number, {sites:UInt32}) % {cams:UInt32})) AS cam_name,
    toUInt16(cityHash64(number, 1) % 12) AS people_count,
    toDateTime({t0:UInt32} + intDiv(number, {per_tick:UInt64}) * {tick:UInt32}
               + cityHash64(number, 2) % {tick:UInt32}, 'UTC') AS event_timestamp,
    multiIf(cityHash64(number, 3) % 100 < 3, ['UNAUTHORIZED_STRANGER'],
            cityHash64(number, 3) % 100 < 4, ['RESTRICTED_ACCESS', 'RESTRICTED_ACCESS'],
            cityHash64(number, 3) % 100 < 5, ['CROWD_VIOLATION', 'UNAUTHORIZED_STRANGER'],
            CAST([], 'Array(String)')) AS event_triggers
FROM numbers({rows:UInt64})
"""

# Per slot a drift class from a hash: 0 missing on edge, 1 lost events, 2 wrong peak,
# 3 extra trigger, 4 a second device double-reporting; others agree with raw.
_CLASS = "cityHash64(site_name, cam_name, slot) % {every:UInt32}"

STATES_SQL = """
INSERT INTO slot_states (site_name, device_id, cam_name, slot, peak, events, triggers, rev, received_at)
SELECT site_name, concat(if({second:UInt8} = 1, 'jetson-', 'jetson-b-'), site_name) AS device_id,
       cam_name, slot,
       if(cls = 2, peak + 1, peak) AS peak,
       if(cls = 1, events - 1, events) AS events,
       CAST(if(cls = 3, mapAdd(trig, map('CROWD_VIOLATION', toUInt32(1))), trig),
            'Map(LowCardinality(String), UInt32)') AS triggers,
       toUInt64(1000000 + rowNumberInAllBlocks()) * 2 + {second:UInt8} AS rev,
       now64(3) AS received_at
FROM (
    SELECT site_name, cam_name,
           toDateTime(intDiv(toUnixTimestamp(event_timestamp), 900) * 900, 'UTC') AS slot,
           %(class)s AS cls, max(people_count) AS peak, toUInt32(count()) AS events,
           CAST(sumMap(event_triggers, arrayMap(t -> toUInt32(1), event_triggers)),
                'Map(LowCardinality(String), UInt32)') AS trig
    FROM camera_events
    GROUP BY site_name, cam_name, slot
)
WHERE cls != 0
  AND ({second:UInt8} = 1 OR cls = 4)
"""

# The older revision of every slot: fewer events and a lower rev, which argMax must skip.
OLD_REV_SQL = """
INSERT INTO slot_states (site_name, device_id, cam_name, slot, peak, events, triggers, rev, received_at)
SELECT site_name, device_id, cam_name, slot, peak, intDiv(events, 2), map(), rev - 1000000, received_at
FROM slot_states WHERE device_id LIKE 'jetson-%'
"""

GHOST_SQL = """
INSERT INTO slot_states (site_name, device_id, cam_name, slot, peak, events, triggers, rev, received_at)
SELECT concat('SITE_', leftPad(toString(number % {sites:UInt32}), 3, '0')), 'jetson-ghost', 'GHOST',
       toDateTime({t0:UInt32} + 86400 + (number * 7919 % (({days:UInt32} - 2) * 96)) * 900, 'UTC'),
       3, 4, map(), toUInt64(number + 1), now64(3)
FROM numbers({ghosts:UInt32})
"""

EXPECTED_SQL = """
SELECT %(class)s AS cls, count()
FROM (
    SELECT site_name, cam_name,
           toDateTime(intDiv(toUnixTimestamp(event_timestamp), 900) * 900, 'UTC') AS slot
    FROM camera_events GROUP BY site_name, cam_name, slot
)
GROUP BY cls HAVING cls < 5 ORDER BY cls
"""


def sites_toml() -> str:
    lines = ['[defaults]', 'timezone = "UTC"', '']
    for i in range(SITES):
        lines += ['[sites.SITE_%03d]' % i, 'timezone = "%s"' % ZONES[i % len(ZONES)], '']
    return "\n".join(lines)


def generate(data: Path, rows: int, every: int, log) -> dict:
    marker = data / "dataset.json"
    params = {"rows": rows, "every": every, "sites": SITES, "cams": CAMERAS, "days": DAYS, "v": 2}
    if marker.exists() and json.loads(marker.read_text()).get("params") == params:
        return json.loads(marker.read_text())
    if (data / "chdb").exists():
        subprocess.run(["rm", "-rf", str(data / "chdb")], check=True)
    data.mkdir(parents=True, exist_ok=True)
    (data / "sites.toml").write_text(sites_toml())
    store = Store("chdb://%s" % (data / "chdb"))
    try:
        schema.migrate(store)
        t = time.monotonic()
        per_tick = SITES * CAMERAS
        ticks = rows // per_tick
        tick = RAW_SPAN // ticks
        store.command(RAW_SQL, parameters={
            "sites": SITES, "cams": CAMERAS, "t0": RAW_START, "per_tick": per_tick, "tick": tick,
            "rows": rows}, settings={"max_insert_threads": 2})
        log("raw rows inserted in %.1f s" % (time.monotonic() - t))
        t = time.monotonic()
        cls = _CLASS
        for second in (1, 0):
            store.command(STATES_SQL % {"class": cls}, parameters={"every": every, "second": second})
        store.command(OLD_REV_SQL)
        store.command(GHOST_SQL, parameters={"sites": SITES, "t0": T0, "days": DAYS, "ghosts": GHOSTS})
        log("edge states inserted in %.1f s" % (time.monotonic() - t))
        counts = dict(store.query(EXPECTED_SQL % {"class": cls}, parameters={"every": every}))
        raw_rows = store.query("SELECT count() FROM camera_events")[0][0]
        states = store.query("SELECT count() FROM slot_states")[0][0]
    finally:
        store.close()
    info = {
        "params": params,
        "raw_rows": int(raw_rows),
        "state_rows": int(states),
        "expected": {
            "missing_on_edge": int(counts.get(0, 0)),
            "drift": int(sum(counts.get(k, 0) for k in (1, 2, 3, 4))),
            "missing_on_raw": GHOSTS,
        },
    }
    marker.write_text(json.dumps(info))
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/tmp/heatmap-reconcile-bench")
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--every", type=int, default=1000,
                        help="one slot in EVERY gets each kind of seeded drift")
    parser.add_argument("--no-repair", dest="repair", action="store_false",
                        help="skip the --repair run and the second run (which must find nothing)")
    args = parser.parse_args()
    data = Path(args.data_dir)

    def log(msg: str) -> None:
        print("reconcile_bench: %s" % msg, file=sys.stderr, flush=True)

    info = generate(data, args.rows, args.every, log)
    log("dataset: %d raw rows, %d state rows" % (info["raw_rows"], info["state_rows"]))
    unpin(data)  # a run cut off during --repair must not leave its pins behind
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    cmd = [sys.executable, "-m", "central", "reconcile", "--all-sites",
           "--from", "2026-01-01", "--to", "2026-01-30", "--json", "--limit", "5",
           "--clickhouse-url", "chdb://%s" % (data / "chdb"),
           "--sites-file", str(data / "sites.toml"), "--log-level", "WARNING"]

    def reconcile(*extra: str) -> tuple[dict, float, int]:
        t = time.monotonic()
        proc = subprocess.run([*cmd, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        seconds = time.monotonic() - t
        if proc.returncode not in (0, 1):
            raise SystemExit("reconcile failed (%d): %s" % (proc.returncode, proc.stderr.strip()))
        return json.loads(proc.stdout.strip().splitlines()[-1]), seconds, proc.returncode

    report, seconds, code = reconcile()
    totals = report["totals"]
    found = {"missing_on_edge": totals["missing_on_edge"], "drift": totals["drifted"],
             "missing_on_raw": totals["missing_on_raw"]}
    exact = found == info["expected"]
    if not exact:
        log("MISMATCH: expected %s, found %s" % (info["expected"], found))
    figures = {
        "name": "reconcile",
        "rows": info["raw_rows"],
        "state_rows": info["state_rows"],
        "sites": len(report["sites"]),
        "days": DAYS,
        "slots_checked": totals["checked"],
        "differences": report["differences"],
        "found_exactly_seeded": exact,
        "exit_code": code,
        "seconds": round(seconds, 2),
        "reconcile_seconds_in_process": report["seconds"],
        "rows_per_second": round(info["raw_rows"] / seconds),
    }
    if args.repair:
        try:
            repaired, repair_seconds, _ = reconcile("--repair", "--by", "bench")
            again, again_seconds, again_code = reconcile()
        finally:
            unpin(data)
        figures.update({
            "repaired": repaired["totals"]["repaired"],
            "repair_seconds": round(repair_seconds, 2),
            "second_run_pinned": again["totals"]["pinned"],
            "second_run_differences": again["differences"],
            "second_run_exit_code": again_code,
            "second_run_seconds": round(again_seconds, 2),
        })
        exact = exact and again["differences"] == 0 and again["totals"]["pinned"] == report["differences"]
    print(json.dumps(figures))
    return 0 if exact else 1


def unpin(data: Path) -> None:
    """Remove every pin, so the dataset is back to its seeded state."""
    store = Store("chdb://%s" % (data / "chdb"))
    try:
        store.command("TRUNCATE TABLE slot_repairs")
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
