"""The error root of the shared package.

Every problem found while decoding a message, parsing a topic or doing slot arithmetic is
raised as a :class:`HeatmapError` subclass, so callers on both sides catch one family.
Each error carries a short machine-readable ``code`` (used as a metrics label, so the set
is small and fixed) and, for input errors, the ``field`` that was wrong.
"""

from __future__ import annotations

__all__ = [
    "HeatmapError",
    "ProtocolError",
    "UnsupportedVersion",
    "TopicError",
    "TimeRangeError",
    "EventError",
    "ERROR_CODES",
]

#: Every ``code`` an error of this package may carry; counters are labelled with these.
ERROR_CODES = (
    "too_large",
    "bad_encoding",
    "bad_json",
    "bad_type",
    "missing",
    "unknown_field",
    "bad_value",
    "bad_name",
    "too_many",
    "out_of_range",
    "too_old",
    "unsupported_version",
    "bad_topic",
    "identity_mismatch",
)


class HeatmapError(Exception):
    """Root of the errors raised by ``shared``."""

    code = "bad_value"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        if code is not None:
            if code not in ERROR_CODES:
                raise ValueError("unknown error code %r" % (code,))
            self.code = code
        self.field = field
        self.reason = message
        super().__init__("%s: %s" % (field, message) if field else message)


class ProtocolError(HeatmapError):
    """A wire message that cannot be accepted; ``field`` names the offending part."""


class UnsupportedVersion(ProtocolError):
    """A message of a protocol version this code does not speak."""

    code = "unsupported_version"


class TopicError(HeatmapError):
    """A topic string that is not one of ours, or a name that cannot go into one."""

    code = "bad_topic"


class TimeRangeError(HeatmapError):
    """A timestamp outside the range the product accepts (or not a finite number)."""

    code = "out_of_range"


class EventError(HeatmapError):
    """A raw detection event that cannot be accepted."""
