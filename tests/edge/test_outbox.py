"""The SQLite outbox: commits with growing revisions, acks, restore, pruning, quarantine."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from edge.exceptions import OutboxError
from edge.outbox import Outbox

# Date-sensitive: make test-clock runs these again at fixed instants (tests/_clock).
pytestmark = pytest.mark.clock

SLOT = 1_767_600_000


def test_revisions_grow_and_survive_reopening(tmp_path):
    path = str(tmp_path / "outbox.sqlite")
    box = Outbox(path)
    first = box.rev
    items = box.commit([("CAM", SLOT, 3, 5, {"A": 2}), ("CAF", SLOT, 1, 1, {})])
    assert items == [("CAM", SLOT, first + 1), ("CAF", SLOT, first + 2)]
    assert box.commit([("CAM", SLOT, 4, 6, {"A": 2})]) == [("CAM", SLOT, first + 3)]
    box.ack([("CAF", SLOT, first + 2), ("CAM", SLOT, first + 1)])  # an ack of an older rev
    box.close()

    box = Outbox(path)
    assert box.rev == first + 3
    values, unacked = box.load(SLOT)
    assert sorted(values) == [("CAF", SLOT, 1, 1, {}), ("CAM", SLOT, 4, 6, {"A": 2})]
    assert [(s.camera, s.rev, s.events) for s, _ in unacked] == [("CAM", first + 3, 6)]
    assert box.backlog() == 1
    box.close()


def test_a_fresh_outbox_seeds_revisions_from_the_clock(tmp_path):
    box = Outbox(str(tmp_path / "a.sqlite"), clock=lambda: 1_767_600_000.25)
    assert box.rev == 1_767_600_000_250_000
    box.close()


def test_prune_counts_what_aged_out_unacked(tmp_path):
    box = Outbox(str(tmp_path / "outbox.sqlite"))
    items = box.commit([("CAM", SLOT - 900, 1, 1, {}), ("CAM", SLOT - 1800, 1, 1, {}), ("CAM", SLOT, 1, 1, {})])
    box.ack([items[0]])
    assert box.prune(SLOT) == (2, 1)
    assert [v[1] for v in box.load(0)[0]] == [SLOT]
    box.close()


def test_wal_and_full_sync(tmp_path):
    path = str(tmp_path / "outbox.sqlite")
    box = Outbox(path)
    box.commit([("CAM", SLOT, 1, 1, {})])
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()


def test_garbage_file_is_moved_aside_and_a_fresh_outbox_starts(tmp_path):
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    box = Outbox(str(path))
    assert box.quarantined is not None and os.path.exists(box.quarantined)
    assert Path(box.quarantined).read_bytes().startswith(b"this is not")
    assert box.commit([("CAM", SLOT, 1, 1, {})])[0][2] > 1
    box.close()


def test_truncated_file_is_moved_aside(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(str(path))
    box.commit([("CAM%d" % i, SLOT, 1, 1, {"T": i}) for i in range(2000)])
    box.close()  # checkpoints the WAL into the main file
    data = path.read_bytes()
    assert len(data) > 16384
    path.write_bytes(data[: len(data) // 2 + 100])
    box = Outbox(str(path))
    assert box.quarantined is not None
    assert box.load(0) == ([], [])
    box.close()


def test_a_foreign_database_is_not_adopted(tmp_path):
    path = str(tmp_path / "outbox.sqlite")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE something_else (x)")
    db.commit()
    db.close()
    box = Outbox(path)
    assert box.quarantined is not None
    box.close()


def test_a_locked_outbox_is_retried_then_refused_and_never_quarantined(tmp_path):
    path = str(tmp_path / "outbox.sqlite")
    box = Outbox(path)
    items = box.commit([("CAM", SLOT, 3, 10, {})])
    box.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(OutboxError, match="locked"):
            Outbox(path, attempts=2, timeout=0.1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert sorted(os.listdir(str(tmp_path))) == ["outbox.sqlite"]
    box = Outbox(path)  # the lock is gone: everything is still there, unacked
    assert box.quarantined is None and not box.fresh
    assert box.rev == items[0][2]
    assert [(s.camera, s.events) for s, _ in box.load(0)[1]] == [("CAM", 10)]
    box.close()


def test_only_a_new_file_is_fresh(tmp_path):
    path = str(tmp_path / "outbox.sqlite")
    box = Outbox(path)
    assert box.fresh and box.quarantined is None
    box.close()
    box = Outbox(path)
    assert not box.fresh
    box.close()
