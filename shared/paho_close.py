"""Stop a paho client and close its sockets now, not when the garbage collector gets to it.

paho-mqtt 2.x closes the socket pair that ``loop_start()`` (and ``loop()``) create to wake
its network thread only in ``Client.__del__`` (eclipse-paho/paho.mqtt.python#627; neither
``disconnect()`` nor ``loop_stop()`` does). Every client here sits in a reference cycle
(its callbacks are bound methods of the object that owns it), so those two descriptors
stayed open until a cyclic collection, and then were finalized in no set order: the socket
before the client, which is a ``ResourceWarning`` ("unclosed <socket.socket ...>") and a
descriptor held for as long as the cycle lives.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

__all__ = ["stop_client"]


def stop_client(client: mqtt.Client, disconnect: bool = True) -> None:
    """Disconnect (unless told not to), join paho's thread, and close every socket it holds.

    Never raises for a client that is already disconnected or was never started.
    """
    if disconnect:
        try:
            client.disconnect()
        except (RuntimeError, ValueError, OSError):
            pass
    client.loop_stop()
    if getattr(client, "_thread", None) is threading.current_thread():
        return  # called from paho's own thread (a callback): it ends after this, not joined
    # The thread is joined: nothing selects on these sockets any more. paho has no public
    # close; ``_reset_sockets`` is what its own ``__del__`` and ``reinitialise`` call.
    reset = getattr(client, "_reset_sockets", None)
    if reset is not None:
        reset()
