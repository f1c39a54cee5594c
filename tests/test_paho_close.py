"""shared.paho_close.stop_client: paho-mqtt 2 closes the socket pair of ``loop_start()`` and
``loop()`` only in ``Client.__del__`` (eclipse-paho/paho.mqtt.python#627). A client whose
callbacks are bound methods of its owner is freed by the cyclic collector, in no set order:
a socket finalized before the client is an "unclosed socket" ResourceWarning, which
filterwarnings=error turns into a failing test somewhere else, now and then."""

from __future__ import annotations

import gc
import threading
import warnings

import paho.mqtt.client as mqtt

from shared.paho_close import stop_client


class _Owner:
    """Holds a client whose callback is one of its bound methods: a reference cycle."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-close-test",
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.set()


def test_stop_client_closes_every_socket_and_the_cycle_is_collected_quietly(mosquitto):
    owner = _Owner()
    client = owner.client
    try:
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        assert owner.connected.wait(5), "no CONNACK from the test broker"
        socks = [client._sock, client._sockpairR, client._sockpairW]
        assert all(s is not None and s.fileno() != -1 for s in socks)
    finally:
        stop_client(client)
    # disconnect() + loop_stop() close the connection but leave the pair open.
    assert [s.fileno() for s in socks] == [-1, -1, -1]
    assert (client._sock, client._sockpairR, client._sockpairW) == (None, None, None)
    del socks, client
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del owner
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []


def test_stop_client_on_a_client_never_started_or_only_looped():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-close-idle")
    stop_client(client)  # never connected, no thread: nothing to do, nothing raised
    assert client.loop(timeout=0.01) == mqtt.MQTT_ERR_NO_CONN  # makes the socket pair
    pair = [client._sockpairR, client._sockpairW]
    assert all(s is not None and s.fileno() != -1 for s in pair)
    stop_client(client, disconnect=False)
    assert [s.fileno() for s in pair] == [-1, -1]
    stop_client(client)  # again: still fine
