"""What ``python -m central reconcile`` prints: a readable table, or one JSON document.

Both carry the same facts: per site its window and counts (slots checked, matching,
drifted, missing on edge, missing on raw, pinned, open, repaired now) with event totals
on both sides, then the worst differences, each with edge and raw values side by side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from shared.slots import SLOT_SECONDS

from .query import Comparison, SiteWindow, SlotDiff

__all__ = ["render_table", "render_json", "diff_json", "site_json"]

_COLUMNS = (
    ("site", 14), ("window (local)", 23), ("checked", 8), ("match", 8), ("drift", 6),
    ("no edge", 8), ("no raw", 7), ("pinned", 7), ("open", 5), ("repaired", 8),
)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(ts: int, zone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def site_json(summary: Any) -> dict:
    w: SiteWindow = summary.window
    c = summary.counts
    return {
        "site_name": w.site_name,
        "timezone": w.timezone,
        "from": w.first_day,
        "to": w.last_day,
        "start": _iso(w.start),
        "end": _iso(w.end),
        "slots": {
            "checked": summary.checked,
            "matching": c["match"],
            "drifted": c["drift"],
            "missing_on_edge": c["missing_on_edge"],
            "missing_on_raw": c["missing_on_raw"],
            "pinned": c["pinned"],
            "open": c["open"],
            "repaired": summary.repaired,
        },
        "events": {"edge": summary.edge_events, "raw": summary.raw_events},
        "consistent": summary.inconsistent == 0,
    }


def diff_json(d: SlotDiff, zone: str, repaired: bool) -> dict:
    return {
        "site_name": d.site_name,
        "cam_name": d.cam_name,
        "slot": _iso(d.slot),
        "local": _local(d.slot, zone),
        "kind": d.kind,
        "reason": d.reason(),
        "edge": {"peak": d.edge_peak, "events": d.edge_events, "triggers": d.edge_triggers,
                 "devices": d.edge_devices, "rev": d.edge_rev},
        "raw": {"peak": d.raw_peak, "events": d.raw_events, "triggers": d.raw_triggers},
        "diff": {"events": d.edge_events - d.raw_events, "peak": d.edge_peak - d.raw_peak,
                 "triggers": d.trigger_diff},
        "repaired": repaired,
    }


def _totals(comparison: Comparison) -> dict:
    keys = ("checked", "matching", "drifted", "missing_on_edge", "missing_on_raw", "pinned",
            "open", "repaired")
    total = dict.fromkeys(keys, 0)
    for summary in comparison.sites.values():
        for key, value in site_json(summary)["slots"].items():
            total[key] += value
    return total


def render_json(comparison: Comparison, windows: Sequence[SiteWindow], opts: Any,
                run_id: str, seconds: float, exit_code: int) -> str:
    zones = {w.site_name: w.timezone for w in windows}
    repaired = opts.repair
    doc = {
        "run_id": run_id,
        "repair": bool(opts.repair),
        "repaired_by": opts.repaired_by if opts.repair else None,
        "grace_seconds": opts.grace,
        "closed_before": _iso(max(0, comparison.closed_before) + SLOT_SECONDS),
        "consistent": comparison.inconsistent == 0,
        "exit_code": exit_code,
        "seconds": round(seconds, 3),
        "totals": _totals(comparison),
        "sites": [site_json(comparison.sites[w.site_name]) for w in windows],
        "worst": [diff_json(d, zones[d.site_name], repaired) for d in comparison.worst(opts.limit)],
        "differences": len(comparison.diffs),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=False)


def _row(values: Sequence[Any]) -> str:
    return "  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w)
                     for i, ((_, w), v) in enumerate(zip(_COLUMNS, values, strict=True))).rstrip()


def render_table(comparison: Comparison, windows: Sequence[SiteWindow], opts: Any,
                 run_id: str, seconds: float) -> str:
    lines = [_row([name for name, _ in _COLUMNS])]
    for w in windows:
        s = site_json(comparison.sites[w.site_name])["slots"]
        span = w.first_day if w.first_day == w.last_day else "%s..%s" % (w.first_day, w.last_day[5:])
        lines.append(_row([
            w.site_name, span, s["checked"], s["matching"], s["drifted"], s["missing_on_edge"],
            s["missing_on_raw"], s["pinned"], s["open"], s["repaired"],
        ]))
    total = _totals(comparison)
    bad = total["drifted"] + total["missing_on_edge"] + total["missing_on_raw"]
    lines.append("")
    if bad:
        verb = "pinned to raw" if opts.repair else "found (run with --repair to pin them to raw)"
        lines.append("%d inconsistent slot(s) %s; %d site(s), %d slot(s) checked in %.1f s, run %s"
                     % (bad, verb, len(windows), total["checked"], seconds, run_id))
    else:
        lines.append("consistent: %d site(s), %d slot(s) checked in %.1f s (%d pinned, %d open)"
                     % (len(windows), total["checked"], seconds, total["pinned"], total["open"]))
    worst = comparison.worst(opts.limit)
    if worst:
        zones = {w.site_name: w.timezone for w in windows}
        lines.append("")
        lines.append("worst differences (edge vs raw):")
        head = "%-14s %-18s %-16s %-15s %13s %11s  %s" % (
            "site", "camera", "slot (local)", "kind", "events e/r", "peak e/r", "details")
        lines.append(head)
        for d in worst:
            lines.append("%-14s %-18s %-16s %-15s %13s %11s  %s" % (
                d.site_name, d.cam_name, _local(d.slot, zones[d.site_name]), d.kind,
                "%d/%d" % (d.edge_events, d.raw_events), "%d/%d" % (d.edge_peak, d.raw_peak),
                d.reason(),
            ))
        if len(comparison.diffs) > len(worst):
            lines.append("... and %d more (--limit N or --json)" % (len(comparison.diffs) - len(worst)))
    return "\n".join(lines) + "\n"
