"""The raw ingest's array decoder (element by element, so a big body never holds the GIL
for its whole parse) accepts and refuses exactly what ``json.loads`` does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.decode import _decode

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


def _reference(text: str):
    try:
        value = json.loads(text.lstrip())
    except ValueError:
        return "refused"
    return value if isinstance(value, list) else "refused"


@given(st.lists(_values, max_size=6), st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_any_array_decodes_as_json_loads_does(items, space):
    text = "[" + space + ("," + space).join(json.dumps(i) for i in items) + space + "]" + space
    assert _decode(text.encode()) == items


@given(st.text(alphabet='[]{},:"1 \nab', max_size=20))
def test_any_text_starting_an_array_is_refused_or_accepted_as_json_loads_does(tail):
    text = "[" + tail
    try:
        got = _decode(text.encode())
    except ValueError:
        got = "refused"
    assert got == _reference(text)


@pytest.mark.parametrize("text", ['[{"a": 1, "a": 2}]', "[1,]", "[,1]", "[1 2]", "[1] x", "[1", "[1]]"])
def test_refused(text):
    with pytest.raises(ValueError):
        _decode(text.encode())
