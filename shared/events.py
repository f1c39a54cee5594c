"""One raw detection event, as the YOLO pipeline and the raw ingest API give it.

An event is a camera (zone) name, the people count the detector saw, a timestamp and the
trigger names it raised. Both the product's field names (``camera``, ``timestamp``,
``triggers``, ``site``) and the customer's ``camera_events`` column names (``cam_name``,
``event_timestamp``, ``event_triggers``, ``site_name``) are accepted. Timestamps are Unix
seconds or ISO 8601 with an offset; a missing timestamp means "now".
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Mapping, NamedTuple, Optional, Tuple

from .exceptions import EventError
from .names import check_name, check_trigger
from .slots import MAX_TIMESTAMP, MIN_TIMESTAMP

__all__ = ["Event", "MAX_EVENT_TRIGGERS", "MAX_PEOPLE", "DEFAULT_MAX_FUTURE", "parse_event", "parse_time"]

MAX_PEOPLE = 65535  # camera_events.people_count is UInt16
MAX_EVENT_TRIGGERS = 32
#: How far ahead of the receiver's clock an event may be stamped before it is refused.
DEFAULT_MAX_FUTURE = 300.0

_ALIASES = {
    "camera": "camera",
    "cam_name": "camera",
    "people_count": "people_count",
    "timestamp": "timestamp",
    "event_timestamp": "timestamp",
    "triggers": "triggers",
    "event_triggers": "triggers",
    "site": "site",
    "site_name": "site",
}


class Event(NamedTuple):
    camera: str
    people_count: int
    timestamp: float
    triggers: Tuple[str, ...]
    site: Optional[str] = None


def parse_time(value: Any, field: str = "timestamp") -> float:
    """Unix seconds from a number or an ISO 8601 string that carries an offset."""
    if isinstance(value, bool):
        raise EventError("must be Unix seconds or ISO 8601", field=field, code="bad_type")
    if isinstance(value, int):
        # Range first: float() of a 400-digit integer raises OverflowError.
        if not MIN_TIMESTAMP <= value < MAX_TIMESTAMP:
            raise EventError("%s is outside 2000-01-01..2100-01-01" % _shown(value), field=field,
                             code="out_of_range")
        ts = float(value)
    elif isinstance(value, float):
        ts = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise EventError("too long for a timestamp", field=field)
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise EventError("%r is not ISO 8601" % (value[:40],), field=field) from None
        if parsed.tzinfo is None:
            raise EventError("ISO 8601 time needs an offset (Z or +hh:mm)", field=field)
        ts = parsed.timestamp()
    else:
        raise EventError("must be Unix seconds or ISO 8601", field=field, code="bad_type")
    if not math.isfinite(ts) or not MIN_TIMESTAMP <= ts < MAX_TIMESTAMP:
        raise EventError("%s is outside 2000-01-01..2100-01-01" % _shown(value), field=field, code="out_of_range")
    return ts


def _shown(value: Any) -> str:
    """``value`` for an error message, cut short (a hostile number can have 4,000 digits)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_event(
    obj: Mapping[str, Any], now: float, max_future: float = DEFAULT_MAX_FUTURE, max_age: Optional[float] = None
) -> Event:
    """Validate one decoded JSON event; raises :class:`EventError` naming the field.

    ``max_age``: seconds an event may be older than ``now`` (None: back to 2000-01-01)."""
    if not isinstance(obj, dict):
        raise EventError("an event must be a JSON object", field="event", code="bad_type")
    fields = {}
    for key, value in obj.items():
        name = _ALIASES.get(key)
        if name is None:
            raise EventError("unknown field %r" % (str(key)[:40],), field="event", code="unknown_field")
        if name in fields:
            raise EventError("given twice (as %r and an alias)" % key, field=name, code="bad_value")
        fields[name] = value

    if "camera" not in fields:
        raise EventError("is required", field="camera", code="missing")
    camera = check_name(fields["camera"], "camera", EventError)

    count = fields.get("people_count")
    if count is None:
        raise EventError("is required", field="people_count", code="missing")
    if isinstance(count, bool) or not isinstance(count, int):
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        else:
            raise EventError("must be a whole number", field="people_count", code="bad_type")
    if not 0 <= count <= MAX_PEOPLE:
        raise EventError("must be in 0..%d" % MAX_PEOPLE, field="people_count", code="out_of_range")

    raw_ts = fields.get("timestamp")
    ts = now if raw_ts is None else parse_time(raw_ts)
    if ts > now + max_future:
        raise EventError(
            "is %.0f s ahead of this clock (limit %.0f s)" % (ts - now, max_future),
            field="timestamp",
            code="out_of_range",
        )
    if max_age is not None and ts < now - max_age:
        raise EventError(
            "is %.0f days before this clock (limit %g days)" % ((now - ts) / 86400, max_age / 86400),
            field="timestamp",
            code="too_old",
        )

    raw_triggers = fields.get("triggers")
    if raw_triggers is None:
        triggers: Tuple[str, ...] = ()
    elif isinstance(raw_triggers, list):
        if len(raw_triggers) > MAX_EVENT_TRIGGERS:
            raise EventError("more than %d triggers" % MAX_EVENT_TRIGGERS, field="triggers", code="too_many")
        triggers = tuple(check_trigger(t, "triggers", EventError) for t in raw_triggers)
    else:
        raise EventError("must be an array of names", field="triggers", code="bad_type")

    site = fields.get("site")
    if site is not None:
        check_name(site, "site", EventError)
    return Event(camera, count, ts, triggers, site)
