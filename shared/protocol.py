"""The versioned wire protocol between edge agents and central.

Four message types travel as JSON objects, optionally zlib-compressed (a payload starting
with the zlib header byte ``0x78`` is inflated first; JSON never starts with it):

* ``state``  edge -> central: absolute counters of (camera, slot) pairs with a revision that
  only grows, so central keeps the highest revision and duplicates never double count;
* ``ack``    central -> edge: the (camera, slot, rev) triples central has committed;
* ``status`` edge -> central, retained: availability (online, offline, stopped);
* ``stats``  edge -> central: periodic agent statistics (name -> number).

Decoding is strict: sizes, counts, names and ranges are checked, unknown fields and
versions are refused, and every failure is a :class:`ProtocolError` naming the field.
``docs/protocol.md`` documents the format with examples.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Tuple, Union

from .exceptions import ProtocolError, UnsupportedVersion
from .names import check_name, check_trigger
from .slots import MAX_TIMESTAMP, MIN_TIMESTAMP, SLOT_SECONDS
from .topics import Topic

__all__ = [
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "MAX_PAYLOAD_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_STATES",
    "MAX_TRIGGERS",
    "MAX_STATS",
    "MAX_PEAK",
    "MAX_COUNT",
    "MAX_REV",
    "STATUS_STATES",
    "SlotState",
    "StateBatch",
    "AckItem",
    "Ack",
    "Status",
    "Stats",
    "Message",
    "encode",
    "decode",
    "check_identity",
]

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

MAX_PAYLOAD_BYTES = 256 * 1024  # as received, compressed or not
MAX_DECODED_BYTES = 1024 * 1024  # after inflating; bounds a compression bomb
MAX_STATES = 2000  # states in one message; acks likewise
MAX_TRIGGERS = 64  # trigger names in one state
MAX_STATS = 64
MAX_PEAK = 65535  # people_count is UInt16 in camera_events
MAX_COUNT = 2**32 - 1
MAX_REV = 2**53 - 1  # exact in a JSON double
MAX_SEQ = 2**53 - 1
STATUS_STATES = ("online", "offline", "stopped")

_ZLIB_FIRST_BYTE = 0x78


@dataclass(frozen=True)
class SlotState:
    """Absolute counters of one camera in one 15-minute slot, at revision ``rev``."""

    camera: str
    slot: int
    peak: int
    events: int
    rev: int
    triggers: Mapping[str, int] = field(default_factory=dict)

    def key(self) -> Tuple[str, int]:
        return (self.camera, self.slot)

    def validate(self, where: str = "state") -> SlotState:
        check_name(self.camera, where + ".camera", ProtocolError)
        _check_slot(self.slot, where + ".slot")
        _check_int(self.peak, where + ".peak", 0, MAX_PEAK)
        _check_int(self.events, where + ".events", 0, MAX_COUNT)
        _check_int(self.rev, where + ".rev", 1, MAX_REV)
        if not isinstance(self.triggers, Mapping):
            raise ProtocolError("must be an object", field=where + ".triggers", code="bad_type")
        if len(self.triggers) > MAX_TRIGGERS:
            raise ProtocolError(
                "more than %d triggers" % MAX_TRIGGERS, field=where + ".triggers", code="too_many"
            )
        for name, count in self.triggers.items():
            check_trigger(name, where + ".triggers", ProtocolError)
            _check_int(count, "%s.triggers.%s" % (where, name), 0, MAX_COUNT)
        if self.events == 0 and (self.peak or any(self.triggers.values())):
            raise ProtocolError(
                "a slot with no events has no peak or triggers", field=where + ".events"
            )
        return self

    def to_json(self) -> Dict[str, Any]:
        return {
            "camera": self.camera,
            "slot": self.slot,
            "peak": self.peak,
            "events": self.events,
            "triggers": dict(self.triggers),
            "rev": self.rev,
        }


@dataclass(frozen=True)
class StateBatch:
    site: str
    device: str
    seq: int
    sent_at: float
    states: Tuple[SlotState, ...]
    type = "state"


@dataclass(frozen=True)
class AckItem:
    camera: str
    slot: int
    rev: int


@dataclass(frozen=True)
class Ack:
    site: str
    device: str
    acks: Tuple[AckItem, ...]
    type = "ack"


@dataclass(frozen=True)
class Status:
    site: str
    device: str
    state: str
    ts: float
    type = "status"


@dataclass(frozen=True)
class Stats:
    site: str
    device: str
    ts: float
    stats: Mapping[str, float]
    type = "stats"


Message = Union[StateBatch, Ack, Status, Stats]


# -- encoding ---------------------------------------------------------------------------


def encode(msg: Message, compress: bool = False) -> bytes:
    """Validate ``msg`` and return its wire form; raises ProtocolError if it is invalid."""
    obj = _to_json(msg)
    # Round-trip through the decoder's checks so an agent can never emit what central
    # would refuse.
    _from_json(obj)
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    if compress:
        data = zlib.compress(data, 6)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            "encoded message is %d bytes, limit %d" % (len(data), MAX_PAYLOAD_BYTES),
            field="message",
            code="too_large",
        )
    return data


def _to_json(msg: Message) -> Dict[str, Any]:
    head: Dict[str, Any] = {"v": PROTOCOL_VERSION, "type": msg.type, "site": msg.site, "device": msg.device}
    if isinstance(msg, StateBatch):
        head.update(seq=msg.seq, sent_at=msg.sent_at, states=[s.to_json() for s in msg.states])
    elif isinstance(msg, Ack):
        head["acks"] = [{"camera": a.camera, "slot": a.slot, "rev": a.rev} for a in msg.acks]
    elif isinstance(msg, Status):
        head.update(state=msg.state, ts=msg.ts)
    elif isinstance(msg, Stats):
        head.update(ts=msg.ts, stats=dict(msg.stats))
    else:
        raise ProtocolError("not a protocol message: %r" % (type(msg).__name__,), field="message")
    return head


# -- decoding ---------------------------------------------------------------------------


def decode(payload: bytes) -> Message:
    """Parse and validate one wire message. Raises only :class:`ProtocolError`."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ProtocolError("payload must be bytes", field="payload", code="bad_type")
    data = bytes(payload)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            "payload is %d bytes, limit %d" % (len(data), MAX_PAYLOAD_BYTES),
            field="payload",
            code="too_large",
        )
    if data[:1] == bytes((_ZLIB_FIRST_BYTE,)):
        data = _inflate(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("not UTF-8 (%s)" % exc.reason, field="payload", code="bad_encoding") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and over-long integer literals.
        raise ProtocolError("not valid JSON (%s)" % _short(exc), field="payload", code="bad_json") from None
    return _from_json(obj)


def check_identity(msg: Message, topic: Topic) -> None:
    """Refuse a message whose site, device or type disagrees with the topic it came on."""
    if msg.site != topic.site or msg.device != topic.device:
        raise ProtocolError(
            "payload names %s/%s but came on the topic of %s/%s"
            % (msg.site, msg.device, topic.site, topic.device),
            field="site",
            code="identity_mismatch",
        )
    if msg.type != topic.kind:
        raise ProtocolError(
            "a %r message on a %r topic" % (msg.type, topic.kind), field="type", code="identity_mismatch"
        )


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_DECODED_BYTES + 1)
    except zlib.error as exc:
        raise ProtocolError("bad zlib data (%s)" % exc, field="payload", code="bad_encoding") from None
    if len(out) > MAX_DECODED_BYTES or inflater.unconsumed_tail:
        raise ProtocolError(
            "inflates past %d bytes" % MAX_DECODED_BYTES, field="payload", code="too_large"
        )
    if not inflater.eof or inflater.unused_data:
        raise ProtocolError("truncated or trailing zlib data", field="payload", code="bad_encoding")
    return out


