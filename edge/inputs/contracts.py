"""What an input and the agent promise each other, as ``typing.Protocol`` classes.

:class:`Input` is the surface the agent drives (one module per kind implements it:
``datagram.py``, ``local_mqtt.py``); :class:`InputHost` is the part of the agent an input
uses. Structural: neither side inherits anything, and a test double that has these members
is a host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ..buffers import SlotBuffers
    from ..config import Config
    from ..refusals import Refusals

__all__ = ["Input", "InputHost"]


@runtime_checkable
class InputHost(Protocol):
    """The agent as its inputs see it."""

    config: Config
    refusals: Refusals
    #: ``record(camera, people_count, timestamp=None, triggers=())``: False if refused.
    record: Callable[..., bool]

    buffers: SlotBuffers  # its ``clock()`` is "now" for an event without a timestamp

    def commit_soon(self) -> None:
        """Commit (and so let replayable inputs acknowledge their source) without waiting."""

    def flush(self, timeout: float = 10.0) -> bool:
        """Commit now and wait up to ``timeout`` for it; False if it did not finish."""


@runtime_checkable
class Input(Protocol):
    """An event input: started once, stopped (drained) once, then closed."""

    def start(self) -> None:
        """Open the socket or connection and start taking events."""

    def stop(self) -> None:
        """Drain what already arrived, then take no more events."""

    def close(self) -> None:
        """Release sockets and connections."""

    def alive(self) -> bool:
        """False once the input's thread has died while it was meant to run."""

    def mark(self) -> int:
        """A position in what was taken, before a commit (0 for an input that cannot replay)."""

    def committed(self, mark: int) -> None:
        """What was taken up to ``mark`` is in the outbox: acknowledge it to the source."""

    def stats(self) -> Dict[str, float]:
        """Counters for the statistics message."""
