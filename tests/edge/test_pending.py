"""Pending: resend timing with backoff, the in-flight bound, and ack retirement."""

from __future__ import annotations

from edge.pending import Pending

SLOT = 1_767_600_000


def test_backoff_doubles_up_to_the_cap_and_a_new_commit_is_due_at_once():
    p = Pending(ack_timeout=10, max_backoff=35)
    p.add([("CAM", SLOT, 5)], committed_at=0.0)
    assert p.due(now=0.0) == [("CAM", SLOT, 5)]
    p.mark_sent([("CAM", SLOT, 5)], now=0.0)
    assert p.due(now=9.9) == []
    assert p.due(now=10.0) == [("CAM", SLOT, 5)]
    p.mark_sent([("CAM", SLOT, 5)], now=10.0)
    assert p.due(now=29.9) == [] and p.due(now=30.0)  # 20 s
    p.mark_sent([("CAM", SLOT, 5)], now=30.0)
    assert p.due(now=64.9) == [] and p.due(now=65.0)  # capped at 35 s, not 40
    assert p.resent == 2
    p.add([("CAM", SLOT, 6)], committed_at=1.0)
    assert p.due(now=66.0) == [("CAM", SLOT, 6)]
    p.add([("CAM", SLOT, 4)], committed_at=2.0)  # an older revision never replaces
    assert p.due(now=66.0) == [("CAM", SLOT, 6)]


def test_in_flight_bound_and_oldest_revision_first():
    p = Pending(ack_timeout=10, max_inflight=3)
    p.add([("CAM%d" % i, SLOT, 100 - i) for i in range(5)], committed_at=0.0)
    first = p.due(now=0.0)
    assert [r for _, _, r in first] == [96, 97, 98] and p.throttled
    p.mark_sent(first, now=0.0)
    assert p.due(now=1.0) == []
    assert p.ack("CAM4", SLOT, 96, now=2.0) == 2.0
    assert [r for _, _, r in p.due(now=2.0)] == [99]


def test_ack_retires_only_revisions_up_to_it_and_expire_bounds_memory():
    p = Pending()
    p.add([("CAM", SLOT, 7), ("CAM", SLOT - 900, 3)], committed_at=0.0)
    assert p.ack("CAM", SLOT, 6) is None and len(p) == 2
    p.ack("CAM", SLOT, 9)
    assert len(p) == 1
    assert p.expire(SLOT) == 1 and len(p) == 0
    assert p.oldest_age(100.0) == 0.0
    p.resend_all()


def test_ack_by_revision_retires_only_current_revisions_and_is_idempotent():
    p = Pending()
    p.add([("A", SLOT, 10), ("B", SLOT, 11), ("C", SLOT, 12)], committed_at=0.0)
    p.mark_sent([("A", SLOT, 10), ("B", SLOT, 11)], now=1.0)
    p.add([("B", SLOT, 13)], committed_at=0.5)  # B changed again: 11 is no longer current
    retired, lag = p.ack_revs([(10, 11)], now=3.0)
    assert retired == [("A", SLOT, 10)] and lag == 2.0
    assert sorted(k for k, _ in [((c, s), r) for c, s, r in p.due(now=3.0)]) == [("B", SLOT), ("C", SLOT)]
    # A duplicate, an ack of a revision never sent, one never known: nothing happens.
    assert p.ack_revs([(10, 10), (500, 600)], now=4.0) == ([], None)
    retired, lag = p.ack_revs([(12, 13)], now=5.0)
    assert sorted(retired) == [("B", SLOT, 13), ("C", SLOT, 12)] and lag is None  # never sent
    assert len(p) == 0


def test_a_wide_ack_range_walks_the_entries_not_the_range():
    p = Pending()
    p.add([("A", SLOT, 2**52), ("B", SLOT, 5)], committed_at=0.0)
    retired, _ = p.ack_revs([(1, 2**53 - 1)])  # would be 2^53 steps over the range
    assert sorted(retired) == [("A", SLOT, 2**52), ("B", SLOT, 5)]


def test_expire_and_v1_acks_keep_the_revision_index_in_step():
    p = Pending()
    p.add([("A", SLOT, 7), ("A", SLOT - 900, 3)], committed_at=0.0)
    p.ack("A", SLOT, 9)
    assert p.expire(SLOT) == 1
    assert p.ack_revs([(1, 10)]) == ([], None) and len(p) == 0


def test_unsent_lists_committed_keys_not_yet_sent():
    p = Pending()
    p.add([("A", SLOT, 1), ("B", SLOT, 2)], committed_at=0.0)
    p.mark_sent([("A", SLOT, 1)], now=0.0)
    assert p.unsent([("A", SLOT), ("B", SLOT), ("C", SLOT)]) == [("B", SLOT, 2)]
