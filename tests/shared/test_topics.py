from __future__ import annotations

import pytest

from shared.exceptions import TopicError
from shared.topics import (
    Topic,
    ack_topic,
    alerts_topic,
    parse_topic,
    state_topic,
    stats_topic,
    status_topic,
    subscription,
)


def test_build_and_parse_round_trip():
    for build, kind in ((state_topic, "state"), (ack_topic, "ack"), (status_topic, "status"), (stats_topic, "stats")):
        topic = build("HEAD_OFFICE", "jetson-01")
        assert topic == "heatmap/v1/HEAD_OFFICE/jetson-01/%s" % kind
        assert parse_topic(topic) == Topic("HEAD_OFFICE", "jetson-01", kind)


def test_subscriptions():
    assert subscription("state") == "heatmap/v1/+/+/state"
    assert subscription("ack", "S", "d1") == "heatmap/v1/S/d1/ack"
    assert subscription("state", share_group="central") == "$share/central/heatmap/v1/+/+/state"
    with pytest.raises(TopicError):
        subscription("nope")
    with pytest.raises(TopicError):
        subscription("state", site="a/b")


@pytest.mark.parametrize(
    "bad",
    [
        "heatmap/v2/S/d/state",
        "heatmap/v1/S/d",
        "heatmap/v1/S/d/state/extra",
        "heatmap/v1/+/d/state",
        "heatmap/v1/S/#/state",
        "heatmap/v1/S/d/other",
        "heatmap/v1//d/state",
        "$SYS/broker/uptime",
        "",
    ],
)
def test_parse_refuses_foreign_topics(bad):
    with pytest.raises(TopicError):
        parse_topic(bad)


@pytest.mark.parametrize("name", ["a/b", "+", "#", "$share", "", "x" * 65, "bad name", "é"])
def test_names_that_cannot_go_into_a_topic(name):
    with pytest.raises(TopicError) as info:
        state_topic(name, "d")
    assert info.value.field == "site"


def test_the_site_alert_topic_sits_beside_the_device_subtrees():
    assert alerts_topic("HEAD_OFFICE") == "heatmap/v1/HEAD_OFFICE/alerts"
    with pytest.raises(TopicError):
        alerts_topic("a/+")
    # A device named "alerts" would own heatmap/v1/<site>/alerts/#, which covers the topic.
    with pytest.raises(TopicError) as info:
        state_topic("HEAD_OFFICE", "alerts")
    assert info.value.field == "device"
    with pytest.raises(TopicError):
        parse_topic("heatmap/v1/HEAD_OFFICE/alerts")