def _no_duplicates(pairs: Any) -> Dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ProtocolError("duplicate key in a JSON object", field="payload", code="bad_json")
    return obj


def _no_constants(name: str) -> Any:
    raise ProtocolError("%s is not a number here" % name, field="payload", code="bad_json")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


_FIELDS = {
    "state": {"v", "type", "site", "device", "seq", "sent_at", "states"},
    "ack": {"v", "type", "site", "device", "acks"},
    "status": {"v", "type", "site", "device", "state", "ts"},
    "stats": {"v", "type", "site", "device", "ts", "stats"},
}
_STATE_FIELDS = {"camera", "slot", "peak", "events", "triggers", "rev"}
_ACK_FIELDS = {"camera", "slot", "rev"}


def _from_json(obj: Any) -> Message:
    if not isinstance(obj, dict):
        raise ProtocolError("must be a JSON object", field="message", code="bad_type")
    if "v" not in obj:
        raise ProtocolError("is required", field="v", code="missing")
    version = obj["v"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError("must be an integer", field="v", code="bad_type")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            "version %d is not supported (this side speaks %s)"
            % (version, ", ".join(map(str, SUPPORTED_VERSIONS))),
            field="v",
        )
    kind = obj.get("type")
    if kind not in _FIELDS:
        raise ProtocolError(
            "must be one of %s" % ", ".join(sorted(_FIELDS)), field="type", code="bad_value"
        )
    _check_fields(obj, _FIELDS[kind], "")
    site = check_name(obj["site"], "site", ProtocolError)
    device = check_name(obj["device"], "device", ProtocolError)
    if kind == "state":
        states = _check_list(obj["states"], "states")
        return StateBatch(
            site=site,
            device=device,
            seq=_check_int(obj["seq"], "seq", 0, MAX_SEQ),
            sent_at=_check_time(obj["sent_at"], "sent_at"),
            states=tuple(_state(s, "states[%d]" % i) for i, s in enumerate(states)),
        )
    if kind == "ack":
        acks = _check_list(obj["acks"], "acks")
        return Ack(site=site, device=device, acks=tuple(_ack(a, "acks[%d]" % i) for i, a in enumerate(acks)))
    if kind == "status":
        state = obj["state"]
        if state not in STATUS_STATES:
            raise ProtocolError("must be one of %s" % ", ".join(STATUS_STATES), field="state")
        return Status(site=site, device=device, state=state, ts=_check_time(obj["ts"], "ts"))
    stats = obj["stats"]
    if not isinstance(stats, dict):
        raise ProtocolError("must be an object", field="stats", code="bad_type")
    if len(stats) > MAX_STATS:
        raise ProtocolError("more than %d entries" % MAX_STATS, field="stats", code="too_many")
    for name, value in stats.items():
        check_name(name, "stats", ProtocolError)
        _check_number(value, "stats." + name)
    return Stats(site=site, device=device, ts=_check_time(obj["ts"], "ts"), stats=stats)


