"""The versioned wire protocol between edge agents and central.

Four message types travel as JSON objects, optionally zlib-compressed (a payload starting
with the zlib header byte ``0x78`` is inflated first; JSON never starts with it). Version 2
compresses with a preset dictionary (:data:`ZDICT`) of the protocol's own words, which
halves the size of the small messages priority publishing sends:

* ``state``  edge -> central: absolute counters of (camera, slot) pairs with a revision that
  only grows, so central keeps the highest revision and duplicates never double count;
* ``ack``    central -> edge: what central has committed; version 1 lists (camera, slot, rev)
  triples (:class:`Ack`), version 2 only the revisions, as inclusive ranges (:class:`RevAck`):
  revisions are unique per device, so the agent maps them back to what it sent;
* ``status`` edge -> central, retained: availability (online, offline, stopped);
* ``stats``  edge -> central: periodic agent statistics (name -> number).

Decoding is strict: sizes, counts, names and ranges are checked, unknown fields and
versions are refused, and every failure is a :class:`ProtocolError` naming the field.
``docs/protocol.md`` documents the format with examples.
"""

from __future__ import annotations

import bisect
import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .events import MAX_PEOPLE
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
    "MAX_COUNT",
    "MAX_REV",
    "STATUS_STATES",
    "SlotState",
    "StateBatch",
    "AckItem",
    "Ack",
    "RevAck",
    "ZDICT",
    "rev_ranges",
    "Status",
    "Stats",
    "Message",
    "encode",
    "decode",
    "check_identity",
]

#: The version this code sends by default; it decodes every one of SUPPORTED_VERSIONS.
PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)

MAX_PAYLOAD_BYTES = 256 * 1024  # as received, compressed or not
MAX_DECODED_BYTES = 1024 * 1024  # after inflating; bounds a compression bomb
MAX_STATES = 2000  # states in one message; acks likewise
MAX_TRIGGERS = 64  # trigger names in one state
MAX_STATS = 64
MAX_COUNT = 2**32 - 1
MAX_REV = 2**53 - 1  # exact in a JSON double
MAX_SEQ = 2**53 - 1
STATUS_STATES = ("online", "offline", "stopped")

_ZLIB_FIRST_BYTE = 0x78
_ZLIB_FDICT = 0x20  # bit of the zlib header's second byte: a preset dictionary follows

#: The preset zlib dictionary of version 2: JSON fragments, field, trigger, stats and
#: customer zone names, the most frequent last (deflate codes near matches shorter). It is
#: part of the protocol: a changed dictionary needs a new version. The zlib header carries
#: its Adler-32, so a payload compressed with another dictionary is refused, not misread.
ZDICT = (
    b'"BOSS_CABIN"RECEPTION_AREA"EMPLOYEE_AREA"HEAD_OFFICE"CAFETERIA"jetson-'
    b'{"v":2,"type":"status","site":"","state":"online"offline"stopped"'
    b'"refused_total":"outbox_backlog":"oldest_unacked_age_s":"ack_lag_s":"states_resent":'
    b'"connected":1,"cameras":"messages_sent":"states_sent":"bytes_sent":"acks":'
    b'"expired_unacked":0,"commit_errors":0,"outbox_quarantined":0,"restored":"priority_sent":'
    b'"bad_acks":0,"connects":1,"events_per_s":"events_total":'
    b'{"v":2,"type":"stats","site":"","ts":17'
    b'{"v":2,"type":"ack","site":"","revs":[[17'
    b'"CROWD_VIOLATION":"RESTRICTED_ACCESS":"UNAUTHORIZED_STRANGER":1'
    b'{"v":2,"type":"state","site":"","device":"","seq":1,"sent_at":17'
    b'"states":[{"camera":"","slot":17,"peak":1,"events":1,"triggers":{},"rev":17'
    b'}],"urgent":true}'
    b'},{"camera":"'
)


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
        _check_int(self.peak, where + ".peak", 0, MAX_PEOPLE)
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
    """A batch of slot states. ``v`` is the version it came in or goes out in; central
    acknowledges in the same version, so an agent only ever gets acks it can read. It
    defaults to 1 so code written for version 1 keeps speaking it; the agent sets it.

    ``urgent`` (version 2): sent ahead of the publish interval by priority publishing;
    central writes it but sends no ack, because the same states follow in a regular batch
    (usually at a newer revision), whose ack retires them. On the wire only when true."""

    site: str
    device: str
    seq: int
    sent_at: float
    states: Tuple[SlotState, ...]
    v: int = 1
    urgent: bool = False
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
class RevAck:
    """Version 2 ack: the revisions central has committed, as sorted, disjoint, inclusive
    ``(first, last)`` ranges. An agent retires a pending state only when its *current*
    revision is in a range, so duplicates, reordering and replays are harmless."""

    site: str
    device: str
    revs: Tuple[Tuple[int, int], ...]
    type = "ack"

    def count(self) -> int:
        """How many revisions the ranges cover."""
        return sum(last - first + 1 for first, last in self.revs)

    def __contains__(self, rev: int) -> bool:
        i = bisect.bisect_right(self.revs, (rev, MAX_REV + 1)) - 1
        return i >= 0 and self.revs[i][0] <= rev <= self.revs[i][1]


