"""Rules for the names of sites, devices, cameras (zones) and triggers.

Names travel in MQTT topics, SQL parameters, JSON keys and HTML, so one conservative rule
holds everywhere: 1 to 64 characters of ASCII letters, digits, ``_``, ``-`` and ``.``,
starting with a letter or digit. That keeps MQTT wildcards (``+`` ``#``), topic separators,
``$``-prefixed system topics, whitespace and markup out by construction.
"""

from __future__ import annotations

import re

from .exceptions import HeatmapError

__all__ = ["NAME_MAX_LENGTH", "RESERVED_TRIGGERS", "check_name", "check_trigger", "is_valid_name"]

NAME_MAX_LENGTH = 64
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")

#: Trigger names that would collide with keys of the dashboard's ``critical_events``.
RESERVED_TRIGGERS = frozenset({"total_events"})


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and _NAME_RE.match(value) is not None


def check_name(value: object, field: str, error: type[HeatmapError] = HeatmapError) -> str:
    """Return ``value`` if it is a valid name, else raise ``error`` naming ``field``."""
    if not isinstance(value, str):
        raise error("must be a string", field=field, code="bad_type")
    if _NAME_RE.match(value) is None:
        shown = value if len(value) <= NAME_MAX_LENGTH else value[:NAME_MAX_LENGTH] + "..."
        raise error(
            "%r is not a valid name (1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit)"
            % (shown,),
            field=field,
            code="bad_name",
        )
    return value


def check_trigger(value: object, field: str, error: type[HeatmapError] = HeatmapError) -> str:
    check_name(value, field, error)
    if value in RESERVED_TRIGGERS:
        raise error("%r is reserved" % (value,), field=field, code="bad_name")
    return value  # type: ignore[return-value]
