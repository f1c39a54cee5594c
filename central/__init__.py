"""The Heatmap central service: MQTT consumer, ClickHouse storage, dashboard API and page."""

__all__: list = []
