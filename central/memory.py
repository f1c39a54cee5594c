"""Freed heap memory handed back to the OS (glibc ``malloc_trim``) once a burst is over.

Big transient buffers (request bodies arriving as 64 KiB chunks, export chunks waiting in a
socket's buffer) come from glibc's heap, which keeps freed pages while live objects sit
above them: 60 stalled 8 MB uploads left some 500 MB resident for good. :class:`IdleTrim`
trims once the last user of such buffers is done, if enough bytes went through since the
last trim. Where the C library has no ``malloc_trim`` (musl, macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["IdleTrim", "TRIM_AFTER", "give_memory_back"]

#: Bytes released since the last trim past which memory is handed back to the OS.
TRIM_AFTER = 16 * 1024 * 1024


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def give_memory_back() -> None:
    """Return freed heap pages to the OS (walks the heap: call it in a worker thread)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class IdleTrim:
    """Counts the bytes its users released; when the last one is done after at least
    :data:`TRIM_AFTER` of them, trims in a worker thread (on the running loop's executor)."""

    def __init__(self) -> None:
        self._released = 0

    def done(self, size: int, idle: bool) -> None:
        """A user released ``size`` bytes; ``idle``: no user holds any now."""
        self._released += size
        if idle and self._released >= TRIM_AFTER:
            self._released = 0
            asyncio.get_running_loop().run_in_executor(None, give_memory_back)
