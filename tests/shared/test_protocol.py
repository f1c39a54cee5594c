from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.exceptions import ProtocolError, UnsupportedVersion
from shared.protocol import (
    MAX_DECODED_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_STATES,
    Ack,
    AckItem,
    RevAck,
    SlotState,
    StateBatch,
    Stats,
    Status,
    check_identity,
    decode,
    encode,
    rev_ranges,
)
from shared.topics import parse_topic, state_topic

SLOT = 1767571200


def batch(**over) -> dict:
    msg = {
        "v": 1,
        "type": "state",
        "site": "HEAD_OFFICE",
        "device": "jetson-01",
        "seq": 7,
        "sent_at": 1767571234.5,
        "states": [
            {
                "camera": "EMPLOYEE_AREA",
                "slot": SLOT,
                "peak": 8,
                "events": 17,
                "triggers": {"UNAUTHORIZED_STRANGER": 3},
                "rev": 42,
            }
        ],
    }
    msg.update(over)
    return msg


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


def test_decode_valid_state_batch():
    msg = decode(raw(batch()))
    assert isinstance(msg, StateBatch)
    assert msg.site == "HEAD_OFFICE" and msg.device == "jetson-01" and msg.seq == 7
    (state,) = msg.states
    assert state == SlotState("EMPLOYEE_AREA", SLOT, 8, 17, 42, {"UNAUTHORIZED_STRANGER": 3})
    assert state.key() == ("EMPLOYEE_AREA", SLOT)


def test_compressed_payload_is_inflated():
    assert decode(zlib.compress(raw(batch()))) == decode(raw(batch()))


def test_encode_round_trip_all_types():
    msgs = [
        decode(raw(batch())),
        Ack("S", "d", (AckItem("CAM", SLOT, 3), AckItem("CAM", SLOT + 900, 4))),
        Status("S", "d", "online", 1767571200.25),
        Stats("S", "d", 1767571200.0, {"events_per_s": 12.5, "outbox_backlog": 3}),
    ]
    for msg in msgs:
        for compress in (False, True):
            assert decode(encode(msg, compress=compress)) == msg


