"""Giving freed heap memory back to the system after a large burst of work.

A full window of changed slots (a week of backlog after an outage) is committed and sent in
chunks; the chunks' temporary objects are freed, but glibc keeps the freed pages, so the
process's resident size would stay at its high-water mark. ``malloc_trim(0)`` returns them.
It exists on glibc only (Jetson's L4T is Ubuntu); elsewhere :func:`trim` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any, Optional

__all__ = ["trim"]

log = logging.getLogger(__name__)

_libc: Optional[Any] = None
_loaded = False


def trim() -> bool:
    """Return freed heap pages to the system; False where malloc_trim is unavailable."""
    global _libc, _loaded
    if not _loaded:
        _loaded = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = libc if hasattr(libc, "malloc_trim") else None
        except OSError:
            _libc = None
        if _libc is None:
            log.debug("malloc_trim is not available here")
    if _libc is None:
        return False
    _libc.malloc_trim(0)
    return True