def _state(obj: Any, where: str) -> SlotState:
    _check_fields(obj, _STATE_FIELDS, where + ".", optional={"triggers"})
    return SlotState(
        camera=obj["camera"],
        slot=obj["slot"],
        peak=obj["peak"],
        events=obj["events"],
        rev=obj["rev"],
        triggers=obj.get("triggers", {}),
    ).validate(where)


def _ack(obj: Any, where: str) -> AckItem:
    _check_fields(obj, _ACK_FIELDS, where + ".")
    return AckItem(
        camera=check_name(obj["camera"], where + ".camera", ProtocolError),
        slot=_check_slot(obj["slot"], where + ".slot"),
        rev=_check_int(obj["rev"], where + ".rev", 1, MAX_REV),
    )


def _check_fields(obj: Any, allowed: set, prefix: str, optional: frozenset | set = frozenset()) -> None:
    where = prefix.rstrip(".") or "message"
    if not isinstance(obj, dict):
        raise ProtocolError("must be a JSON object", field=where, code="bad_type")
    for name in allowed:
        if name not in obj and name not in optional:
            raise ProtocolError("is required", field=prefix + name, code="missing")
    extra = [k for k in obj if k not in allowed]
    if extra:
        raise ProtocolError(
            "unknown field(s) %s" % ", ".join(repr(k[:40]) for k in sorted(extra)[:3]),
            field=where,
            code="unknown_field",
        )


def _check_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise ProtocolError("must be an array", field=where, code="bad_type")
    if len(value) > MAX_STATES:
        raise ProtocolError("more than %d entries" % MAX_STATES, field=where, code="too_many")
    return value


def _check_int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("must be an integer", field=where, code="bad_type")
    if not low <= value <= high:
        raise ProtocolError("must be in %d..%d" % (low, high), field=where, code="out_of_range")
    return value


def _check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("must be a number", field=where, code="bad_type")
    # An int is compared as an int: math.isfinite(10**400) raises OverflowError.
    in_range = abs(value) <= 2**63 and (isinstance(value, int) or math.isfinite(value))
    if not in_range:
        raise ProtocolError("must be a finite number", field=where, code="out_of_range")
    return value


def _check_time(value: Any, where: str) -> float:
    _check_number(value, where)
    if not MIN_TIMESTAMP <= value < MAX_TIMESTAMP:
        raise ProtocolError(
            "must be Unix seconds in 2000-01-01..2100-01-01", field=where, code="out_of_range"
        )
    return value


def _check_slot(value: Any, where: str) -> int:
    _check_int(value, where, MIN_TIMESTAMP, MAX_TIMESTAMP - 1)
    if value % SLOT_SECONDS:
        raise ProtocolError(
            "must be a slot start (a multiple of %d seconds)" % SLOT_SECONDS, field=where
        )
    return value