def test_encode_refuses_invalid_message():
    bad = StateBatch("S", "d", 1, 1767571200.0, (SlotState("CAM", SLOT + 1, 1, 1, 1),))
    with pytest.raises(ProtocolError) as info:
        encode(bad)
    assert info.value.field == "states[0].slot"


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        (lambda m: m.pop("site"), "site", "missing"),
        (lambda m: m.update(site="a/b"), "site", "bad_name"),
        (lambda m: m.update(site=5), "site", "bad_type"),
        (lambda m: m.update(device="x" * 65), "device", "bad_name"),
        (lambda m: m.update(seq=-1), "seq", "out_of_range"),
        (lambda m: m.update(seq=True), "seq", "bad_type"),
        (lambda m: m.update(sent_at="now"), "sent_at", "bad_type"),
        (lambda m: m.update(sent_at=4102444800), "sent_at", "out_of_range"),
        (lambda m: m.update(extra=1), "message", "unknown_field"),
        (lambda m: m.update(type="bogus"), "type", "bad_value"),
        (lambda m: m.update(states={}), "states", "bad_type"),
        (lambda m: m.update(states=[1]), "states[0]", "bad_type"),
        (lambda m: m["states"][0].update(peak=65536), "states[0].peak", "out_of_range"),
        (lambda m: m["states"][0].update(peak=1.5), "states[0].peak", "bad_type"),
        (lambda m: m["states"][0].update(events=-3), "states[0].events", "out_of_range"),
        (lambda m: m["states"][0].update(rev=0), "states[0].rev", "out_of_range"),
        (lambda m: m["states"][0].update(rev=2**53), "states[0].rev", "out_of_range"),
        (lambda m: m["states"][0].update(slot=SLOT + 60), "states[0].slot", "bad_value"),
        (lambda m: m["states"][0].update(slot=-900), "states[0].slot", "out_of_range"),
        (lambda m: m["states"][0].update(slot=2**40 * 900), "states[0].slot", "out_of_range"),
        (lambda m: m["states"][0].update(camera="<script>"), "states[0].camera", "bad_name"),
        (lambda m: m["states"][0].pop("rev"), "states[0].rev", "missing"),
        (lambda m: m["states"][0].update(more=1), "states[0]", "unknown_field"),
        (lambda m: m["states"][0].update(triggers=[]), "states[0].triggers", "bad_type"),
        (lambda m: m["states"][0].update(triggers={"A B": 1}), "states[0].triggers", "bad_name"),
        (lambda m: m["states"][0].update(triggers={"total_events": 1}), "states[0].triggers", "bad_name"),
        (lambda m: m["states"][0].update(triggers={"X": -1}), "states[0].triggers.X", "out_of_range"),
        (lambda m: m["states"][0].update(triggers={"T%d" % i: 1 for i in range(65)}), "states[0].triggers", "too_many"),
        (lambda m: m["states"][0].update(events=0), "states[0].events", "bad_value"),
        (lambda m: m.update(states=m["states"] * (MAX_STATES + 1)), "states", "too_many"),
    ],
)
def test_malformed_fields_are_named(mutate, field, code):
    msg = batch()
    mutate(msg)
    with pytest.raises(ProtocolError) as info:
        decode(raw(msg))
    assert (info.value.field, info.value.code) == (field, code), str(info.value)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "bad_json"),
        (b"{", "bad_json"),
        (b"[]", "bad_type"),
        (b"null", "bad_type"),
        (b"\xff\xfe", "bad_encoding"),
        (b"x\x9c garbage", "bad_encoding"),
        (b'{"v": 1, "v": 1}', "bad_json"),
        (b'{"v": NaN}', "bad_json"),
        (b"[" * 150000 + b"]" * 150000, "too_large"),
        (b"[" * 50000, "bad_json"),
        (b'{"v": ' + b"1" * 5000 + b"}", "bad_json"),
        (b'{"type": "state"}', "missing"),
        (b'{"v": 1, "type": "status", "site": "S", "device": "D", "state": "online", "ts": 1'
         + b"0" * 400 + b"}", "out_of_range"),
        (b'{"v": 1, "type": "stats", "site": "S", "device": "D", "ts": 1767600000, "stats": {"x": -1'
         + b"0" * 400 + b"}}", "out_of_range"),
        (b'{"v": "1"}', "bad_type"),
    ],
)
def test_malformed_payloads(payload, code):
    with pytest.raises(ProtocolError) as info:
        decode(payload)
    assert info.value.code == code, str(info.value)


def test_unknown_version_is_refused_cleanly():
    with pytest.raises(UnsupportedVersion) as info:
        decode(raw(batch(v=3)))
    assert info.value.code == "unsupported_version"
    assert "version 3" in str(info.value)


def test_oversized_and_compression_bomb():
    with pytest.raises(ProtocolError) as info:
        decode(b" " * (MAX_PAYLOAD_BYTES + 1))
    assert info.value.code == "too_large"
    bomb = zlib.compress(b" " * (MAX_DECODED_BYTES * 8))
    assert len(bomb) < MAX_PAYLOAD_BYTES
    with pytest.raises(ProtocolError) as info:
        decode(bomb)
    assert info.value.code == "too_large"
    with pytest.raises(ProtocolError) as info:
        decode(zlib.compress(raw(batch()))[:-4])
    assert info.value.code == "bad_encoding"


def test_payload_type_checked():
    with pytest.raises(ProtocolError):
        decode("a string")  # type: ignore[arg-type]


