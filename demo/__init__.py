"""The one-box demo (``make demo`` / ``python -m demo``): an embedded broker, central on
embedded ClickHouse, one edge agent per simulated site, 14 days of backfilled history and
live traffic; Ctrl-C stops it all. Python 3.10+, like central."""

__all__: list = []
