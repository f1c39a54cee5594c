"""The error root of the central service.

Everything central raises on purpose is a :class:`CentralError`. Third-party errors
(clickhouse-connect, paho, TOML) are translated into these at the one adapter that calls the
library, so the HTTP layer and the consumer only ever catch this family.
"""

from __future__ import annotations

__all__ = [
    "CentralError",
    "ConfigError",
    "SitesFileError",
    "StorageError",
    "StorageUnavailable",
    "SchemaError",
    "RequestError",
]


class CentralError(Exception):
    """Root of the errors raised by ``central``."""


class ConfigError(CentralError):
    """An unknown or invalid setting; start-up stops with this one line."""


class SitesFileError(ConfigError):
    """The TOML sites file cannot be read or holds an invalid setting."""


class StorageError(CentralError):
    """ClickHouse refused a statement (bad SQL, type mismatch): retrying will not help."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        #: ClickHouse's error code, where the engine gave one.
        self.code = code


class StorageUnavailable(StorageError):
    """ClickHouse cannot be reached or is overloaded right now: retry later."""


class SchemaError(StorageError):
    """The database schema is not one central can work with (explained in the message)."""


class RequestError(CentralError):
    """A request central refuses (bad parameter, unknown site): a JSON error with ``status``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
