"""Raw ingest with numbers no field can hold: a documented JSON error naming the field,
never a 500 (a 400-digit integer made ``float()`` overflow in shared/events.parse_time)."""

from __future__ import annotations

import pytest

from tests.central.test_api import conforms

HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"site_name": "HEAD_OFFICE", "cam_name": "DOOR", "people_count": 1, "event_timestamp": %s}' % HUGE,
         "timestamp"),
        ('{"site": "HEAD_OFFICE", "camera": "DOOR", "people_count": 1, "timestamp": -%s}' % HUGE, "timestamp"),
        ('{"site": "HEAD_OFFICE", "camera": "DOOR", "people_count": %s}' % HUGE, "people_count"),
        ('{"site": "HEAD_OFFICE", "camera": "DOOR", "people_count": 1e400}', "people_count"),
        ('{"site": "HEAD_OFFICE", "camera": "DOOR", "people_count": 1, "timestamp": 1e400}', "timestamp"),
    ],
)
async def test_a_number_too_big_for_its_field_is_a_4xx_json_error(client, clickhouse_client, body, field):
    resp = await client.post("/api/v1/events", data=body.encode(), headers={"Content-Type": "application/json"})
    doc = await conforms(resp, "/api/v1/events", "post")
    assert 400 <= resp.status < 500, doc
    assert [item["field"] for item in doc["error"].get("items", [])] == [field], doc
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 0
