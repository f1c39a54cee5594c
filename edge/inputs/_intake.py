"""Decoded JSON events into the slot buffers: the one schema every input shares.

Each input (datagram, local MQTT) decodes its own framing, then hands each JSON value to
:class:`Intake`, so an event is accepted or refused the same way whichever input, and
whichever field spelling (``triggers`` or ``event_triggers``), carried it. A refusal is
counted under the reason of the field at fault (``bad_camera``, ``bad_count``,
``bad_timestamp``, ``bad_triggers``, also for a field given under both spellings;
``bad_event`` for a value that is not an event at all, an unknown field or a bad site name;
``wrong_site``), the same reasons the buffers' own checks use, so the product spelling's
fast path and the checked path agree.
"""

from __future__ import annotations

from typing import Any

from shared.events import parse_event
from shared.exceptions import EventError

from .contracts import InputHost

__all__ = ["Intake", "refusal_reason"]

#: The product's own field names: such an event goes straight to the buffers' record(),
#: which checks every value itself (the hot path of the datagram input).
_FAST_KEYS = frozenset(("camera", "people_count", "timestamp", "triggers"))
_REASONS = {"camera": "bad_camera", "people_count": "bad_count", "timestamp": "bad_timestamp",
            "triggers": "bad_triggers"}
#: parse_event leaves the future limit to the buffers, which count it as ``future``.
_NO_FUTURE_LIMIT = float("inf")


def refusal_reason(exc: EventError) -> str:
    """The refusal counter of an event refused by shared/events.py."""
    return _REASONS.get(exc.field or "", "bad_event")


class Intake:
    """Counts decoded JSON values as events for ``agent``; ``label`` names the input in logs."""

    def __init__(self, agent: InputHost, label: str) -> None:
        self.label = label
        self._record = agent.record
        self._refusals = agent.refusals
        self._site = agent.config.site
        self._buffers = agent.buffers  # its clock is "now" for an event without a timestamp

    def take(self, obj: Any) -> bool:
        """Count one decoded value as an event; False if it was refused (and counted)."""
        if obj.__class__ is dict and obj.keys() <= _FAST_KEYS:
            triggers = obj.get("triggers")
            # Only an array (or nothing) takes the fast path: anything else is refused by
            # parse_event exactly as it is under the name event_triggers.
            if triggers is None or triggers.__class__ is list:
                return bool(self._record(obj.get("camera"), obj.get("people_count"), obj.get("timestamp"),
                                         triggers or ()))
        return self.take_checked(obj)

    def take_checked(self, obj: Any) -> bool:
        try:
            event = parse_event(obj, self._buffers.clock(), _NO_FUTURE_LIMIT)
        except EventError as exc:
            self._refusals.add(refusal_reason(exc), "%s: %s" % (self.label, exc))
            return False
        if event.site is not None and event.site != self._site:
            self._refusals.add("wrong_site", "%s: event for site %r, this agent serves %r"
                               % (self.label, event.site, self._site))
            return False
        return bool(self._record(event.camera, event.people_count, event.timestamp, event.triggers))

    def refuse(self, reason: str, detail: str) -> None:
        self._refusals.add(reason, "%s: %s" % (self.label, detail))
