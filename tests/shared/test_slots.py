from __future__ import annotations

import math

import pytest

from shared.exceptions import HeatmapError, TimeRangeError
from shared.slots import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    SLOT_SECONDS,
    check_timestamp,
    is_slot_start,
    slot_index,
    slot_of,
    slot_start,
    slots_between,
)

DAY = 1767571200  # 2026-01-05T00:00:00Z


def test_slot_of_boundaries():
    assert slot_of(DAY) == DAY
    assert slot_of(DAY + 0.000001) == DAY
    assert slot_of(DAY + 899.999) == DAY
    assert slot_of(DAY + 900) == DAY + 900
    assert slot_of(DAY - 0.001) == DAY - 900
    assert slot_of(MIN_TIMESTAMP) == MIN_TIMESTAMP
    assert slot_of(MAX_TIMESTAMP - 1) == MAX_TIMESTAMP - SLOT_SECONDS


def test_slot_index_and_start_agree():
    assert slot_start(slot_index(DAY + 1000)) == DAY + 900
    assert slot_index(DAY) * SLOT_SECONDS == DAY


@pytest.mark.parametrize(
    "bad", [-1, 0, MIN_TIMESTAMP - 1, MAX_TIMESTAMP, 10**12, math.inf, -math.inf, math.nan]
)
def test_out_of_range_is_refused_with_own_error(bad):
    with pytest.raises(TimeRangeError) as info:
        slot_of(bad)
    assert info.value.code == "out_of_range"
    assert isinstance(info.value, HeatmapError)


@pytest.mark.parametrize("bad", [True, "1767571200", None, [DAY]])
def test_non_numbers_are_refused(bad):
    with pytest.raises(TimeRangeError) as info:
        check_timestamp(bad)
    assert info.value.code == "bad_type"


def test_slots_between_exact_and_partial():
    assert list(slots_between(DAY, DAY + 3600)) == [DAY, DAY + 900, DAY + 1800, DAY + 2700]
    # Partial slots at either end are included: they intersect the interval.
    assert list(slots_between(DAY + 10, DAY + 901)) == [DAY, DAY + 900]
    assert list(slots_between(DAY, DAY)) == []
    assert list(slots_between(DAY + 5, DAY)) == []
    assert len(slots_between(DAY, DAY + 86400)) == 96
    # A 23-hour and a 25-hour local day (DST) are whole numbers of slots.
    assert len(slots_between(DAY, DAY + 23 * 3600)) == 92
    assert len(slots_between(DAY, DAY + 25 * 3600)) == 100
    # India +5:30 and Nepal +5:45 day boundaries fall on slot starts.
    for offset in (5 * 3600 + 1800, 5 * 3600 + 2700):
        assert is_slot_start(DAY - offset)


def test_slots_between_refuses_bad_end():
    with pytest.raises(TimeRangeError):
        slots_between(DAY, math.nan)
    with pytest.raises(TimeRangeError):
        slots_between(DAY, MAX_TIMESTAMP + 1)
    assert slots_between(MAX_TIMESTAMP - 900, MAX_TIMESTAMP)[-1] == MAX_TIMESTAMP - 900


def test_is_slot_start():
    assert is_slot_start(DAY)
    assert not is_slot_start(DAY + 1)
    assert not is_slot_start(float(DAY))
    assert not is_slot_start(True)
    assert not is_slot_start(-900)
