"""The sync mark's SSCC high-water (edge/store/syncmark.py): its format, the
catch-up at start, what a copy does with it, and that the uploader's writes
never lose it. The allocator's own tests are tests/shipping/test_sscc.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from edge.store import Store, Transaction
from edge.store.syncmark import (
    RESTORE_ALERT,
    SSCC_CLOSED_ALERT,
    Mark,
    MarkUnavailableError,
    SyncMark,
    is_reconciled,
    mark_path,
    read_mark,
    reserve_sscc,
    sscc_space,
    write_mark,
)

BOX = "box-1"
SPACE = sscc_space(1, "0614141")


def set_range(store: Store, *, first: int = 1, last: int = 999, next_serial: int = 1) -> None:
    def put(tx: Transaction) -> None:
        tx.execute(
            "INSERT OR REPLACE INTO sscc_range VALUES (1, '0614141', 1, ?, ?, ?)",
            (first, last, next_serial),
        )

    store.run(put)


def next_serial(store: Store) -> int:
    return int(store.query("SELECT next_serial FROM sscc_range")[0]["next_serial"])


def alert_kinds(store: Store) -> list[str]:
    return [r["kind"] for r in store.query("SELECT kind FROM alerts ORDER BY id")]


def test_space_key_and_format() -> None:
    assert sscc_space(0, "0614141") == "00614141"
    mark = Mark("b", "d", "e", 3, {SPACE: 200})
    doc = json.loads(mark.to_json())
    assert doc == {"v": 1, "box": "b", "db": "d", "epoch": "e", "sent": 3, "sscc": {SPACE: 200}}


def test_a_mark_from_before_sscc_reads_with_no_high_water(tmp_path: Path) -> None:
    path = tmp_path / "x.syncmark"
    path.write_text(json.dumps({"v": 1, "box": "b", "db": "d", "epoch": "e", "sent": 0}))
    mark, problem = read_mark(path)
    assert problem is None and mark is not None and dict(mark.sscc) == {}
    path.write_text(
        json.dumps({"v": 1, "box": "b", "db": "d", "epoch": "e", "sent": 0, "sscc": []})
    )
    mark, problem = read_mark(path)
    assert mark is None and problem is not None and "not a sync mark" in problem


def test_reserve_writes_only_beyond_the_high_water(tmp_path: Path) -> None:
    path = tmp_path / "x.syncmark"
    with pytest.raises(MarkUnavailableError, match="missing"):
        reserve_sscc(path, SPACE, 1, 100)
    write_mark(path, Mark("b", "d", "e", 0))
    assert reserve_sscc(path, SPACE, 1, 100) == 100
    stamp = path.stat().st_ino, path.read_bytes()
    assert reserve_sscc(path, SPACE, 100, 199) == 100  # covered: no write
    assert (path.stat().st_ino, path.read_bytes()) == stamp
    assert reserve_sscc(path, SPACE, 101, 200) == 200
    assert reserve_sscc(path, "20614141", 1, 10) == 10  # another space beside it
    mark = read_mark(path)[0]
    assert mark is not None and dict(mark.sscc) == {SPACE: 200, "20614141": 10}
    with pytest.raises(ValueError, match="cannot reserve"):
        reserve_sscc(path, SPACE, 300, 299)


def test_a_restart_catches_up_once_per_opened_store(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        assert not is_reconciled(store)
        assert SyncMark(store).reconcile() is None
        assert is_reconciled(store)
        set_range(store, next_serial=5)
        reserve_sscc(mark_path(db), SPACE, 5, 104)
        assert SyncMark(store).reconcile() is None  # the same store: no skip
        assert next_serial(store) == 5
    with Store.open(db, box_id=BOX) as store:
        assert SyncMark(store).reconcile() is None  # a restart is no copy
        assert next_serial(store) == 105  # but it skips the rest of the block
        assert SyncMark(store).reconcile() is None
        assert next_serial(store) == 105
        assert alert_kinds(store) == []


def test_the_catch_up_stops_at_the_end_of_the_range(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        set_range(store, last=50, next_serial=10)
        reserve_sscc(mark_path(db), SPACE, 10, 109)
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        assert next_serial(store) == 51  # exhausted, the CHECK holds


def _damage(path: Path, kind: str) -> None:
    doc = json.loads(path.read_bytes())
    if kind == "missing":
        path.unlink()
    elif kind == "unreadable":
        path.write_text("{not json")
    else:
        key, value = {
            "other box": ("box", "box-2"),
            "other database": ("db", "0123456789abcdef"),
            "unknown epoch": ("epoch", "feedfeedfeedfeed"),
            "behind": ("sent", 7),
        }[kind]
        path.write_text(json.dumps({**doc, key: value}))


@pytest.mark.parametrize(
    ("damage", "closes"),
    [
        ("missing", True),
        ("unreadable", True),
        ("other box", True),
        ("other database", False),
        ("unknown epoch", False),
        ("behind", False),
    ],
)
def test_a_copy_catches_up_when_the_mark_is_this_boxs_and_closes_otherwise(
    tmp_path: Path, damage: str, closes: bool
) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        set_range(store, next_serial=20)
        reserve_sscc(mark_path(db), SPACE, 20, 119)
        _damage(mark_path(db), damage)
        restore = SyncMark(store).reconcile()
        assert restore is not None and restore.sscc is not None
        assert restore.sscc.closed is closes
        assert next_serial(store) == (1000 if closes else 120)
        assert alert_kinds(store) == (
            [SSCC_CLOSED_ALERT, RESTORE_ALERT] if closes else [RESTORE_ALERT]
        )
        mark = read_mark(mark_path(db))[0]  # the new mark keeps the high-water
        assert mark is not None and mark.sscc[SPACE] == (999 if closes else 119)
        assert mark.epoch == store.epoch
        assert SyncMark(store).reconcile() is None  # settled
        assert next_serial(store) == (1000 if closes else 120)


def test_a_copy_without_a_range_raises_only_the_restore_alert(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        mark_path(db).unlink()
        restore = SyncMark(store).reconcile()
        assert restore is not None and restore.sscc is None
        assert alert_kinds(store) == [RESTORE_ALERT]


def test_the_uploader_and_the_allocator_never_lose_each_others_writes(tmp_path: Path) -> None:
    """The uploader's SyncMark advances ``sent`` from its cached mark while the
    allocator reserves blocks in other threads: every write keeps both."""
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        uploader = SyncMark(store)
        uploader.reconcile()
        epoch = store.epoch
        stop = threading.Event()
        reserved: dict[str, int] = {}

        errors: list[BaseException] = []

        def send() -> None:
            try:
                for last in range(1, 400):
                    uploader.will_send(epoch, last)
            except BaseException as exc:
                errors.append(exc)
            finally:
                stop.set()

        def allocate(space: str) -> None:
            try:
                for serial in range(1, 100_000):
                    if stop.is_set():
                        return
                    reserve_sscc(mark_path(db), space, serial, serial)
                    reserved[space] = serial
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=send)] + [
            threading.Thread(target=allocate, args=(s,)) for s in ("1000", "2000")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        mark = read_mark(mark_path(db))[0]
        assert mark is not None and mark.sent == 399
        assert dict(mark.sscc) == reserved  # each space's last reservation, none lost
        assert min(reserved.values()) > 1
