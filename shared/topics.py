"""Every MQTT topic of the product, built and parsed in one place.

Topics are versioned and carry the site and device, so a broker ACL can confine a device
to its own subtree (``heatmap/v1/<site>/<device>/#``) and central can check the payload's
identity against the topic it came on. No other module writes a topic literal.
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import TopicError
from .names import check_name, is_valid_name

__all__ = [
    "PREFIX",
    "KINDS",
    "Topic",
    "state_topic",
    "ack_topic",
    "alerts_topic",
    "status_topic",
    "stats_topic",
    "subscription",
    "parse_topic",
]

PREFIX = "heatmap/v1"

#: state: edge -> central slot states; ack: central -> edge; status: retained availability;
#: stats: periodic agent statistics.
KINDS = ("state", "ack", "status", "stats")
#: Site-level topics sit beside the device subtrees, so no device may take their names.
RESERVED_DEVICES = ("alerts",)


@dataclass(frozen=True)
class Topic:
    site: str
    device: str
    kind: str

    def __post_init__(self) -> None:
        check_name(self.site, "site", TopicError)
        check_name(self.device, "device", TopicError)
        if self.device in RESERVED_DEVICES:
            raise TopicError("device name %r is reserved for a site topic" % (self.device,), field="device")
        if self.kind not in KINDS:
            raise TopicError("unknown topic kind %r" % (self.kind,), field="kind")

    def __str__(self) -> str:
        return "%s/%s/%s/%s" % (PREFIX, self.site, self.device, self.kind)


def state_topic(site: str, device: str) -> str:
    return str(Topic(site, device, "state"))


def ack_topic(site: str, device: str) -> str:
    return str(Topic(site, device, "ack"))


def status_topic(site: str, device: str) -> str:
    return str(Topic(site, device, "status"))


def stats_topic(site: str, device: str) -> str:
    return str(Topic(site, device, "stats"))


def alerts_topic(site: str) -> str:
    """Where central publishes a site's alerts at QoS 1: ``heatmap/v1/<site>/alerts``."""
    return "%s/%s/alerts" % (PREFIX, check_name(site, "site", TopicError))


def subscription(
    kind: str, site: str | None = None, device: str | None = None, share_group: str | None = None
) -> str:
    """A topic filter for ``kind``; None for site or device means any (``+``).

    ``share_group`` makes it a shared subscription (``$share/<group>/...``), so several
    central replicas split the stream between them.
    """
    if kind not in KINDS:
        raise TopicError("unknown topic kind %r" % (kind,), field="kind")
    parts = [PREFIX]
    for field, value in (("site", site), ("device", device)):
        parts.append("+" if value is None else check_name(value, field, TopicError))
    parts.append(kind)
    filt = "/".join(parts)
    if share_group is not None:
        filt = "$share/%s/%s" % (check_name(share_group, "share_group", TopicError), filt)
    return filt


def parse_topic(topic: str) -> Topic:
    """Split a concrete topic of ours into site, device and kind."""
    if not isinstance(topic, str):
        raise TopicError("must be a string", field="topic")
    prefix = PREFIX + "/"
    if not topic.startswith(prefix):
        raise TopicError("not under %s/" % PREFIX, field="topic")
    parts = topic[len(prefix):].split("/")
    if len(parts) != 3 or not all(is_valid_name(p) or p in KINDS for p in parts):
        raise TopicError("expected %s/<site>/<device>/<kind>" % PREFIX, field="topic")
    return Topic(parts[0], parts[1], parts[2])
