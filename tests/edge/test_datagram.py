"""The datagram input over real UDP and Unix sockets: good events, NDJSON, and bad datagrams."""

from __future__ import annotations

import errno
import json
import socket
import time

import pytest

from edge.agent import Agent
from shared.slots import slot_of
from tests.harness import eventually

# Date-sensitive: make test-clock runs these again at fixed instants (tests/_clock).
pytestmark = pytest.mark.clock


def committed(agent) -> dict:
    assert agent.flush()
    values, _ = agent.outbox.load(0)
    return {(c, s): (p, e, t) for c, s, p, e, t in values}


def send_all(sock, address, datagrams) -> None:
    for d in datagrams:
        sock.sendto(d, address)


def wait_datagrams(inp, n, timeout=5.0) -> None:
    eventually(lambda: inp.datagrams >= n, timeout, "%d datagrams" % n)
    assert inp.datagrams == n


def test_udp_events_ndjson_and_bad_datagrams_never_stop_the_input(make_config):
    agent = Agent(make_config(mqtt=None, udp_addr=("127.0.0.1", 0))).start()
    try:
        inp = agent.inputs[0]
        now = time.time()
        ev = {"camera": "EMPLOYEE_AREA", "people_count": 4, "timestamp": now, "triggers": ["UNAUTHORIZED_STRANGER"]}
        customer = {"cam_name": "EMPLOYEE_AREA", "people_count": 6, "event_timestamp": now,
                    "event_triggers": ["UNAUTHORIZED_STRANGER", "UNAUTHORIZED_STRANGER"], "site_name": "HEAD_OFFICE"}
        good_line = json.dumps(ev).encode()
        datagrams = [
            good_line,                                                        # 1 accepted
            b"\n".join([good_line, json.dumps(customer).encode(), b""]),       # 2 accepted (NDJSON)
            b"\xff\xfe not utf-8",                                            # bad_json
            b"{\"camera\": ",                                                 # bad_json
            b"[1, 2]",                                                        # 2 x bad_event
            json.dumps(dict(ev, people_count=-3)).encode(),                   # bad_count
            json.dumps(dict(ev, camera="bad/name")).encode(),                 # bad_camera
            json.dumps(dict(ev, site="OTHER_SITE")).encode(),                 # wrong_site
            json.dumps(dict(ev, colour="red")).encode(),                      # bad_event
            json.dumps(dict(ev, timestamp=now - 30 * 86400)).encode(),        # too_old
            b"\n".join([good_line, b"{oops", good_line]),                     # 2 accepted + bad_json
            json.dumps(dict(ev, timestamp="2026-01-05T10:00:00")).encode(),   # bad_timestamp (no offset)
            b"",                                                              # empty
            b"{\"camera\": \"A\"},{\"camera\": \"B\"}\n" + good_line,        # bad_json, 1 accepted
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            send_all(sock, inp.address, datagrams)
            wait_datagrams(inp, len(datagrams))
        got = committed(agent)
        assert got == {("EMPLOYEE_AREA", slot_of(now)): (6, 6, {"UNAUTHORIZED_STRANGER": 7})}
        refused = agent.refusals.snapshot()
        assert refused == {"bad_json": 5, "bad_event": 3, "bad_timestamp": 1, "bad_count": 1, "bad_camera": 1,
                           "wrong_site": 1, "too_old": 1}
        assert agent.stats()["refused_bad_json"] == 5
    finally:
        agent.stop()


def test_unix_datagram_socket(make_config, tmp_path):
    path = str(tmp_path / "events.sock")
    agent = Agent(make_config(mqtt=None, unix_socket=path)).start()
    try:
        inp = agent.inputs[0]
        lines = "\n".join(json.dumps({"camera": "CAM%d" % (i % 4), "people_count": i}) for i in range(100))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(lines.encode(), path)
            sock.sendto(b"garbage", path)
            wait_datagrams(inp, 2)
        got = committed(agent)
        assert sorted((c, p, e) for (c, _), (p, e, _) in got.items()) == [
            ("CAM0", 96, 25), ("CAM1", 97, 25), ("CAM2", 98, 25), ("CAM3", 99, 25)]
    finally:
        agent.stop()
    assert not (tmp_path / "events.sock").exists()


def ndjson_of_size(size: int, camera: str) -> tuple:
    """An NDJSON datagram of exactly ``size`` bytes and the number of events in it."""
    line = json.dumps({"camera": camera, "people_count": 1}).encode()
    n = (size - 200) // (len(line) + 1)
    data = b"\n".join([line] * n) + b"\n"
    return data + b" " * (size - len(data)), n


def events_of(got: dict, camera: str) -> int:
    return sum(e for (c, _), (_, e, _) in got.items() if c == camera)


def test_size_limits_udp_65507_unix_256_kib_and_a_longer_datagram_is_refused_whole(make_config, tmp_path):
    path = str(tmp_path / "events.sock")
    agent = Agent(make_config(mqtt=None, udp_addr=("127.0.0.1", 0), unix_socket=path)).start()
    try:
        udp, unix = agent.inputs
        biggest_udp, n_udp = ndjson_of_size(65507, "UDP_CAM")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(biggest_udp, udp.address)
            try:
                sock.sendto(biggest_udp + b" ", udp.address)
            except OSError as exc:  # IPv4's limit, on the sender's side
                assert exc.errno == errno.EMSGSIZE
            else:
                raise AssertionError("a 65,508-byte UDP datagram was sent")
            wait_datagrams(udp, 1)
        biggest_unix, n_unix = ndjson_of_size(256 * 1024, "UNIX_CAM")
        too_big, _ = ndjson_of_size(256 * 1024 + 1, "CUT_CAM")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Linux' default send buffer (212,992 bytes) caps a Unix datagram below 256 KiB.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 512 * 1024)
            sock.sendto(biggest_unix, path)
            sock.sendto(too_big, path)
            wait_datagrams(unix, 2)
        got = committed(agent)
        assert (events_of(got, "UDP_CAM"), events_of(got, "UNIX_CAM"), events_of(got, "CUT_CAM")) == (
            n_udp, n_unix, 0)
        assert agent.refusals.snapshot() == {"too_large": 1}
        assert agent.stats()["unix_bad_datagrams"] == 1
    finally:
        agent.stop()


@pytest.mark.parametrize(("data", "accepted", "refused"), [
    (b'{"camera": "A", "people_count": 1}', 1, {}),
    (b' {"camera": "A", "people_count": 1}\t', 1, {}),  # blanks around: the full parse takes it
    (b'{"camera": "A", "people_count": 1}\n', 1, {}),  # a final newline: still one event
    (b'{"camera": "A", "people_count": 1} {"camera": "B"}', 0, {"bad_json": 1}),  # extra data
    (b'{"camera": "A", "people_count": 1', 0, {"bad_json": 1}),
    (b'\xff{"camera": "A", "people_count": 1}', 0, {"bad_json": 1}),  # not UTF-8
    (b"[" * 100000 + b"]" * 100000, 0, {"bad_json": 1}),  # too deep
    (b'[{"camera": "A", "people_count": 1}, {"camera": "B", "people_count": 2}]', 2, {}),
    (b"NaN", 0, {"bad_event": 1}),
])
def test_one_value_datagrams_parse_as_json_decode_does(tmp_path, data, accepted, refused):
    """The datagram input's fast parse (the C scanner) takes and refuses exactly what
    json's decode() does, for the same reasons."""
    from edge.config import Config
    from edge.inputs.datagram import DatagramInput

    agent = Agent(Config(site="S", device_id="d", state_dir=str(tmp_path / "state")))
    inp = DatagramInput(agent, udp=("127.0.0.1", 0))
    assert inp.handle(data) == accepted
    assert agent.refusals.snapshot() == refused