def rev_ranges(revs: Iterable[int]) -> Tuple[Tuple[int, int], ...]:
    """Revisions as sorted, disjoint, inclusive (first, last) ranges; duplicates fold in."""
    out: List[List[int]] = []
    for rev in sorted(set(revs)):
        if out and out[-1][1] + 1 == rev:
            out[-1][1] = rev
        else:
            out.append([rev, rev])
    return tuple((first, last) for first, last in out)


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


Message = Union[StateBatch, Ack, RevAck, Status, Stats]


# -- encoding ---------------------------------------------------------------------------


def encode(msg: Message, compress: bool = False, version: Optional[int] = None) -> bytes:
    """Validate ``msg`` and return its wire form; raises ProtocolError if it is invalid.

    ``version``: what to send; by default a state batch's own ``v``, version 1 for an
    :class:`Ack`, 2 for a :class:`RevAck`, else :data:`PROTOCOL_VERSION`. Compressed
    version 2 payloads use the preset dictionary :data:`ZDICT`.
    """
    if version is None:
        version = _version_of(msg)
    obj = _to_json(msg, version)
    # Round-trip through the decoder's checks so an agent can never emit what central
    # would refuse.
    _from_json(obj)
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    if compress:
        if version >= 2:
            packer = zlib.compressobj(9, zdict=ZDICT)
            data = packer.compress(data) + packer.flush()
        else:
            data = zlib.compress(data, 6)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            "encoded message is %d bytes, limit %d" % (len(data), MAX_PAYLOAD_BYTES),
            field="message",
            code="too_large",
        )
    return data


def _version_of(msg: Message) -> int:
    if isinstance(msg, StateBatch):
        return msg.v
    if isinstance(msg, Ack):
        return 1
    return PROTOCOL_VERSION


def _to_json(msg: Message, version: int) -> Dict[str, Any]:
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion("cannot encode version %r" % (version,), field="v")
    head: Dict[str, Any] = {"v": version, "type": msg.type, "site": msg.site, "device": msg.device}
    if isinstance(msg, StateBatch):
        head.update(seq=msg.seq, sent_at=msg.sent_at, states=[s.to_json() for s in msg.states])
        if msg.urgent:
            if version < 2:
                raise ProtocolError("an urgent batch needs version 2", field="urgent", code="bad_value")
            head["urgent"] = True
    elif isinstance(msg, Ack):
        if version != 1:
            raise ProtocolError("an ack by (camera, slot, rev) is version 1", field="v", code="bad_value")
        head["acks"] = [{"camera": a.camera, "slot": a.slot, "rev": a.rev} for a in msg.acks]
    elif isinstance(msg, RevAck):
        if version < 2:
            raise ProtocolError("an ack by revision needs version 2", field="v", code="bad_value")
        head["revs"] = [[first, last] for first, last in msg.revs]
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
    if len(data) >= 2 and data[1] & _ZLIB_FDICT:
        # The header names its dictionary by Adler-32; only ours is known.
        if data[2:6] != _ZDICT_ID:
            raise ProtocolError("compressed with an unknown preset dictionary", field="payload",
                                code="bad_encoding")
        inflater = zlib.decompressobj(zdict=ZDICT)
    else:
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


_ZDICT_ID = struct.pack(">I", zlib.adler32(ZDICT))

_FIELDS = {
    "state": {"v", "type", "site", "device", "seq", "sent_at", "states"},
    "ack": {"v", "type", "site", "device", "acks"},
    "revack": {"v", "type", "site", "device", "revs"},
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
    if kind not in _FIELDS or kind == "revack":
        raise ProtocolError(
            "must be one of %s" % ", ".join(sorted(set(_FIELDS) - {"revack"})), field="type", code="bad_value"
        )
    if kind == "state" and version >= 2:
        _check_fields(obj, _FIELDS["state"] | {"urgent"}, "", optional={"urgent"})
    else:
        _check_fields(obj, _FIELDS["revack" if kind == "ack" and version >= 2 else kind], "")
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
            v=version,
            urgent=_check_bool(obj.get("urgent", False), "urgent"),
        )
    if kind == "ack" and version >= 2:
        return RevAck(site=site, device=device, revs=_revs(obj["revs"]))
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


def _revs(value: Any) -> Tuple[Tuple[int, int], ...]:
    ranges = _check_list(value, "revs")
    out: List[Tuple[int, int]] = []
    for i, pair in enumerate(ranges):
        where = "revs[%d]" % i
        if not isinstance(pair, list) or len(pair) != 2:
            raise ProtocolError("must be a [first, last] pair", field=where, code="bad_type")
        first = _check_int(pair[0], where + "[0]", 1, MAX_REV)
        last = _check_int(pair[1], where + "[1]", 1, MAX_REV)
        if last < first or (out and first <= out[-1][1]):
            # Sorted and disjoint keeps lookups a bisection and a range's meaning single.
            raise ProtocolError("ranges must be sorted, disjoint, first <= last", field=where)
        out.append((first, last))
    return tuple(out)


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


def _check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError("must be true or false", field=where, code="bad_type")
    return value


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
