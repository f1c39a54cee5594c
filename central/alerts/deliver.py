"""Alert delivery: the webhook POST, its signature, retries with backoff, the MQTT copy.

Every attempt is claimed first (:meth:`Ledger.claim`), so with several replicas one sends
it. The first attempt also publishes the alert at QoS 1 on ``heatmap/v1/<site>/alerts``.
A 2xx answer is delivery; anything else (status, timeout, refused connection) schedules
the next attempt after an exponential backoff (1 s doubling to 30 min, +-10 % jitter), with
the same id and body, until 24 h after firing; then the alert is ``failed``. All those
times are multiplied by ``HEATMAP_ALERT_TIME_SCALE`` (1 in production; tests shrink it).
A replica that dies mid-attempt leaves the alert ``pending``; the claim lapses after its
lease and any replica (or this one restarted) sends it again: delivery is at least once,
receivers deduplicate by ``id``.

A webhook's host is resolved on every attempt and connected to only on addresses the
``HEATMAP_WEBHOOK_TARGETS`` policy allows (``targets.py``); a refused address is a failed
attempt like a refused connection. ``last_error`` names the URL by scheme and host only. An
alert whose rule is no longer configured is ``cancelled``, not sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import random
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
from shared import topics

from ..exceptions import StorageError
from .ledger import Alert, Ledger
from .targets import GuardedResolver, TargetRefused, origin, refusal

__all__ = ["Deliverer", "sign", "SIGNATURE_HEADER"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Heatmap-Signature"
FIRST_DELAY = 1.0
MAX_DELAY = 1800.0
RETRY_WINDOW = 24 * 3600.0
LEASE = 60.0
POLL = 5.0
SETTLE = 0.1


def sign(secret: str, body: bytes) -> str:
    """The X-Heatmap-Signature value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Deliverer:
    def __init__(self, ledger: Ledger, config, metrics, owner: str,
                 publish: Callable[[str, bytes], None] | None = None, rule_names: frozenset = frozenset()):
        scale = config.alert_time_scale
        self.ledger = ledger
        self.metrics = metrics
        self.owner = owner
        self.secret = config.webhook_secret
        self.timeout = config.webhook_timeout
        self.publish = publish
        self.policy = config.webhook_targets
        #: The rules configured now: a pending alert of any other rule is cancelled.
        self.rule_names = rule_names
        self.first_delay = FIRST_DELAY * scale
        self.max_delay = MAX_DELAY * scale
        self.window = RETRY_WINDOW * scale
        # A live replica's attempt must never lapse: the lease outlasts the HTTP timeout.
        self.lease = max(LEASE * scale, self.timeout + 2 * SETTLE + 1)
        self.poll = max(0.05, POLL * scale)
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None

    def oldest_pending(self) -> float:
        """Fired before this, an alert can no longer be pending (window, last delay, lease)."""
        return time.time() - self.window - self.max_delay - self.lease - 3600

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        delay = min(self.first_delay * 2 ** min(attempt - 1, 40), self.max_delay)
        return delay * random.uniform(0.9, 1.1)

    def submit(self, alerts: list[Alert]) -> None:
        """Attempt fresh alerts now (this replica fired them; the claim still decides)."""
        for alert in alerts:
            self._start(alert)

    def _start(self, alert: Alert) -> None:
        if alert.id in self._inflight or alert.state != "pending":
            return
        task = asyncio.create_task(self._attempt(alert))
        self._inflight[alert.id] = task
        task.add_done_callback(lambda _t, key=alert.id: self._inflight.pop(key, None))

    async def run(self) -> None:
        """Poll for due alerts (retries, and alerts other replicas left) until cancelled."""
        try:
            while True:
                try:
                    for alert in await self.ledger.due(time.time(), self.oldest_pending()):
                        self._start(alert)
                except StorageError as exc:
                    logger.warning("alert delivery: reading due alerts failed: %s", exc)
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
        finally:
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

    async def _attempt(self, alert: Alert) -> None:
        attempt = alert.attempts + 1
        try:
            # A claim names this try, not only this replica, so two tries never both win.
            claimant = "%s/%s" % (self.owner, uuid.uuid4().hex[:8])
            if not await self.ledger.claim(alert.id, attempt, claimant, self.lease, SETTLE):
                return
            current = await self.ledger.get(alert.site_name, alert.id)
            if current is None or current.state != "pending" or current.attempts != alert.attempts:
                return  # another replica moved it on meanwhile
            if current.rule not in self.rule_names:
                await self.ledger.write([self.cancelled(current)])
                return
            if attempt == 1:
                self._publish(current)
            if not current.webhook:
                await self.ledger.write([current.step(self.owner, state="published", attempts=attempt)])
                return
            error = await self._post(current, attempt)
            now = time.time()
            if error is None:
                step = current.step(self.owner, state="delivered", attempts=attempt, delivered_at=now,
                                    last_error="")
                self.metrics.alerts_delivered.inc()
                logger.info("alert %s (%s, %s) delivered on attempt %d", alert.id, alert.rule, alert.site_name,
                            attempt)
            elif now - current.fired_at >= self.window:
                step = current.step(self.owner, state="failed", attempts=attempt, last_error=error)
                self.metrics.alert_attempts_failed.inc()
                self.metrics.alerts_failed.inc()
                logger.error("alert %s (%s, %s) given up after %d attempts: %s", alert.id, alert.rule,
                             alert.site_name, attempt, error)
            else:
                delay = self.backoff(attempt)
                step = current.step(self.owner, attempts=attempt, next_attempt_at=now + delay, last_error=error)
                self.metrics.alert_attempts_failed.inc()
                logger.warning("alert %s attempt %d failed (%s); next in %.1f s", alert.id, attempt, error, delay)
            await self.ledger.write([step])
        except StorageError as exc:
            # The claim lapses and a later poll (here or elsewhere) takes the alert again.
            logger.warning("alert %s: storage failed during attempt %d: %s", alert.id, attempt, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("alert %s: attempt %d failed unexpectedly", alert.id, attempt)

    def cancelled(self, alert: Alert) -> Alert:
        """The cancelled step of ``alert``, whose rule is no longer configured."""
        self.metrics.alerts_cancelled.inc()
        logger.info("alert %s cancelled: its rule %s is no longer in the sites file", alert.id, alert.rule)
        return alert.step(self.owner, state="cancelled",
                          last_error="rule %s is no longer in the sites file" % alert.rule)

    async def cancel_orphans(self) -> int:
        """Mark ``cancelled`` every pending alert whose rule is no longer configured."""
        orphans = await self.ledger.orphans(self.oldest_pending(), sorted(self.rule_names))
        await self.ledger.write([self.cancelled(a) for a in orphans])
        return len(orphans)

    def _publish(self, alert: Alert) -> None:
        if self.publish is None:
            return
        try:
            self.publish(topics.alerts_topic(alert.site_name), alert.body.encode())
        except Exception:  # the webhook and the API still carry it
            logger.exception("publishing alert %s on MQTT failed", alert.id)

    async def _post(self, alert: Alert, attempt: int) -> str | None:
        """None on a 2xx, else what went wrong (kept as last_error)."""
        where = origin(alert.webhook)
        host = urlsplit(alert.webhook).hostname or ""
        if _is_ip(host):  # aiohttp connects to a literal without asking the resolver
            why = refusal(host, self.policy)
            if why is not None:
                return "refused: %s (%s)" % (why, where)
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy))
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = alert.body.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "heatmap-central",
                   "X-Heatmap-Alert-Id": alert.id, "X-Heatmap-Attempt": str(attempt)}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        try:
            async with self._session.post(alert.webhook, data=body, headers=headers,
                                          allow_redirects=False) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return None
                return "HTTP %d (%s)" % (resp.status, where)
        except asyncio.TimeoutError:
            return "timed out after %g s (%s)" % (self.timeout, where)
        except aiohttp.ClientError as exc:
            return ("%s (%s)" % (_describe(exc), where))[:300]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, without the URL: aiohttp's own texts often hold it whole (and a URL
    may carry a token), so only the OS's reason or the error's class is kept."""
    cause = getattr(exc, "os_error", None)
    if isinstance(cause, TargetRefused):
        return "refused: %s" % cause
    if isinstance(cause, OSError):
        return "%s: %s" % (type(exc).__name__, cause.strerror or type(cause).__name__)
    return type(exc).__name__