def test_identity_must_match_topic():
    msg = decode(raw(batch()))
    check_identity(msg, parse_topic(state_topic("HEAD_OFFICE", "jetson-01")))
    for site, device in (("OTHER", "jetson-01"), ("HEAD_OFFICE", "jetson-02")):
        with pytest.raises(ProtocolError) as info:
            check_identity(msg, parse_topic(state_topic(site, device)))
        assert info.value.code == "identity_mismatch"
    status = Status("HEAD_OFFICE", "jetson-01", "online", 1767571200.0)
    with pytest.raises(ProtocolError) as info:
        check_identity(status, parse_topic(state_topic("HEAD_OFFICE", "jetson-01")))
    assert info.value.field == "type"


# -- property tests ---------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", fullmatch=True)
triggers = names.filter(lambda n: n != "total_events")
slots = st.integers(946684800 // 900, 4102444800 // 900 - 1).map(lambda i: i * 900)
counts = st.integers(1, 2**32 - 1)
times = st.floats(946684800, 4102444799, allow_nan=False, allow_infinity=False)


@st.composite
def slot_states(draw):
    return SlotState(
        camera=draw(names),
        slot=draw(slots),
        peak=draw(st.integers(0, 65535)),
        events=draw(counts),
        rev=draw(st.integers(1, 2**53 - 1)),
        triggers=draw(st.dictionaries(triggers, st.integers(0, 2**32 - 1), max_size=8)),
    )


messages = st.one_of(
    st.builds(StateBatch, names, names, st.integers(0, 2**53 - 1), times, st.lists(slot_states(), max_size=20).map(tuple),
              st.sampled_from([1, 2])),
    st.builds(RevAck, names, names, st.lists(st.integers(1, 2**53 - 1), max_size=40).map(rev_ranges)),
    st.builds(Ack, names, names, st.lists(st.builds(AckItem, names, slots, st.integers(1, 2**53 - 1)), max_size=20).map(tuple)),
    st.builds(Status, names, names, st.sampled_from(["online", "offline", "stopped"]), times),
    st.builds(Stats, names, names, times, st.dictionaries(names, st.integers(-(2**53), 2**53) | times, max_size=10)),
)


@given(messages, st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_valid_messages_round_trip(msg, compress):
    assert decode(encode(msg, compress=compress)) == msg


@given(st.binary(max_size=4096))
@settings(max_examples=2000)
def test_arbitrary_bytes_raise_only_protocol_error(data):
    try:
        decode(data)
    except ProtocolError:
        pass


@given(st.binary(max_size=2048))
@settings(max_examples=500)
def test_arbitrary_compressed_bytes_raise_only_protocol_error(data):
    try:
        decode(zlib.compress(data))
    except ProtocolError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@given(st.fixed_dictionaries({}, optional={
    "v": st.sampled_from([1, 2, "1", None]),
    "type": st.sampled_from(["state", "ack", "status", "stats", "x"]),
    "site": names | json_values,
    "device": names | json_values,
    "seq": st.integers(-5, 2**60) | json_values,
    "sent_at": times | json_values,
    "ts": times | json_values,
    "state": st.sampled_from(["online", "gone"]) | json_values,
    "states": st.lists(st.dictionaries(st.sampled_from(["camera", "slot", "peak", "events", "triggers", "rev", "x"]), json_values), max_size=3),
    "acks": json_values,
    "stats": json_values,
}))
@settings(max_examples=2000)
def test_structured_garbage_raises_only_protocol_error(obj):
    try:
        decode(json.dumps(obj).encode())
    except ProtocolError:
        pass


def test_version_2_state_batch_round_trips_with_the_preset_dictionary():
    msg = StateBatch("HEAD_OFFICE", "jetson-01", 7, 1767571234.5,
                     (SlotState("EMPLOYEE_AREA", SLOT, 8, 17, 42, {"UNAUTHORIZED_STRANGER": 3}),), v=2)
    packed = encode(msg, compress=True)
    assert packed[:1] == b"\x78" and packed[1] & 0x20  # FDICT: a preset dictionary
    assert decode(packed) == msg and decode(encode(msg)) == msg
    plain_v1 = encode(StateBatch(msg.site, msg.device, msg.seq, msg.sent_at, msg.states), compress=True)
    assert len(packed) < len(plain_v1) * 0.7
    # v1 (no dictionary) still decodes; an old agent's batch says so in .v
    assert decode(encode(StateBatch(msg.site, msg.device, 7, msg.sent_at, msg.states), compress=True)).v == 1


def test_rev_ack_ranges_round_trip_and_membership():
    ranges = rev_ranges([9, 5, 6, 7, 7, 2**53 - 1])
    assert ranges == ((5, 7), (9, 9), (2**53 - 1, 2**53 - 1))
    ack = RevAck("S", "d", ranges)
    assert decode(encode(ack, compress=True)) == ack and decode(encode(ack)) == ack
    assert ack.count() == 5
    assert [r in ack for r in (4, 5, 7, 8, 9, 10, 2**53 - 1)] == [False, True, True, False, True, False, True]
    assert isinstance(decode(encode(Ack("S", "d", (AckItem("CAM", SLOT, 3),)))), Ack)


@pytest.mark.parametrize("revs, field", [
    ([[3, 2]], "revs[0]"),  # first > last
    ([[1, 5], [5, 6]], "revs[1]"),  # overlapping
    ([[7, 8], [1, 2]], "revs[1]"),  # unsorted
    ([[1, 2, 3]], "revs[0]"),
    ([[0, 2]], "revs[0][0]"),
    ([[1, 2**53]], "revs[0][1]"),
    ([[1, True]], "revs[0][1]"),
    ("1-2", "revs"),
])
def test_bad_rev_ranges_are_refused(revs, field):
    obj = {"v": 2, "type": "ack", "site": "S", "device": "d", "revs": revs}
    with pytest.raises(ProtocolError) as info:
        decode(raw(obj))
    assert info.value.field == field


def test_version_mismatched_shapes_are_refused():
    # A v1 ack shape under v2 and a v2 ack shape under v1: refused as unknown fields.
    with pytest.raises(ProtocolError) as info:
        decode(raw({"v": 2, "type": "ack", "site": "S", "device": "d", "acks": []}))
    assert info.value.code in ("unknown_field", "missing")
    with pytest.raises(ProtocolError):
        decode(raw({"v": 1, "type": "ack", "site": "S", "device": "d", "revs": [[1, 2]]}))
    with pytest.raises(ProtocolError):
        encode(RevAck("S", "d", ((1, 2),)), version=1)
    with pytest.raises(ProtocolError):
        encode(Ack("S", "d", ()), version=2)


def test_a_foreign_preset_dictionary_is_refused_not_misread():
    packer = zlib.compressobj(9, zdict=b'{"v":2,"type":"state" something else')
    data = packer.compress(raw(batch(v=2))) + packer.flush()
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert info.value.code == "bad_encoding" and "dictionary" in str(info.value)


def test_urgent_flag_is_version_2_only_and_strict():
    states = (SlotState("CAM", SLOT, 1, 1, 5, {}),)
    msg = StateBatch("S", "d", 1, 1767571234.5, states, v=2, urgent=True)
    assert decode(encode(msg, compress=True)) == msg
    assert b"urgent" not in encode(StateBatch("S", "d", 1, 1767571234.5, states, v=2))
    with pytest.raises(ProtocolError):
        encode(StateBatch("S", "d", 1, 1767571234.5, states, v=1, urgent=True))
    with pytest.raises(ProtocolError) as info:
        decode(raw(batch(v=2, urgent=1)))
    assert info.value.field == "urgent"
    with pytest.raises(ProtocolError) as info:
        decode(raw(batch(urgent=True)))  # version 1 has no such field
    assert info.value.code == "unknown_field"
