"""Rules every query string follows, whatever the endpoint: each parameter at most once (a
repeated one is a 400, never first-wins, so two parts of a stack cannot read different
values), and numbers and dates in ASCII digits only (``weeks=`` with an Arabic-Indic or a
fullwidth digit is refused, as dates with such digits are).
"""

from __future__ import annotations

import re

from aiohttp import web

from .exceptions import RequestError

__all__ = ["DIGITS", "single_values"]

#: One or more ASCII digits (``\d`` in a str pattern takes every script's digits).
DIGITS = re.compile(r"[0-9]+\Z")


def single_values(request: web.Request) -> None:
    """400 ``repeated_parameter`` if any query parameter is given more than once."""
    query = request.query
    if len(query) == len(set(query)):
        return
    name = next(k for k in query if len(query.getall(k)) > 1)
    raise RequestError(400, "repeated_parameter", "%s is given %d times; give it once"
                       % (name[:40], len(query.getall(name))))
