"""The app's state, as aiohttp shows it: one ``web.AppKey`` per object, and the data path.

Objects that exist from start-up (config, sites, metrics, store, the ``on_data`` hub, the
registry, the raw ingestor) sit under their key directly. Objects that exist only once ClickHouse answered (the schema
facts, the dashboard, the range views) or only with MQTT configured (the
consumer) sit in a :class:`Ready` holder that is set later (the app is frozen after
start-up, so keys cannot be added then); a handler calls ``app[KEY].require()``, which
raises :class:`~central.exceptions.StorageUnavailable` with the reason (answered as a 503)
instead of asserting.

:class:`OnData` is the one path both writers take after rows are stored: the MQTT consumer
(from its writer thread, through :meth:`OnData.threadsafe`) and ``POST /api/v1/events`` call
``on_data(site, slots)`` with the slot starts (Unix seconds) they wrote for that site. The
callbacks run on the event loop, in the order they were added; one failing is logged and
does not stop the others. To react to new data (alerts, live views), add a callback::

    app[ON_DATA].append(lambda site, slots: ...)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

from .config import Config
from .exceptions import StorageUnavailable
from .ingest import Ingestor
from .metrics import Metrics
from .registry import Registry
from .sites import Sites
from .storage.derived import Derived
from .storage.schema import RawTime
from .storage.store import Store

__all__ = [
    "Ready",
    "OnData",
    "SchemaFacts",
    "CONFIG",
    "SITES",
    "METRICS",
    "STORE",
    "ON_DATA",
    "SCHEMA",
    "DASHBOARD",
    "REGISTRY",
    "INGESTOR",
    "CONSUMER",
    "SLOTS",
    "FOLLOWER",
    "KEEPER",
    "SITEDAYS",
    "RANGES",
    "ALERT_RULES",
    "ALERTS",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
DataCallback = Callable[[str, "set[int]"], None]


class Ready(Generic[T]):
    """An object that becomes available after start-up (or never, with a reason)."""

    def __init__(self, what: str, reason: str = "starting"):
        self.what = what
        self.reason = reason
        self._value: T | None = None

    @property
    def value(self) -> T | None:
        return self._value

    def set(self, value: T) -> None:
        self._value = value
        self.reason = ""

    def unavailable(self, reason: str) -> None:
        self.reason = reason

    def require(self) -> T:
        """The object, or :class:`StorageUnavailable` saying why it is not there."""
        if self._value is None:
            raise StorageUnavailable("%s is not available: %s" % (self.what, self.reason))
        return self._value


@dataclass(frozen=True)
class SchemaFacts:
    """What start-up learnt about the database: whether camera_events deduplicates inserts,
    and its time column and derived tables."""

    raw_dedup: bool
    derived: Derived

    @property
    def raw_time(self) -> RawTime:
        return self.derived.raw_time


class OnData:
    """Callbacks after rows for (site, slots) were stored; see the module docstring."""

    def __init__(self) -> None:
        self._callbacks: list[DataCallback] = []
        #: True while the callbacks run for a write of the live feed (the MQTT consumer):
        #: its readers poll, and may get the previous answer for a moment; a raw-ingest
        #: client reads its own write at once.
        self.live = False

    def append(self, callback: DataCallback) -> None:
        self._callbacks.append(callback)

    def __call__(self, site: str, slots: Iterable[int]) -> None:
        touched = set(slots)
        for callback in self._callbacks:
            try:
                callback(site, touched)
            except Exception:  # one listener's bug must not cost the others their update
                logger.exception("on_data callback %r failed for site %s", callback, site)

    def threadsafe(self, loop: asyncio.AbstractEventLoop) -> DataCallback:
        """The same path for a writer on another thread: runs on ``loop``."""

        def call(site: str, slots: set[int]) -> None:
            loop.call_soon_threadsafe(self._live, site, set(slots))

        return call

    def _live(self, site: str, slots: set[int]) -> None:
        self.live = True
        try:
            self(site, slots)
        finally:
            self.live = False


CONFIG = web.AppKey("config", Config)
SITES = web.AppKey("sites", Sites)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("store", Store)
ON_DATA = web.AppKey("on_data", OnData)
SCHEMA = web.AppKey("schema", Ready)  # Ready[SchemaFacts]
DASHBOARD = web.AppKey("dashboard", Ready)  # Ready[central.dashboard.Dashboard]
REGISTRY = web.AppKey("registry", Registry)
INGESTOR = web.AppKey("ingestor", Ingestor)
CONSUMER = web.AppKey("consumer", Ready)  # Ready[central.consumer.Consumer]; unset without MQTT
SLOTS = web.AppKey("slots", Ready)  # Ready[central.storage.slots.SlotStore]: what every view reads through
FOLLOWER = web.AppKey("follower", Ready)  # Ready[central.storage.keeper.Follower]; unset without kept answers
KEEPER = web.AppKey("keeper", Ready)  # Ready[central.storage.keeper.Keeper]: every consequence of a write
SITEDAYS = web.AppKey("sitedays", Ready)  # Ready[central.storage.sitedays.SiteDays]: every read of site-days
RANGES = web.AppKey("ranges", Ready)  # Ready[central.views.RangeServices]: history, overview, export
ALERT_RULES = web.AppKey("alert_rules", tuple)  # central.alerts.rules.Rule, parsed at start-up
ALERTS = web.AppKey("alerts", Ready)  # Ready[central.alerts.Alerts]; unset without rules
